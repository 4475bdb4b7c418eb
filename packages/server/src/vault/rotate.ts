import { auditInsert } from '../audit/index.ts';
import { type Pool, withTransaction } from '../db/pool.ts';
import { assert } from '../lib/errors.ts';
import { type KeyProvider, kekCheckValue } from './keys.ts';

/**
 * KEK rotation: every data key is unwrapped under its old KEK version and wrapped again
 * under the new one, in bounded batches (one transaction each), so reads keep working
 * throughout (a row is under the old version or the new one, and both are held until the
 * end). Interrupted, it resumes: running it again finishes the rotation it finds half
 * done instead of starting another.
 *
 * Other processes keep wrapping new cards under the version they loaded until they notice
 * the new one (they check every `refresh_ms`). So after the first pass the rotation waits
 * that long, then forbids old versions with a CHECK constraint (a writer that still uses
 * one fails, reloads its keys and retries), sweeps what was written meanwhile, and proves
 * with VALIDATE CONSTRAINT that nothing under an old version is left before it retires
 * (destroys) the old versions.
 */
export interface RotationOptions {
  batch_size: number;
  /** How long other processes may take to notice a new version (see Vault.startRefresh). */
  settle_ms: number;
  on_progress?: (p: RotationProgress) => void;
  /** Checked between batches: an aborted rotation stops cleanly and resumes next time. */
  signal?: AbortSignal;
  /** For the audit log: who rotates, from where. */
  actor: string;
  origin: string;
}

export interface RotationProgress {
  phase: 'rewrap' | 'settle' | 'sweep' | 'retire';
  done: number;
  total: number;
}

export interface RotationResult {
  version: number;
  /** True when this run added the version; false when it finished an earlier rotation. */
  added: boolean;
  rewrapped: number;
  retired: number[];
}

/**
 * The tables holding wrapped data keys, and what each key is bound to: the batch keys, and
 * the keys of their own that cards and CVCs sealed before batch keys still carry (`own`
 * matches a partial index, so finding them reads no other card).
 */
const DATA_KEYS = { table: 'vault_data_keys', id: 'id', own: '', context: (id: string) => `dek:${id}` };
const TABLES = [
  DATA_KEYS,
  {
    table: 'vault_cards',
    id: 'id',
    own: 'AND wrapped_key IS NOT NULL',
    context: (id: string) => `pan:${id}`,
  },
  {
    table: 'vault_cvcs',
    id: 'card_id',
    own: 'AND wrapped_key IS NOT NULL',
    context: (id: string) => `cvc:${id}`,
  },
] as const;
type KeyTable = (typeof TABLES)[number];

/** Batches per table per pass; with batch_size 1,000 that is 100 million rows. */
const MAX_BATCHES = 100_000;

export async function rotateKek(
  pool: Pool,
  keys: KeyProvider,
  opts: RotationOptions,
): Promise<RotationResult> {
  assert(opts.batch_size >= 1 && opts.batch_size <= 10_000, 'rotation batch within 1..10000');
  await keys.reload();
  const unfinished = await versionsBelow(pool, keys.currentVersion());
  const added = unfinished.length === 0;
  if (added) await keys.addVersion();
  const version = keys.currentVersion();
  await pool.query(
    'INSERT INTO vault_kek_versions (version, check_value) VALUES ($1, $2) ON CONFLICT (version) DO NOTHING',
    [version, await kekCheckValue(keys, version)],
  );
  let rewrapped = await rewrapAll(pool, keys, version, 'rewrap', opts);
  opts.on_progress?.({ phase: 'settle', done: 0, total: 1 });
  await sleep(opts.settle_ms, opts.signal);
  // Only batch keys are still written; cards and CVCs no longer carry keys of their own.
  await forbidBelow(pool, DATA_KEYS, version);
  rewrapped += await rewrapAll(pool, keys, version, 'sweep', opts);
  await pool.query(`ALTER TABLE ${DATA_KEYS.table} VALIDATE CONSTRAINT ${DATA_KEYS.table}_kek_current`);
  const left = await stillUnder(pool, version);
  assert(left === 0, `${left} data keys are still wrapped under an older KEK version`);
  const retired = (await versionsBelow(pool, version)).filter((v) => v < version);
  opts.on_progress?.({ phase: 'retire', done: 0, total: retired.length });
  await keys.retire(retired);
  await withTransaction(pool, async (tx) => {
    await tx.query('UPDATE vault_kek_versions SET retired_at = now() WHERE version = ANY($1::int[])', [
      retired,
    ]);
    await tx.commit([
      auditInsert({
        actor: opts.actor,
        action: 'kek.rotate',
        outcome: 'success',
        origin: opts.origin,
        object_type: 'kek',
        object_id: String(version),
        details: { retired, rewrapped },
      }),
    ]);
  });
  opts.on_progress?.({ phase: 'retire', done: retired.length, total: retired.length });
  return { version, added, rewrapped, retired };
}

