import { type AuditContext, auditInsert } from '../audit/index.ts';
import { type Pool, type Queryable, withTransaction } from '../db/pool.ts';
import { assert, invalidRequest, resourceMissing } from '../lib/errors.ts';
import { newId } from '../lib/ids.ts';
import { generateApiKey, hashApiKey, type KeyKind, parseApiKey } from './keys.ts';

export interface Merchant {
  id: string;
  name: string;
  is_demo: boolean;
  is_platform: boolean;
  created_at: Date;
}

export interface IssuedKeys {
  secret_key: string;
  publishable_key: string;
}

export interface CreatedMerchant {
  merchant: Merchant;
  test: IssuedKeys;
  live: IssuedKeys | null;
}

export interface AuthenticatedKey {
  api_key_id: string;
  merchant_id: string;
  kind: KeyKind;
  livemode: boolean;
  expires_at_ms: number | null;
  /** The platform's own keys: they may use the operator APIs (the ledger). */
  platform: boolean;
}

const MAX_NAME_LENGTH = 200;
/** Who acts when a caller does not say: Moneta itself (the demo merchant at the first start). */
const SYSTEM: AuditContext = { actor: 'system', origin: 'system' };

async function insertKey(db: Queryable, merchant_id: string, kind: KeyKind, livemode: boolean) {
  const raw = generateApiKey(kind, livemode);
  const id = newId('key');
  await db.query(
    `INSERT INTO api_keys (id, merchant_id, kind, livemode, key_hash, key_last4) VALUES ($1, $2, $3, $4, $5, $6)`,
    [id, merchant_id, kind, livemode, hashApiKey(raw), raw.slice(-4)],
  );
  return { id, raw };
}

async function issuePair(db: Queryable, merchant_id: string, livemode: boolean): Promise<IssuedKeys> {
  const secret = await insertKey(db, merchant_id, 'secret', livemode);
  const publishable = await insertKey(db, merchant_id, 'publishable', livemode);
  return { secret_key: secret.raw, publishable_key: publishable.raw };
}

export async function createMerchant(
  pool: Pool,
  input: { name: string; is_demo?: boolean; is_platform?: boolean; with_live_keys?: boolean },
  by: AuditContext = SYSTEM,
): Promise<CreatedMerchant> {
  const name = input.name.trim();
  if (name.length === 0 || name.length > MAX_NAME_LENGTH) {
    throw invalidRequest(`name must be 1 to ${MAX_NAME_LENGTH} characters`, 'name');
  }
  return withTransaction(pool, async (tx) => {
    const id = newId('acct');
    const { rows } = await tx.query(
      `INSERT INTO merchants (id, name, is_demo, is_platform) VALUES ($1, $2, $3, $4)
       RETURNING id, name, is_demo, is_platform, created_at`,
      [id, name, input.is_demo ?? false, input.is_platform ?? false],
    );
    const test = await issuePair(tx, id, false);
    const live = input.with_live_keys ? await issuePair(tx, id, true) : null;
    const merchant = rows[0] as Merchant;
    // With the COMMIT: the audit row exists exactly when the merchant does.
    await tx.commit([
      auditInsert({
        ...by,
        action: 'merchant.create',
        outcome: 'success',
        merchant_id: id,
        object_type: 'merchant',
        object_id: id,
        details: { is_demo: merchant.is_demo, is_platform: merchant.is_platform, live_keys: live !== null },
      }),
    ]);
    return { merchant, test, live };
  });
}

export async function countMerchants(db: Queryable): Promise<number> {
  const { rows } = await db.query('SELECT count(*)::int AS n FROM merchants');
  return rows[0].n as number;
}

/**
 * Looks a key up by its hash. A rolled key stays valid until its `expires_at`.
 * Returns null for unknown or expired keys; the caller answers 401 without saying which.
 */
export async function findActiveKey(
  db: Queryable,
  raw: string,
  now_ms = Date.now(),
): Promise<AuthenticatedKey | null> {
  const parsed = parseApiKey(raw);
  if (!parsed) return null;
  const { rows } = await db.query(
    `SELECT k.id, k.merchant_id, k.kind, k.livemode, k.expires_at, m.is_platform
       FROM api_keys k JOIN merchants m ON m.id = k.merchant_id WHERE k.key_hash = $1`,
    [hashApiKey(raw)],
  );
  const row = rows[0];
  if (!row) return null;
  // The prefix is part of what was hashed, so these agree unless the table was edited by hand.
  assert(
    row.kind === parsed.kind && row.livemode === parsed.livemode,
    'api key prefix matches its stored kind',
  );
  const expires_at_ms = row.expires_at ? (row.expires_at as Date).getTime() : null;
  if (expires_at_ms !== null && expires_at_ms <= now_ms) return null;
  return {
    api_key_id: row.id,
    merchant_id: row.merchant_id,
    kind: row.kind,
    livemode: row.livemode,
    expires_at_ms,
    platform: row.is_platform,
  };
}

export interface RolledKey {
  api_key_id: string;
  key: string;
  kind: KeyKind;
  livemode: boolean;
  previous_keys_expire_at: Date;
  previous_key_count: number;
}

/**
 * Issues a new key of the given kind and mode and sets every currently valid key of that
 * kind and mode to expire after `expire_in_hours` (0 = now). Creates the first key when
 * there is none (how a merchant gets live keys later).
 */
export async function rollKey(
  pool: Pool,
  input: { merchant_id: string; kind: KeyKind; livemode: boolean; expire_in_hours: number },
  by: AuditContext = SYSTEM,
): Promise<RolledKey> {
  if (
    !Number.isInteger(input.expire_in_hours) ||
    input.expire_in_hours < 0 ||
    input.expire_in_hours > 24 * 30
  ) {
    throw invalidRequest('expire-in-hours must be an integer from 0 to 720', 'expire_in_hours');
  }
  return withTransaction(pool, async (tx) => {
    const merchant = await tx.query('SELECT id FROM merchants WHERE id = $1 FOR UPDATE', [input.merchant_id]);
    if (merchant.rowCount === 0) throw resourceMissing('merchant', input.merchant_id, 'merchant');
    const fresh = await insertKey(tx, input.merchant_id, input.kind, input.livemode);
    const { rows } = await tx.query(
      `UPDATE api_keys SET expires_at = now() + make_interval(hours => $5), rolled_to = $4
        WHERE merchant_id = $1 AND kind = $2 AND livemode = $3 AND id <> $4
          AND (expires_at IS NULL OR expires_at > now() + make_interval(hours => $5))
        RETURNING id, expires_at`,
      [input.merchant_id, input.kind, input.livemode, fresh.id, input.expire_in_hours],
    );
    const expires = rows[0]?.expires_at ?? new Date(Date.now() + input.expire_in_hours * 3_600_000);
    await tx.commit([
      auditInsert({
        ...by,
        action: 'api_key.roll',
        outcome: 'success',
        merchant_id: input.merchant_id,
        object_type: 'api_key',
        object_id: fresh.id,
        details: {
          kind: input.kind,
          livemode: input.livemode,
          expire_in_hours: input.expire_in_hours,
          previous_key_ids: rows.map((r) => r.id as string),
        },
      }),
    ]);
    return {
      api_key_id: fresh.id,
      key: fresh.raw,
      kind: input.kind,
      livemode: input.livemode,
      previous_keys_expire_at: expires,
      previous_key_count: rows.length,
    };
  });
}
