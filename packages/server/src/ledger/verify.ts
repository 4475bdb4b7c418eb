import type { Queryable } from '../db/pool.ts';
import { AccountFlags, TransferFlags } from './types.ts';

export interface Violation {
  check: string;
  detail: Record<string, unknown>;
}

/** Most violations reported per check: one broken invariant usually breaks many rows. */
const MAX_REPORTED = 100;

/**
 * The ledger's invariants, recomputed from the transfers: every account's four balances
 * equal the sums of its transfers (pending amounts only while still pending; posted amounts
 * from plain transfers and posts), per ledger debits equal credits, no account breaks its
 * limit flag, and no pending transfer was posted or voided beyond its amount.
 */
export interface VerifyOptions {
  /** Called after each check with how many violations it found (for progress output). */
  onCheck?: (check: string, violations: number) => void;
}

export async function verifyLedger(db: Queryable, opts: VerifyOptions = {}): Promise<Violation[]> {
  const out: Violation[] = [];
  const report = (check: string, rows: Record<string, unknown>[]) => {
    for (const detail of rows) out.push({ check, detail: jsonSafe(detail) });
    opts.onCheck?.(check, rows.length);
  };
  const pending = TransferFlags.pending;
  const resolving = TransferFlags.post_pending_transfer | TransferFlags.void_pending_transfer;
  const voiding = TransferFlags.void_pending_transfer;
  const balances = await db.query(
    `WITH sides AS (
       SELECT t.debit_account_id AS account_id, 'd' AS side, t.amount, t.flags, p.state
         FROM ledger_transfers t LEFT JOIN ledger_pending_transfers p ON p.id = t.id
       UNION ALL
       SELECT t.credit_account_id, 'c', t.amount, t.flags, p.state
         FROM ledger_transfers t LEFT JOIN ledger_pending_transfers p ON p.id = t.id),
     sums AS (
       SELECT account_id,
              sum(amount) FILTER (WHERE side = 'd' AND flags & $1 <> 0 AND state = 'pending') AS dp,
              sum(amount) FILTER (WHERE side = 'd' AND flags & $1 = 0 AND flags & $3 = 0) AS dpo,
              sum(amount) FILTER (WHERE side = 'c' AND flags & $1 <> 0 AND state = 'pending') AS cp,
              sum(amount) FILTER (WHERE side = 'c' AND flags & $1 = 0 AND flags & $3 = 0) AS cpo
         FROM sides GROUP BY account_id)
     SELECT a.id, a.debits_pending, a.debits_posted, a.credits_pending, a.credits_posted,
            coalesce(s.dp, 0) AS dp, coalesce(s.dpo, 0) AS dpo, coalesce(s.cp, 0) AS cp, coalesce(s.cpo, 0) AS cpo
       FROM ledger_accounts a LEFT JOIN sums s ON s.account_id = a.id
      WHERE a.debits_pending <> coalesce(s.dp, 0) OR a.debits_posted <> coalesce(s.dpo, 0)
         OR a.credits_pending <> coalesce(s.cp, 0) OR a.credits_posted <> coalesce(s.cpo, 0)
      LIMIT $2`,
    [pending, MAX_REPORTED, voiding],
  );
  report('account_balances_match_transfers', balances.rows);

  const ledgers = await db.query(
    `SELECT ledger, sum(debits_pending + debits_posted) AS debits, sum(credits_pending + credits_posted) AS credits
       FROM ledger_accounts GROUP BY ledger
     HAVING sum(debits_pending + debits_posted) <> sum(credits_pending + credits_posted)`,
  );
  report('ledger_debits_equal_credits', ledgers.rows);

  const limits = await db.query(
    `SELECT id, flags, debits_pending, debits_posted, credits_pending, credits_posted FROM ledger_accounts
      WHERE (flags & $1 <> 0 AND debits_pending + debits_posted > credits_posted)
         OR (flags & $2 <> 0 AND credits_pending + credits_posted > debits_posted)
      LIMIT $3`,
    [AccountFlags.debits_must_not_exceed_credits, AccountFlags.credits_must_not_exceed_debits, MAX_REPORTED],
  );
  report('account_limit_flags_hold', limits.rows);

  const resolutions = await db.query(
    `SELECT p.id, p.amount, count(r.id) AS resolutions, coalesce(sum(r.amount), 0) AS resolved_amount
       FROM ledger_transfers p JOIN ledger_transfers r ON r.pending_id = p.id AND r.flags & $2 <> 0
      WHERE p.flags & $1 <> 0
      GROUP BY p.id, p.amount
     HAVING count(r.id) > 1 OR coalesce(sum(r.amount), 0) > p.amount
      LIMIT $3`,
    [pending, resolving, MAX_REPORTED],
  );
  report('pending_resolved_at_most_once_within_amount', resolutions.rows);
  return out;
}

/** Database rows with bigint columns as strings, so a report serialises as JSON. */
function jsonSafe(row: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(row)) out[k] = typeof v === 'bigint' ? v.toString() : v;
  return out;
}
