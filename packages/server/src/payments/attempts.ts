import { type Connector, ConnectorError, type Inquiry } from '../connectors/index.ts';
import { type Gather, gathered } from '../db/gather.ts';
import type { Statement, Tx } from '../db/pool.ts';
import type { RequestScope } from '../idempotency/index.ts';
import { assert } from '../lib/errors.ts';
import { newId } from '../lib/ids.ts';
import type { Scope } from './shared.ts';
import { INTENT_COLUMNS, type IntentRow } from './store.ts';

/** Acquirer calls and their attempt rows: the call, the inquiry that settles a lost answer, and the statements that record them. */

/** How often a call whose answer was lost is asked about at once, before the janitor takes over. */
export const INLINE_INQUIRIES = 3;

export const INLINE_INQUIRY_PAUSE_MS = 200;

/** The call's answer, or what became of it when the answer was lost (null: still unknown). */
export async function callAcquirer<T>(
  connector: Connector,
  reference: string,
  call: () => Promise<T>,
  fromInquiry: (inquiry: Inquiry) => T,
): Promise<{ answer: T } | { failed: ConnectorError } | { unknown: ConnectorError }> {
  try {
    return { answer: await call() };
  } catch (err) {
    if (!(err instanceof ConnectorError)) throw err;
    if (err.outcome === 'failed') return { failed: err };
    for (let i = 0; i < INLINE_INQUIRIES; i += 1) {
      await new Promise((r) => setTimeout(r, INLINE_INQUIRY_PAUSE_MS));
      try {
        const inquiry = await connector.inquire(reference);
        // Not found right after the call may still be a request in flight: the janitor decides later.
        if (inquiry) return { answer: fromInquiry(inquiry) };
      } catch (inquiryErr) {
        if (!(inquiryErr instanceof ConnectorError)) throw inquiryErr;
      }
    }
    return { unknown: err };
  }
}

/** A new attempt (`started`, due for the janitor in a minute should the request die); not sent. */
export function attemptInsert(
  scope: Scope,
  intent: Pick<IntentRow, 'id' | 'acquirer'>,
  kind: 'authorize' | 'capture' | 'void' | 'refund',
  amount: number,
  refund_id: string | null = null,
): { id: string; statement: Statement } {
  const id = newId('pa');
  return {
    id,
    statement: {
      name: 'moneta_attempt_insert',
      text: `INSERT INTO payment_attempts (id, payment_intent_id, merchant_id, livemode, kind, amount, status, acquirer,
               refund_id, next_inquiry_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, now() + make_interval(secs => $10))`,
      values: [
        id,
        intent.id,
        scope.merchant_id,
        scope.livemode,
        kind,
        amount,
        'started',
        intent.acquirer,
        refund_id,
        60,
      ],
    },
  };
}

export async function insertAttempt(
  tx: Tx,
  scope: RequestScope,
  intent: IntentRow,
  kind: 'authorize' | 'capture' | 'void' | 'refund',
  amount: number,
  refund_id: string | null = null,
): Promise<string> {
  const { id, statement } = attemptInsert(scope, intent, kind, amount, refund_id);
  await tx.query(statement);
  return id;
}

/** An attempt's outcome; `unknown` leaves it to an inquiry in ten seconds. Not sent. */
export function attemptResolution(
  id: string,
  status: 'succeeded' | 'failed' | 'unknown',
  detail: Record<string, unknown>,
): Statement {
  const unknown = status === 'unknown';
  return {
    name: 'moneta_attempt_resolve',
    text: `UPDATE payment_attempts SET status = $2, detail = $3,
             resolved_at = CASE WHEN $4 THEN NULL ELSE now() END,
             -- Unknown again: never later than already scheduled, so a client retrying every few
             -- seconds cannot keep the janitor (and its review deadline) off the attempt.
             next_inquiry_at = CASE WHEN $4
               THEN least(next_inquiry_at, now() + make_interval(secs => $5)) ELSE NULL END
           WHERE id = $1`,
    values: [id, status, detail, unknown, 10],
  };
}