/** Versions older than `current` that are not retired yet, or still wrap some data key. */
async function versionsBelow(pool: Pool, current: number): Promise<number[]> {
  const { rows } = await pool.query(
    `SELECT version FROM vault_kek_versions WHERE version < $1 AND retired_at IS NULL
     ${TABLES.map((t) => `UNION SELECT DISTINCT kek_version FROM ${t.table} WHERE kek_version < $1 ${t.own}`).join('\n     ')}`,
    [current],
  );
  return rows.map((r) => r.version as number).sort((a, b) => a - b);
}

/** Data keys in any table wrapped under a version other than `version` (none, before retiring). */
async function stillUnder(pool: Pool, version: number): Promise<number> {
  const counts = await Promise.all(
    TABLES.map((t) =>
      pool.query(`SELECT count(*)::int AS n FROM ${t.table} WHERE kek_version <> $1 ${t.own}`, [version]),
    ),
  );
  return counts.reduce((sum, r) => sum + (r.rows[0].n as number), 0);
}

async function rewrapAll(
  pool: Pool,
  keys: KeyProvider,
  version: number,
  phase: RotationProgress['phase'],
  opts: RotationOptions,
): Promise<number> {
  const total = await stillUnder(pool, version);
  let done = 0;
  opts.on_progress?.({ phase, done, total });
  for (const t of TABLES) {
    let cursor = '';
    for (let batch = 0; batch < MAX_BATCHES; batch += 1) {
      opts.signal?.throwIfAborted();
      const result = await rewrapBatch(pool, keys, t, version, cursor, opts.batch_size);
      done += result.rewrapped;
      opts.on_progress?.({ phase, done, total: Math.max(total, done) });
      if (result.last === null) break;
      cursor = result.last;
    }
  }
  return done;
}

/** One transaction: the next rows after `cursor` under another version, re-wrapped. */
async function rewrapBatch(
  pool: Pool,
  keys: KeyProvider,
  t: KeyTable,
  version: number,
  cursor: string,
  limit: number,
): Promise<{ rewrapped: number; last: string | null }> {
  return withTransaction(pool, async (tx) => {
    const { rows } = await tx.query(
      `SELECT ${t.id} AS id, kek_version, wrapped_key FROM ${t.table}
        WHERE ${t.id} > $1 AND kek_version <> $2 ${t.own} ORDER BY ${t.id} LIMIT $3 FOR UPDATE`,
      [cursor, version, limit],
    );
    if (rows.length === 0) return { rewrapped: 0, last: null };
    const ids: string[] = [];
    const wrapped: Buffer[] = [];
    for (const row of rows) {
      const context = t.context(row.id as string);
      const data_key = await keys.unwrap({ kek_version: row.kek_version, wrapped: row.wrapped_key }, context);
      const next = await keys.wrap(data_key, context);
      data_key.fill(0);
      assert(next.kek_version === version, 'data keys are wrapped under the rotation target');
      ids.push(row.id as string);
      wrapped.push(next.wrapped);
    }
    await tx.commit([
      {
        text: `UPDATE ${t.table} AS c SET kek_version = $3, wrapped_key = v.wrapped
                 FROM unnest($1::text[], $2::bytea[]) AS v(id, wrapped) WHERE c.${t.id} = v.id`,
        values: [ids, wrapped, version],
      },
    ]);
    return { rewrapped: rows.length, last: rows.length < limit ? null : ids.at(-1)! };
  });
}

/** From now on no row may be written under a version below `version` (checked for new rows only). */
async function forbidBelow(pool: Pool, t: KeyTable, version: number): Promise<void> {
  assert(Number.isInteger(version) && version >= 1, 'a KEK version is a positive integer');
  await pool.query(
    `ALTER TABLE ${t.table} DROP CONSTRAINT IF EXISTS ${t.table}_kek_current,
       ADD CONSTRAINT ${t.table}_kek_current CHECK (kek_version >= ${version}) NOT VALID`,
  );
}

function sleep(ms: number, signal: AbortSignal | undefined): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(signal.reason);
    const timer = setTimeout(resolve, ms);
    signal?.addEventListener('abort', () => {
      clearTimeout(timer);
      reject(signal.reason);
    });
  });
}

/** True when a write failed because it used a KEK version a rotation has since forbidden. */
export function isRetiredKekWrite(err: unknown): boolean {
  const e = err as { code?: string; constraint?: string };
  return e.code === '23514' && (e.constraint?.endsWith('_kek_current') ?? false);
}
