import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase } from '../../test/helpers.ts';
import { createPool, type Pool, withTransaction } from './pool.ts';

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
  it('commit sends its statements with the COMMIT and returns their results in order', async () => {
    const results = await withTransaction(pool, async (tx) => {
      await tx.query("INSERT INTO t VALUES (1, 'a')");
      return tx.commit([
        { text: 'INSERT INTO t VALUES ($1, $2) RETURNING id', values: [2, 'b'] },
        { text: 'INSERT INTO t VALUES ($1, $2) RETURNING id', values: [3, 'c'], name: 'pool_test_insert' },
      ]);
    });
    expect(results.map((r) => r.rows[0].id)).toEqual([2, 3]);
    expect(await ids()).toEqual([1, 2, 3]);
  });

  it('a failing statement in commit throws its error and commits nothing of the transaction', async () => {
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
    expect(await ids()).toEqual([1, 2, 3]);
  });

  it('an error thrown by the caller rolls back what it ran, and the connection stays usable', async () => {
    await expect(
      withTransaction(pool, async (tx) => {
        await tx.query("INSERT INTO t VALUES (20, 'a')");
        throw new Error('caller changed its mind');
      }),
    ).rejects.toThrow('caller changed its mind');
    expect(await ids()).toEqual([1, 2, 3]);
    // Every pooled connection still works (none was left inside a transaction).
    const counts = await Promise.all([1, 2, 3, 4].map(() => pool.query('SELECT count(*)::int AS n FROM t')));
    expect(counts.map((r) => r.rows[0].n)).toEqual([3, 3, 3, 3]);
  });

  it('a statement is never run after the transaction ended', async () => {
    await expect(
      withTransaction(pool, async (tx) => {
        await tx.commit([{ text: "INSERT INTO t VALUES (30, 'a')", values: [] }]);
        await tx.query("INSERT INTO t VALUES (31, 'b')");
      }),
    ).rejects.toThrow(/no statement after the transaction ended/);
    expect(await ids()).toEqual([1, 2, 3, 30]);
  });
});