export async function resolveAttempt(
  tx: Tx,
  id: string,
  status: 'succeeded' | 'failed' | 'unknown',
  detail: Record<string, unknown>,
): Promise<void> {
  await tx.query(attemptResolution(id, status, detail));
}

/**
 * Locks the intent for recording an attempt's outcome, and tells whether that outcome is
 * recorded already (by the request or the janitor: nothing is done twice). The attempt needs
 * no lock of its own, since whoever records it holds its intent's; but its status must be
 * read by a statement of its own, sent right behind the lock (same round trip): a statement
 * reads the database as it was when the statement began, so a status read inside the
 * locking statement could predate a recording that committed while it waited for the lock.
 * The phases of a batch lock theirs together (INTENT_LOCKS).
 */
export function lockForRecord(
  tx: Tx,
  scope: Scope,
  intent_id: string,
  attempt_id: string,
): Promise<{ intent: IntentRow; settled: boolean }> {
  return gathered(tx, INTENT_LOCKS, { scope, intent_id, attempt_id });
}

interface LockRequest {
  scope: Scope;
  intent_id: string;
  attempt_id: string;
}

const LOCK_INTENTS = `SELECT r.n, ${INTENT_COLUMNS.split(',')
  .map((c) => `p.${c.trim()}`)
  .join(', ')}
   FROM payment_intents p
   JOIN unnest($1::text[], $2::text[], $3::boolean[]) WITH ORDINALITY AS r(id, merchant_id, livemode, n)
     ON p.id = r.id AND p.merchant_id = r.merchant_id AND p.livemode = r.livemode
  WHERE p.id = ANY($1::text[])
  ORDER BY p.id
    FOR UPDATE OF p`;

/**
 * The locks of a batch's phases in two statements instead of two each: the intents, locked
 * in id order, then their attempts' statuses. Each request is answered from its own row
 * (matched by its place, `n`, so by its merchant and mode too, never by the id alone). The
 * id order keeps two batches whose locks each fall in one such statement from waiting for
 * each other in a cycle; locks taken later (the ledger's, in its own id order) can still
 * meet in one, which PostgreSQL breaks and the batch retries.
 */
const INTENT_LOCKS: Gather<LockRequest, { intent: IntentRow; settled: boolean }> = {
  async read(tx, items) {
    const ids = items.map((r) => r.intent_id);
    // Sent together (one round trip); the status read starts once the locks are held.
    const [locked, attempts] = await Promise.all([
      tx.query(LOCK_INTENTS, [
        ids,
        items.map((r) => r.scope.merchant_id),
        items.map((r) => r.scope.livemode),
      ]),
      tx.query('SELECT id, status FROM payment_attempts WHERE id = ANY($1::text[])', [
        items.map((r) => r.attempt_id),
      ]),
    ]);
    const intents = new Map(
      (locked.rows as (IntentRow & { n: string })[]).map(({ n, ...row }) => [Number(n), row as IntentRow]),
    );
    const statuses = new Map(attempts.rows.map((row) => [row.id as string, row.status as string]));
    return items.map((r, i) => {
      const intent = intents.get(i + 1);
      const attempt_status = statuses.get(r.attempt_id);
      assert(intent && attempt_status, 'the intent and its attempt exist');
      return { intent, settled: attempt_status === 'succeeded' || attempt_status === 'failed' };
    });
  },
};

/** What an inquiry says of an attempt: its answer, or still unknown. */
export async function inquireAttempt<T>(
  connector: Connector,
  reference: string,
  pick: (inquiry: Inquiry) => T | null,
): Promise<CallResult<T>> {
  try {
    const inquiry = await connector.inquire(reference);
    const answer = inquiry ? pick(inquiry) : null;
    if (answer !== null) return { answer };
  } catch (err) {
    if (!(err instanceof ConnectorError)) throw err;
  }
  return { unknown: new ConnectorError('unknown', connector.name, 'outcome not known yet') };
}

export type CallResult<T> = { answer: T } | { failed: ConnectorError } | { unknown: ConnectorError };
