import type { Queryable } from '../db/pool.ts';
import { AccountFlags, TransferFlags } from './types.ts';

export interface Violation {
  check: LedgerCheck;
  detail: Record<string, unknown>;
}

/** Most violations reported per check: one broken invariant usually breaks many rows. */
const MAX_REPORTED = 100;

export interface VerifyOptions {
  /** Called after each check with how many violations it found (for progress output). */
  onCheck?: (check: string, violations: number) => void;
  /** Called after each chunk of accounts with how many have been checked so far. */
  onAccounts?: (checked: number) => void;
}

/** Accounts whose balances one statement recomputes from their transfers. */
export const ACCOUNT_CHUNK = 2_000;
/** Upper bound on chunks in one full verification (20 million accounts). */
const MAX_CHUNKS = 10_000;

/**
 * The ledger's invariants, recomputed from the transfers: every account's four balances
 * equal the sums of its transfers (pending amounts only while still pending; posted amounts
 * from plain transfers and posts), per ledger debits equal credits, no account breaks its
 * limit flag, and no pending transfer was posted or voided beyond its amount. Each check is
 * one statement, so it sees one consistent snapshot even while batches commit.
 */
export async function verifyLedger(db: Queryable, opts: VerifyOptions = {}): Promise<Violation[]> {
  const found = new Findings(opts.onCheck);
  let broken_accounts: Record<string, unknown>[] = [];
  let broken_count = 0;
  let after: string | null = null;
  let checked = 0;
  for (let chunk = 0; chunk < MAX_CHUNKS; chunk += 1) {
    const result = await verifyAccountChunk(db, after, ACCOUNT_CHUNK);
    // Only the first MAX_REPORTED rows are kept; the count covers them all.
    broken_count += result.violations.length;
    if (broken_accounts.length < MAX_REPORTED) broken_accounts = broken_accounts.concat(result.violations);
    checked += result.checked;
    opts.onAccounts?.(checked);
    if (result.last_id === null || result.checked < ACCOUNT_CHUNK) break;
    after = result.last_id;
  }
  found.report('account_balances_match_transfers', broken_accounts, broken_count);
  await verifyTotals(db, found);
  return found.violations;
}

/** The invariants the checks report on, by name (metrics carry one series each). */
export const LEDGER_CHECKS = [
  'account_balances_match_transfers',
  'ledger_debits_equal_credits',
  'account_limit_flags_hold',
  'pending_resolved_at_most_once_within_amount',
] as const;
export type LedgerCheck = (typeof LEDGER_CHECKS)[number];

/** What the checks found: at most MAX_REPORTED rows per check, and progress for the caller. */
class Findings {
  readonly violations: Violation[] = [];

  constructor(private readonly onCheck?: (check: string, violations: number) => void) {}

  report(check: LedgerCheck, rows: readonly Record<string, unknown>[], count = rows.length): void {
    for (const detail of rows.slice(0, MAX_REPORTED)) this.violations.push({ check, detail });
    this.onCheck?.(check, count);
  }
}

export interface ChunkResult {
  violations: Record<string, unknown>[];
  checked: number;
  /** The last account id of the chunk; the next chunk starts after it. */
  last_id: string | null;
}

