import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase } from '../../test/helpers.ts';
import { migrate } from '../db/migrate.ts';
import { combineWrites, createPool, type Pool, withTransaction } from '../db/pool.ts';
import {
  AUDIT_CASTS,
  AUDIT_COLUMNS,
  type AuditEntry,
  appendAudit,
  auditInsert,
  auditValues,
  MAX_FINDINGS,
  verifyAudit,
} from './index.ts';

let pool: Pool;
let url: string;
let drop: () => Promise<void>;

beforeAll(async () => {
  const db = await createTestDatabase();
  drop = db.drop;
  url = db.url;
  pool = createPool({ connection_string: db.url, max_connections: 16, application_name: 'audit-test' });
  await migrate(pool);
});
afterAll(async () => {
  await pool?.end();
  await drop?.();
});

function entry(i: number, overrides: Partial<AuditEntry> = {}): AuditEntry {
  return {
    actor: `api_key:key_${i % 7}`,
    action: 'vault.card.decrypt',
    outcome: i % 5 === 0 ? 'denied' : 'success',
    origin: `10.0.0.${i % 250}`,
    merchant_id: 'acct_TEST',
    object_type: 'card',
    object_id: `card_${i}`,
    details: { attempt: i, reason: i % 5 === 0 ? 'not permitted' : null },
    ...overrides,
  };
}

async function chain(): Promise<{ seq: number; prev: string; hash: string; at: Date }[]> {
  const { rows } = await pool.query(
    `SELECT seq::int, encode(prev_hash, 'hex') AS prev, encode(hash, 'hex') AS hash, at FROM audit_log ORDER BY seq`,
  );
  return rows;
}

/** The chain head as it stands (seq, and hash in hex). */
async function head(): Promise<{ seq: number; hash: string }> {
  return (await pool.query('SELECT seq::int, encode(hash, $1) AS hash FROM audit_chain_head', ['hex']))
    .rows[0];
}

/** Changes the log as an owner or superuser could: with its triggers off for one statement. */
async function tamper(sql: string): Promise<void> {
  const client = await pool.connect();
  try {
    await client.query('BEGIN');
    await client.query('ALTER TABLE audit_log DISABLE TRIGGER USER');
    await client.query(sql);
    await client.query('ALTER TABLE audit_log ENABLE TRIGGER USER');
    await client.query('COMMIT');
  } finally {
    client.release();
  }
}

