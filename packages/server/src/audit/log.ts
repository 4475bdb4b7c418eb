import type { Queryable, Statement } from '../db/pool.ts';
import { assert } from '../lib/errors.ts';
import { redactCardNumbers } from '../ops/redact.ts';

export const AUDIT_OUTCOMES = ['success', 'failure', 'denied'] as const;
export type AuditOutcome = (typeof AUDIT_OUTCOMES)[number];

/**
 * One audited event. `seq`, `at` and the hashes are assigned by the database (see the
 * 0005_audit migration), never by the caller.
 */
export interface AuditEntry {
  /** Who: `api_key:<id>`, `operator:<id>`, `cli`, `system`. */
  actor: string;
  /** What: `<area>.<object>.<verb>`, e.g. `vault.card.decrypt`, `merchant.create`. */
  action: string;
  outcome: AuditOutcome;
  /** From where: an IP address, `cli`, `job:<name>`. */
  origin: string;
  merchant_id?: string | null;
  object_type?: string | null;
  object_id?: string | null;
  /** Ids, counts and flags only: never card data, keys or secrets. */
  details?: Record<string, unknown>;
}

/** Who acts and from where, for services that audit on their caller's behalf. */
export interface AuditContext {
  actor: string;
  origin: string;
}

const MAX_LABEL_LENGTH = 200; // the table's CHECK constraints
const MAX_DETAILS_BYTES = 8_192; // an audit row describes an event; it is not a payload store

/**
 * The INSERT for one entry: a single statement with placeholders only, so a caller can hand
 * it to `tx.commit([...writes, auditInsert(entry)])` and the audit row commits with (and
 * only with) the change it records. Append it last: the row takes the chain's head lock,
 * which is then held only for the commit.
 */
export function auditInsert(entry: AuditEntry): Statement {
  return {
    name: 'moneta_audit_insert',
    text: `INSERT INTO audit_log (${AUDIT_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8::jsonb)`,
    values: auditValues(entry),
  };
}

/** The columns a caller fills, in the order of `auditValues`. */
export const AUDIT_COLUMNS = 'actor, action, outcome, origin, merchant_id, object_type, object_id, details';

/** Their types, for statements that take each column as an array (`unnest`). */
export const AUDIT_CASTS = ['text', 'text', 'text', 'text', 'text', 'text', 'text', 'jsonb'] as const;

/** An entry's column values (checked, its details masked and serialized). */
export function auditValues(entry: AuditEntry): (string | null)[] {
  checkEntry(entry);
  // The same mask as log lines: a card number a caller passed by mistake never reaches the table.
  const details = redactCardNumbers(JSON.stringify(entry.details ?? {}));
  assert(Buffer.byteLength(details) <= MAX_DETAILS_BYTES, 'audit details stay small');
  return [
    entry.actor,
    entry.action,
    entry.outcome,
    entry.origin,
    entry.merchant_id ?? null,
    entry.object_type ?? null,
    entry.object_id ?? null,
    details,
  ];
}

/** Appends one entry on its own (a single statement commits atomically), or inside `db`'s transaction. */
export async function appendAudit(db: Queryable, entry: AuditEntry): Promise<void> {
  const result = await db.query(auditInsert(entry));
  assert(result.rowCount === 1, 'an audit insert adds one row');
}

function checkEntry(entry: AuditEntry): void {
  for (const label of [entry.actor, entry.action, entry.origin]) {
    assert(
      label.length > 0 && label.length <= MAX_LABEL_LENGTH,
      'audit actor, action and origin are 1-200 chars',
    );
  }
  assert(AUDIT_OUTCOMES.includes(entry.outcome), 'audit outcome is success, failure or denied');
  const details = entry.details ?? {};
  assert(
    typeof details === 'object' && details !== null && !Array.isArray(details),
    'audit details are an object',
  );
}