/** Recomputes the balances of up to `limit` accounts after `after` (in id order) from their transfers. */
export async function verifyAccountChunk(
  db: Queryable,
  after: string | null,
  limit: number,
): Promise<ChunkResult> {
  const { rows } = await db.query(
    `WITH chunk AS (
       SELECT * FROM ledger_accounts WHERE $1::uuid IS NULL OR id > $1::uuid ORDER BY id LIMIT $2),
     computed AS (
       SELECT a.*, d.dp, d.dpo, c.cp, c.cpo
         FROM chunk a
         CROSS JOIN LATERAL (
           SELECT coalesce(sum(t.amount) FILTER (WHERE t.flags & $3 <> 0 AND p.state = $5), 0) AS dp,
                  coalesce(sum(t.amount) FILTER (WHERE t.flags & $3 = 0 AND t.flags & $4 = 0), 0) AS dpo
             FROM ledger_transfers t LEFT JOIN ledger_pending_transfers p ON p.id = t.id
            WHERE t.debit_account_id = a.id) d
         CROSS JOIN LATERAL (
           SELECT coalesce(sum(t.amount) FILTER (WHERE t.flags & $3 <> 0 AND p.state = $5), 0) AS cp,
                  coalesce(sum(t.amount) FILTER (WHERE t.flags & $3 = 0 AND t.flags & $4 = 0), 0) AS cpo
             FROM ledger_transfers t LEFT JOIN ledger_pending_transfers p ON p.id = t.id
            WHERE t.credit_account_id = a.id) c)
     SELECT id, debits_pending, debits_posted, credits_pending, credits_posted, dp, dpo, cp, cpo,
            (debits_pending <> dp OR debits_posted <> dpo OR credits_pending <> cp OR credits_posted <> cpo) AS broken
       FROM computed ORDER BY id`,
    [after, limit, TransferFlags.pending, TransferFlags.void_pending_transfer, 'pending'],
  );
  const violations = rows
    .filter((r) => r.broken)
    .map(({ broken: _b, ...rest }) => rest as Record<string, unknown>);
  return { violations, checked: rows.length, last_id: rows.length > 0 ? (rows.at(-1)!.id as string) : null };
}

/** The checks over all accounts at once: cheap aggregates, run in full every time. */
async function verifyTotals(db: Queryable, found: Findings): Promise<void> {
  const pending = TransferFlags.pending;
  const resolving = TransferFlags.post_pending_transfer | TransferFlags.void_pending_transfer;
  const ledgers = await db.query(
    `SELECT ledger, sum(debits_pending + debits_posted) AS debits, sum(credits_pending + credits_posted) AS credits
       FROM ledger_accounts GROUP BY ledger
     HAVING sum(debits_pending + debits_posted) <> sum(credits_pending + credits_posted)`,
  );
  found.report('ledger_debits_equal_credits', ledgers.rows);

  const limits = await db.query(
    `SELECT id, flags, debits_pending, debits_posted, credits_pending, credits_posted FROM ledger_accounts
      WHERE (flags & $1 <> 0 AND debits_pending + debits_posted > credits_posted)
         OR (flags & $2 <> 0 AND credits_pending + credits_posted > debits_posted)
      LIMIT $3`,
    [AccountFlags.debits_must_not_exceed_credits, AccountFlags.credits_must_not_exceed_debits, MAX_REPORTED],
  );
  found.report('account_limit_flags_hold', limits.rows);

  const resolutions = await db.query(
    `SELECT p.id, p.amount, count(r.id) AS resolutions, coalesce(sum(r.amount), 0) AS resolved_amount
       FROM ledger_transfers p JOIN ledger_transfers r ON r.pending_id = p.id AND r.flags & $2 <> 0
      WHERE p.flags & $1 <> 0
      GROUP BY p.id, p.amount
     HAVING count(r.id) > 1 OR coalesce(sum(r.amount), 0) > p.amount
      LIMIT $3`,
    [pending, resolving, MAX_REPORTED],
  );
  found.report('pending_resolved_at_most_once_within_amount', resolutions.rows);
}

/**
 * The scheduled check: each step verifies the totals and the next chunk of accounts,
 * wrapping around at the end, so every account is rechecked every
 * (accounts / ACCOUNT_CHUNK) steps without any step being long.
 */
export class IncrementalVerifier {
  private cursor: string | null = null;

  constructor(private readonly db: Queryable) {}

  async step(): Promise<{ violations: Violation[]; checked_accounts: number; wrapped: boolean }> {
    const found = new Findings();
    const chunk = await verifyAccountChunk(this.db, this.cursor, ACCOUNT_CHUNK);
    found.report('account_balances_match_transfers', chunk.violations);
    const wrapped = chunk.checked < ACCOUNT_CHUNK;
    this.cursor = wrapped ? null : chunk.last_id;
    await verifyTotals(this.db, found);
    return { violations: found.violations, checked_accounts: chunk.checked, wrapped };
  }
}
