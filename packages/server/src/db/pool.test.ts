import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase } from '../../test/helpers.ts';
import {
  combineWrites,
  createPool,
  isMergeableInsert,
  mergeInserts,
  type Pool,
  withTransaction,
} from './pool.ts';

let pool: Pool;
let drop: () => Promise<void>;

beforeAll(async () => {
  const db = await createTestDatabase();
  drop = db.drop;
  pool = createPool({ connection_string: db.url, max_connections: 4, application_name: 'pool-test' });
  await pool.query('CREATE TABLE t (id int PRIMARY KEY, v text NOT NULL)');
});
afterAll(async () => {
  await pool?.end();
  await drop?.();
});

const ids = async () => (await pool.query('SELECT id FROM t ORDER BY id')).rows.map((r) => r.id);

describe('pipelined transactions', () => {
  it('commit after earlier statements sends the writes with the COMMIT', async () => {
    const last = await withTransaction(pool, async (tx) => {
      await tx.query("INSERT INTO t VALUES (1, 'a')");
      return tx.commit([
        { text: 'INSERT INTO t VALUES ($1, $2)', values: [2, 'b'], name: 'pool_test_a' },
        { text: 'INSERT INTO t VALUES ($1, $2) RETURNING id, v', values: [3, 'c'], name: 'pool_test_b' },
      ]);
    });
    expect(last?.rows).toEqual([{ id: 3, v: 'c' }]);
    expect(await ids()).toEqual([1, 2, 3]);
  });

  it('commit with nothing before runs the writes as one statement: all or nothing', async () => {
    const last = await withTransaction(pool, (tx) =>
      tx.commit([
        { text: 'INSERT INTO t VALUES ($1, $2)', values: [4, 'd'] },
        { text: 'INSERT INTO t VALUES ($1, $2) RETURNING id', values: [5, 'e'] },
      ]),
    );
    expect(last?.rows).toEqual([{ id: 5 }]);
    await expect(
      withTransaction(pool, (tx) =>
        tx.commit([
          { text: 'INSERT INTO t VALUES ($1, $2)', values: [6, 'f'] },
          { text: 'INSERT INTO t VALUES ($1, $2)', values: [7, null] }, // NOT NULL violation
        ]),
      ),
    ).rejects.toMatchObject({ code: '23502' });
    expect(await ids()).toEqual([1, 2, 3, 4, 5]);
  });

  it('a failing write in commit after earlier statements throws its error and commits nothing', async () => {
    await expect(
      withTransaction(pool, async (tx) => {
        await tx.query("INSERT INTO t VALUES (10, 'a')");
        await tx.commit([
          { text: 'INSERT INTO t VALUES ($1, $2)', values: [11, 'b'] },
          { text: 'INSERT INTO t VALUES ($1, $2)', values: [12, null] }, // NOT NULL violation
          { text: 'INSERT INTO t VALUES ($1, $2)', values: [13, 'd'] },
        ]);
      }),
    ).rejects.toMatchObject({ code: '23502' });
    expect(await ids()).toEqual([1, 2, 3, 4, 5]);
  });

  it('a queued statement travels with the commit; if it fails, the commit throws its error and nothing commits', async () => {
    await withTransaction(pool, async (tx) => {
      await tx.query("INSERT INTO t VALUES (20, 'a')");
      tx.queue({ text: 'INSERT INTO t VALUES ($1, $2)', values: [21, 'b'] });
      await tx.commit([{ text: 'INSERT INTO t VALUES ($1, $2)', values: [22, 'c'] }]);
    });
    expect(await ids()).toEqual([1, 2, 3, 4, 5, 20, 21, 22]);
    await expect(
      withTransaction(pool, async (tx) => {
        tx.queue({ text: 'INSERT INTO t VALUES ($1, $2)', values: [23, null] }); // NOT NULL violation
        await tx.commit([{ text: 'INSERT INTO t VALUES ($1, $2)', values: [24, 'd'] }]);
      }),
    ).rejects.toMatchObject({ code: '23502' });
    expect(await ids()).toEqual([1, 2, 3, 4, 5, 20, 21, 22]);
    await pool.query('DELETE FROM t WHERE id >= 20');
  });

  it('statements sent from several promise callbacks at once leave in one socket write, in order', async () => {
    const seen = await withTransaction(pool, async (tx) => {
      await tx.query('SELECT 1'); // the connection and BEGIN, before counting
      const socket = (tx as unknown as { client: { connection: { stream: NodeJS.WritableStream } } }).client
        .connection.stream as unknown as {
        _writev: (...a: unknown[]) => void;
        _write: (...a: unknown[]) => void;
      };
      let writes = 0;
      const { _writev, _write } = socket;
      socket._writev = (...a) => {
        writes += 1;
        _writev.apply(socket, a);
      };
      socket._write = (...a) => {
        writes += 1;
        _write.apply(socket, a);
      };
      // Five "phases", each reaching its statement in a callback of its own.
      const rows = await Promise.all(
        [1, 2, 3, 4, 5].map(async (i) => {
          await Promise.resolve();
          return (await tx.query('SELECT $1::int AS i', [i])).rows[0].i;
        }),
      );
      socket._writev = _writev;
      socket._write = _write;
      await tx.commit();
      return { rows, writes };
    });
    expect(seen).toEqual({ rows: [1, 2, 3, 4, 5], writes: 1 });
  });

  it('combines writes with their placeholders renumbered, reusing one prepared shape', () => {
    const writes = [
      { name: 'w_a', text: 'INSERT INTO a VALUES ($1, $2)', values: [1, 2] },
      {
        name: 'w_b',
        text: 'WITH x AS (UPDATE b SET v = $2 WHERE id = $1 RETURNING 1) SELECT count(*) FROM x',
        values: [3, 4],
      },
    ];
    const one = combineWrites(writes);
    expect(one.text).toBe(
      'WITH moneta_w0 AS (INSERT INTO a VALUES ($1, $2)), x AS (UPDATE b SET v = $4 WHERE id = $3 RETURNING 1) SELECT count(*) FROM x',
    );
    expect(one.values).toEqual([1, 2, 3, 4]);
    expect(combineWrites(writes).name).toBe(one.name);
    expect(() => combineWrites([{ text: 'SELECT $1', values: [1] }, writes[0]!])).toThrow(/only INSERT/);
    expect(() => combineWrites([{ text: 'INSERT INTO a VALUES ($1)', values: [] }, writes[0]!])).toThrow(
      /placeholder/,
    );
  });

  it('an error thrown by the caller rolls back what it ran, and the connection stays usable', async () => {
    await expect(
      withTransaction(pool, async (tx) => {
        await tx.query("INSERT INTO t VALUES (20, 'a')");
        throw new Error('caller changed its mind');
      }),
    ).rejects.toThrow('caller changed its mind');
    expect(await ids()).toEqual([1, 2, 3, 4, 5]);
    // Every pooled connection still works (none was left inside a transaction).
    const counts = await Promise.all([1, 2, 3, 4].map(() => pool.query('SELECT count(*)::int AS n FROM t')));
    expect(counts.map((r) => r.rows[0].n)).toEqual([5, 5, 5, 5]);
  });

  it('a statement is never run after the transaction ended', async () => {
    await expect(
      withTransaction(pool, async (tx) => {
        await tx.commit([{ text: "INSERT INTO t VALUES (30, 'a')", values: [] }]);
        await tx.query("INSERT INTO t VALUES (31, 'b')");
      }),
    ).rejects.toThrow(/no statement after the transaction ended/);
    expect(await ids()).toEqual([1, 2, 3, 4, 5, 30]);
  });
});