describe('appending', () => {
  it('appends from many connections at once form one contiguous chain that verifies', async () => {
    const writers = 16;
    const per_writer = 25;
    await Promise.all(
      Array.from({ length: writers }, async (_, w) => {
        for (let i = 0; i < per_writer; i += 1) await appendAudit(pool, entry(w * per_writer + i));
      }),
    );
    const rows = await chain();
    expect(rows.map((r) => r.seq)).toEqual(Array.from({ length: writers * per_writer }, (_, i) => i + 1));
    expect(rows[0]!.prev).toBe('00'.repeat(32));
    rows.slice(1).forEach((r, i) => {
      expect(r.prev).toBe(rows[i]!.hash); // no fork: each row links to the one before it
    });
    rows.slice(1).forEach((r, i) => {
      expect(r.at.getTime()).toBeGreaterThanOrEqual(rows[i]!.at.getTime());
    });
    const head = await pool.query(`SELECT seq::int, encode(hash, 'hex') AS hash FROM audit_chain_head`);
    expect(head.rows).toEqual([{ seq: rows.length, hash: rows.at(-1)!.hash }]);
    expect(await verifyAudit(pool)).toEqual([]);
  });

  it('a rolled-back append leaves no gap; several appends combine into one statement', async () => {
    const before = (await chain()).length;
    await expect(
      withTransaction(pool, async (tx) => {
        await appendAudit(tx, entry(1));
        throw new Error('the change being audited failed');
      }),
    ).rejects.toThrow('the change being audited failed');
    await pool.query(combineWrites([auditInsert(entry(2)), auditInsert(entry(3)), auditInsert(entry(4))]));
    await withTransaction(pool, (tx) => tx.commit([auditInsert(entry(5))]));
    const rows = await chain();
    expect(rows.map((r) => r.seq).slice(before)).toEqual([before + 1, before + 2, before + 3, before + 4]);
    expect(await verifyAudit(pool)).toEqual([]);
  });

  it('appends across statements and a rolled-back savepoint move the head once per statement, with no gap', async () => {
    const before = (await chain()).length;
    const client = await pool.connect();
    try {
      await client.query('BEGIN');
      await client.query(combineWrites([auditInsert(entry(11)), auditInsert(entry(12))]));
      await client.query('SAVEPOINT undone');
      await appendAudit(client, entry(13));
      await client.query('ROLLBACK TO SAVEPOINT undone');
      await appendAudit(client, entry(14));
      // The head row holds the running head after each statement (later rows link to it).
      const inside = await client.query('SELECT seq::int FROM audit_chain_head');
      expect(inside.rows[0].seq).toBe(before + 3);
      await client.query('COMMIT');
    } finally {
      client.release();
    }
    const rows = await chain();
    expect(rows.map((r) => r.seq).slice(before)).toEqual([before + 1, before + 2, before + 3]);
    expect(await head()).toEqual({ seq: before + 3, hash: rows.at(-1)!.hash });
    // Another transaction, after this one: it starts from the committed head, not a stale one.
    await appendAudit(pool, entry(15));
    expect((await head()).seq).toBe(before + 4);
    expect(await verifyAudit(pool)).toEqual([]);
  });

  it('a forged running head moves nothing: the head follows only rows that continue it', async () => {
    await appendAudit(pool, entry(20));
    const before = await head();
    const zeros = '00'.repeat(32);
    const forged = async (running: string, insert: (client: pg.PoolClient) => Promise<unknown>) => {
      const client = await pool.connect();
      try {
        await client.query('BEGIN');
        await client.query("SELECT set_config('moneta.audit_chain', $1, true)", [running]);
        await insert(client);
        await client.query('COMMIT');
      } catch (err) {
        await client.query('ROLLBACK');
        throw err;
      } finally {
        client.release();
      }
    };
    // A statement that inserts nothing, with the head set back to the start: nothing moves.
    await forged(`0:${zeros}`, (c) =>
      c.query(
        "INSERT INTO audit_log (actor, action, outcome, origin) SELECT 'x', 'y', 'success', 'z' WHERE false",
      ),
    );
    expect(await head()).toEqual(before);
    // Rows after a made-up head (ahead of the real one, or behind it) fail their statement.
    await expect(
      forged(`${before.seq + 10}:${before.hash}`, (c) => appendAudit(c, entry(21))),
    ).rejects.toThrow('do not continue the chain head');
    await expect(forged(`${before.seq - 1}:${zeros}`, (c) => appendAudit(c, entry(22)))).rejects.toThrow();
    expect(await head()).toEqual(before);
    expect(await verifyAudit(pool)).toEqual([]);
    // The real head, without its lock, still links: the rows are right, so they are accepted.
    await forged(`${before.seq}:${before.hash}`, (c) => appendAudit(c, entry(23)));
    expect((await head()).seq).toBe(before.seq + 1);
    expect(await verifyAudit(pool)).toEqual([]);
  });

  it('many rows in one statement take consecutive seqs in their order and move the head once', async () => {
    const before = (await chain()).length;
    const n = 500;
    const values = Array.from({ length: n }, (_, i) => auditValues(entry(10_000 + i)));
    // A connection of its own: a pooled one's statistics may still hold earlier transactions' counts.
    const client = new pg.Client({ connectionString: url });
    await client.connect();
    let head_updates: number;
    try {
      await client.query('BEGIN');
      await client.query(
        `INSERT INTO audit_log (${AUDIT_COLUMNS})
       SELECT ${AUDIT_COLUMNS.split(', ')
         .map((c) => `u.${c}`)
         .join(', ')}
         FROM unnest(${AUDIT_CASTS.map((c, i) => `$${i + 1}::${c}[]`).join(', ')})
              WITH ORDINALITY AS u(${AUDIT_COLUMNS}, n)
        ORDER BY u.n`,
        AUDIT_CASTS.map((_, c) => values.map((v) => v[c])),
      );
      // This transaction's own count: one update of the head row for the statement, not two per row.
      const stats = await client.query(
        "SELECT n_tup_upd::int FROM pg_stat_xact_user_tables WHERE relname = 'audit_chain_head'",
      );
      head_updates = stats.rows[0].n_tup_upd;
      await client.query('COMMIT');
    } finally {
      await client.end();
    }
    expect(head_updates).toBe(1);
    const { rows } = await pool.query(
      'SELECT seq::int, object_id FROM audit_log WHERE seq > $1 ORDER BY seq',
      [before],
    );
    expect(rows.map((r) => r.object_id)).toEqual(Array.from({ length: n }, (_, i) => `card_${10_000 + i}`));
    expect(rows.at(-1)!.seq).toBe(before + n);
    expect((await head()).seq).toBe(before + n);
    expect(await verifyAudit(pool)).toEqual([]);
  });

  it('the database assigns seq and hashes whatever the caller sends, and masks card numbers in details', async () => {
    const before = (await chain()).length;
    await pool.query(
      `INSERT INTO audit_log (seq, actor, action, outcome, origin, prev_hash, hash)
       VALUES (999, 'cli', 'merchant.create', 'success', 'cli', '\\x01', '\\x02')`,
    );
    await appendAudit(pool, entry(6, { details: { note: 'card 4242 4242 4242 4242 by mistake' } }));
    const { rows } = await pool.query('SELECT seq::int, details FROM audit_log WHERE seq > $1 ORDER BY seq', [
      before,
    ]);
    expect(rows.map((r) => r.seq)).toEqual([before + 1, before + 2]);
    expect(JSON.stringify(rows[1].details)).not.toContain('4242 4242 4242 4242');
    expect(await verifyAudit(pool)).toEqual([]);
  });

  it('hashes the same bytes whatever the session time zone and date style', async () => {
    const client = await pool.connect();
    try {
      await client.query(`SET TimeZone = 'Pacific/Chatham'; SET DateStyle = 'SQL, DMY'`);
      await appendAudit(client, entry(7));
      expect(await verifyAudit(client)).toEqual([]);
    } finally {
      await client.query('RESET TimeZone; RESET DateStyle');
      client.release();
    }
    expect(await verifyAudit(pool)).toEqual([]);
  });

  it('refuses an entry that breaks its rules before it reaches the database', () => {
    expect(() => auditInsert(entry(1, { actor: '' }))).toThrow('assertion failed');
    expect(() => auditInsert(entry(1, { outcome: 'maybe' as 'success' }))).toThrow('assertion failed');
  });
});