describe('transactions on a pool that does not pipeline (the COPY pool)', () => {
  it('runs queries in order, streams COPY rows, and rolls back as a whole', async () => {
    const serial = createPool({
      connection_string: pool.options.connectionString as string,
      max_connections: 1,
      application_name: 'pool-test-serial',
      pipeline: false,
    });
    try {
      await withTransaction(serial, async (tx) => {
        const [a, b] = await Promise.all([tx.query('SELECT 1 AS n'), tx.query('SELECT 2 AS n')]);
        expect([a.rows[0].n, b.rows[0].n]).toEqual([1, 2]);
        await tx.copyIn('COPY t (id, v) FROM STDIN', '40\tx\n41\ty\n');
        await tx.commit([{ text: 'INSERT INTO t VALUES ($1, $2)', values: [42, 'z'] }]);
      });
      expect((await pool.query('SELECT id FROM t WHERE id >= 40 ORDER BY id')).rows.map((r) => r.id)).toEqual(
        [40, 41, 42],
      );
      await expect(
        withTransaction(serial, async (tx) => {
          await tx.copyIn('COPY t (id, v) FROM STDIN', '50\tx\n');
          await tx.commit([{ text: 'INSERT INTO t VALUES ($1, $2)', values: [51, null] }]);
        }),
      ).rejects.toMatchObject({ code: '23502' });
      expect((await pool.query('SELECT count(*)::int AS n FROM t WHERE id >= 50')).rows[0].n).toBe(0);
    } finally {
      await serial.end();
    }
  });
});

describe('merged inserts', () => {
  const row = (id: number, v: string) => ({
    name: 'pool_test_merge',
    text: 'INSERT INTO t (id, v) VALUES ($1, left($2, (10)))',
    values: [id, v],
  });

  it('tells single-row inserts from what cannot merge', () => {
    expect(isMergeableInsert(row(1, 'a'))).toBe(true);
    for (const text of [
      'INSERT INTO t (id, v) VALUES ($1, $2) RETURNING id',
      'INSERT INTO t (id, v) VALUES ($1, $2) ON CONFLICT DO NOTHING',
      'INSERT INTO t VALUES ($1, $2)',
      'INSERT INTO t (id, v) SELECT $1, $2',
      'UPDATE t SET v = $2 WHERE id = $1',
      'WITH x AS (SELECT 1) INSERT INTO t (id, v) VALUES ($1, $2)',
    ]) {
      expect(isMergeableInsert({ text, values: [1, 'a'] }), text).toBe(false);
    }
  });

  it('joins rows of one text into one statement, renumbering placeholders, and keeps others apart', async () => {
    const other = { text: 'INSERT INTO t (v, id) VALUES ($1, $2)', values: ['z', 903] };
    const merged = mergeInserts([row(900, 'x'), other, row(901, 'y'), row(902, 'w')]);
    expect(merged).toHaveLength(2);
    expect(merged[0]!.text).toBe(
      'INSERT INTO t (id, v) VALUES ($1, left($2, (10))), ($3, left($4, (10))), ($5, left($6, (10)))',
    );
    expect(merged[0]!.values).toEqual([900, 'x', 901, 'y', 902, 'w']);
    expect(merged[1]).toBe(other);
    await withTransaction(pool, async (tx) => {
      for (const m of merged) tx.queue(m);
    });
    const { rows } = await pool.query('SELECT id, v FROM t WHERE id >= 900 ORDER BY id');
    expect(rows).toEqual([
      { id: 900, v: 'x' },
      { id: 901, v: 'y' },
      { id: 902, v: 'w' },
      { id: 903, v: 'z' },
    ]);
  });
});