describe('append-only', () => {
  it.each([
    ['UPDATE', `UPDATE audit_log SET outcome = 'success' WHERE seq = 5`],
    ['UPDATE of no row', 'UPDATE audit_log SET outcome = outcome WHERE false'],
    ['DELETE', 'DELETE FROM audit_log WHERE seq = 5'],
    ['TRUNCATE', 'TRUNCATE audit_log'],
    ['UPDATE of the head', 'UPDATE audit_chain_head SET seq = 1'],
    ['DELETE of the head', 'DELETE FROM audit_chain_head'],
    ['INSERT into the head', `INSERT INTO audit_chain_head (id, seq, hash) VALUES (false, 0, '\\x00')`],
  ])('%s is refused by the database', async (_, sql) => {
    await expect(pool.query(sql)).rejects.toMatchObject({ code: 'MN010' });
  });
});

describe('verification', () => {
  let last = 0;

  beforeAll(async () => {
    // A copy to restore from after each tampering, so every test starts from a sound log.
    await pool.query('CREATE TABLE audit_saved AS SELECT * FROM audit_log');
    last = (await chain()).length;
    expect(last).toBeGreaterThan(MAX_FINDINGS + 10);
  });

  async function restore(): Promise<void> {
    await tamper('DELETE FROM audit_log; INSERT INTO audit_log SELECT * FROM audit_saved');
    expect(await verifyAudit(pool)).toEqual([]);
  }

  it.each([
    ['details', `UPDATE audit_log SET details = details || '{"attempt": 0}' WHERE seq = 42`],
    ['action', `UPDATE audit_log SET action = 'vault.card.list' WHERE seq = 42`],
    ['at', `UPDATE audit_log SET at = at - interval '1 microsecond' WHERE seq = 42`],
    ['a NULL column', `UPDATE audit_log SET object_id = NULL WHERE seq = 42`],
  ])('an edited %s is reported at exactly that row', async (_, sql) => {
    await tamper(sql);
    expect(await verifyAudit(pool)).toEqual([
      { seq: 42, problem: 'hash does not match its content (edited?)' },
    ]);
    await restore();
  });

  it('an edit with the hash recomputed breaks the link to the next row', async () => {
    await tamper(
      `UPDATE audit_log SET actor = 'cli', hash = sha256(prev_hash || moneta_audit_content(seq, at, 'cli', action,
         outcome, origin, merchant_id, object_type, object_id, details)) WHERE seq = 42`,
    );
    const findings = await verifyAudit(pool);
    expect(findings).toEqual([{ seq: 43, problem: expect.stringContaining('prev_hash does not match') }]);
    await restore();
  });

  it('a deleted middle row is reported, in any batch size', async () => {
    await tamper('DELETE FROM audit_log WHERE seq BETWEEN 50 AND 52');
    const progress: number[] = [];
    for (const batch_size of [1, 7, 50, 5_000]) {
      const findings = await verifyAudit(pool, {
        batch_size,
        on_progress: (checked) => progress.push(checked),
      });
      expect(findings).toEqual([{ seq: 50, problem: expect.stringContaining('missing') }]);
      expect(findings[0]!.problem).toContain('up to 52');
    }
    expect(progress.at(-1)).toBe(last - 3);
    await restore();
  });

  it('a deleted tail is reported against the chain head', async () => {
    await tamper(`DELETE FROM audit_log WHERE seq >= ${last - 1}`);
    expect(await verifyAudit(pool)).toEqual([
      { seq: last - 1, problem: expect.stringContaining('tail deleted') },
    ]);
    await restore();
  });

  it('a head moved back or edited is reported', async () => {
    const client = await pool.connect();
    try {
      await client.query('ALTER TABLE audit_chain_head DISABLE TRIGGER USER');
      await client.query('UPDATE audit_chain_head SET seq = seq - 1');
      expect(await verifyAudit(client)).toEqual([
        { seq: last, problem: expect.stringContaining('past the chain head') },
        { seq: last - 1, problem: expect.stringContaining('differs from the chain head') },
      ]);
      await client.query('UPDATE audit_chain_head SET seq = seq + 1');
      await client.query('ALTER TABLE audit_chain_head ENABLE TRIGGER USER');
    } finally {
      client.release();
    }
    expect(await verifyAudit(pool)).toEqual([]);
  });

  it(`reports at most ${MAX_FINDINGS} findings, first rows first`, async () => {
    await tamper(`UPDATE audit_log SET outcome = 'failure' WHERE seq <= ${MAX_FINDINGS + 10}`);
    const findings = await verifyAudit(pool, { batch_size: 30 });
    expect(findings).toHaveLength(MAX_FINDINGS);
    expect(findings.map((f) => f.seq)).toEqual(Array.from({ length: MAX_FINDINGS }, (_, i) => i + 1));
    await restore();
  });
});
