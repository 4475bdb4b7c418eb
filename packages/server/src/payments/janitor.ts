import type { AcquirerTransaction, Connector, Inquiry } from '../connectors/index.ts';
import { ConnectorError } from '../connectors/index.ts';
import { type Pool, type Statement, withTransaction } from '../db/pool.ts';
import { eventInsert } from '../events/index.ts';
import { assert } from '../lib/errors.ts';
import { voidTransfer } from './accounts.ts';
import { lockForRecord, resolveAttempt } from './attempts.ts';
import {
  type AuthorizeState,
  canceled,
  loadPaymentMethod,
  recordAuthorizationAnswer,
  recordCaptured,
} from './flows.ts';
import { recordRefund } from './refunds.ts';
import { accountsOf, ledgerWrites, type PaymentDeps } from './shared.ts';
import { requireIntent, serializeIntent, updateIntent } from './store.ts';

/**
 * Kill Bill's janitor: attempts whose outcome is unknown (a timeout, a lost response, a
 * crash between the call and the record) are settled by asking the acquirer, by our
 * reference, on a bounded backoff schedule — never by guessing. What it finds is booked
 * exactly as the original request would have booked it (the same steps, the same
 * deterministic ledger transfer ids, so nothing is booked twice). Only a proven "no such
 * transaction", old enough that the request cannot still be in flight, becomes a failure.
 * An attempt still unknown after the whole schedule flags its intent for manual review.
 */
const SCHEDULE_S = [10, 60, 300, 3600, 86_400, 86_400, 86_400] as const;
/** A request older than this cannot still be on its way to the acquirer. */
const IN_FLIGHT_BOUND_S = 120;
/** Attempts settled per run (each in its own transaction). */
const BATCH = 50;

interface AttemptRow {
  /** An attempt the janitor made itself and has not sent: nothing of it can be in flight. */
  unsent?: boolean;
  id: string;
  payment_intent_id: string;
  merchant_id: string;
  livemode: boolean;
  kind: 'authorize' | 'capture' | 'void' | 'refund';
  amount: string;
  acquirer: string;
  refund_id: string | null;
  inquiries: number;
  age_s: number;
}

export class Janitor {
  constructor(
    private readonly pool: Pool,
    private readonly deps: PaymentDeps,
  ) {}

  /** Settles the attempts due now; returns how many it settled. */
  async run(): Promise<{ settled: number; review: number }> {
    const { rows } = await this.pool.query(
      `SELECT id, payment_intent_id, merchant_id, livemode, kind, amount, acquirer, refund_id, inquiries,
              extract(epoch FROM now() - created_at)::int AS age_s
         FROM payment_attempts
        WHERE status IN ('started', 'unknown') AND next_inquiry_at <= now()
        ORDER BY next_inquiry_at LIMIT $1`,
      [BATCH],
    );
    let settled = 0;
    let review = 0;
    for (const attempt of rows as AttemptRow[]) {
      const outcome = await this.settle(attempt).catch((err) => {
        this.deps.log.error({ err, attempt: attempt.id }, 'janitor could not settle an attempt');
        return 'later' as const;
      });
      if (outcome === 'settled') settled += 1;
      if (outcome === 'later' && (await this.postpone(attempt))) review += 1;
    }
    return { settled, review };
  }

  /** How many intents wait for an operator (the metric `moneta_payments_needing_review`). */
  async needingReview(): Promise<number> {
    const { rows } = await this.pool.query(
      'SELECT count(*)::int AS n FROM payment_intents WHERE needs_review',
    );
    return rows[0].n as number;
  }

  private async settle(attempt: AttemptRow): Promise<'settled' | 'later'> {
    const connector = this.deps.connectors.get(attempt.acquirer);
    if (!connector) return 'later';
    let inquiry: Inquiry | null;
    try {
      inquiry = await connector.inquire(attempt.id);
    } catch (err) {
      if (err instanceof ConnectorError) return 'later';
      throw err;
    }
    if (inquiry === null && attempt.age_s < IN_FLIGHT_BOUND_S && !attempt.unsent) return 'later';
    const scope = { merchant_id: attempt.merchant_id, livemode: attempt.livemode };
    const captured = await this.captureIfOwed(connector, scope, attempt, inquiry);
    const booked = await withTransaction(this.pool, async (tx) => {
      const { intent, settled } = await lockForRecord(tx, scope, attempt.payment_intent_id, attempt.id);
      if (settled) return null;
      const { writes, capture_due } = await this.book(tx, scope, attempt, intent, inquiry, captured);
      await tx.commit(writes);
      return capture_due;
    });
    // An automatic capture the original request would have made next (an acquirer without
    // sales): the janitor makes it now, as that request would have, not a minute later. Only
    // one level deep: a capture books no further attempt.
    if (booked && attempt.kind === 'authorize') {
      const capture: AttemptRow = { ...attempt, ...booked, kind: 'capture', inquiries: 0, unsent: true };
      // The authorization is settled whatever happens to the capture: its failures are its own.
      const outcome = await this.settle(capture).catch((err) => {
        this.deps.log.error(
          { err, attempt: capture.id },
          'janitor could not capture a settled authorization',
        );
        return 'later' as const;
      });
      if (outcome === 'later') await this.postpone(capture);
    }
    return 'settled';
  }

  /**
   * Books what the inquiry found (null: proven never happened): the writes to commit, and the
   * capture attempt this booking makes due, if any.
   */
  private async book(
    tx: Parameters<Parameters<typeof withTransaction>[1]>[0],
    scope: { merchant_id: string; livemode: boolean },
    attempt: AttemptRow,
    intent: Awaited<ReturnType<typeof requireIntent>>,
    inquiry: Inquiry | null,
    captured: number | null,
  ): Promise<{ writes: Statement[]; capture_due?: { id: string; amount: string } }> {
    const transaction: AcquirerTransaction | null = inquiry?.transaction ?? null;
    switch (attempt.kind) {
      case 'authorize': {
        if (!transaction) {
          await resolveAttempt(tx, attempt.id, 'failed', { inquiry: 'not_found' });
          const failed = await updateIntent(tx, intent.id, {
            status: 'requires_payment_method',
            last_payment_error: {
              type: 'api_error',
              code: 'processing_error',
              message: 'The acquirer has no record of this payment. Confirm it again.',
            },
          });
          // As the request would have said had it known: the merchant hears of the failure.
          return { writes: [eventInsert(scope, 'payment_intent.payment_failed', serializeIntent(failed))] };
        }
        assert(intent.payment_method_id, 'an authorized intent has its payment method');
        const pm = await loadPaymentMethod(tx, scope, intent.payment_method_id);
        const state: AuthorizeState = { intent_id: intent.id, attempt_id: attempt.id, pm };
        const outcome = await recordAuthorizationAnswer(this.deps, scope, tx, state, intent, transaction);
        const writes = [...(outcome.writes ?? [])];
        if (!('recovery_point' in outcome)) return { writes };
        // Automatic capture without a sale: the writes insert the capture attempt.
        const capture_id = (outcome.state as { attempt_id: string }).attempt_id;
        return { writes, capture_due: { id: capture_id, amount: intent.amount } };
      }
      case 'capture': {
        // What the janitor's own call captured, else what the inquiry found (nothing yet: a
        // capture still young enough to be in flight is left for the next turn).
        const amount = captured ?? transaction?.captured_amount ?? 0;
        if (captured === null && amount === 0) return { writes: [] };
        return { writes: await this.bookCapture(tx, scope, attempt, intent, amount) };
      }
      case 'void': {
        if (!transaction?.voided) {
          await resolveAttempt(tx, attempt.id, 'failed', {
            inquiry: transaction ? 'not_voided' : 'not_found',
          });
          return { writes: [] };
        }
        await resolveAttempt(tx, attempt.id, 'succeeded', {});
        const outcome = await canceled(scope, tx, intent, 'abandoned');
        await ledgerWrites(this.deps, tx, [voidTransfer(intent.id, accountsOf(scope, intent))]);
        return { writes: [...(outcome.writes ?? [])] };
      }
      case 'refund': {
        assert(attempt.refund_id, 'a refund attempt names its refund');
        const s = {
          intent_id: intent.id,
          attempt_id: attempt.id,
          refund_id: attempt.refund_id,
          amount: Number(attempt.amount),
        };
        const result =
          inquiry?.kind === 'refund'
            ? { answer: inquiry.refund }
            : { failed: new ConnectorError('failed', attempt.acquirer, 'no such refund') };
        const outcome = await recordRefund(this.deps, scope, tx, s, result);
        return { writes: [...(outcome.writes ?? [])] };
      }
    }
  }

  /**
   * A capture the acquirer never received (or an automatic capture the janitor owes after
   * settling its authorization) is made before the booking transaction, with the attempt's
   * reference (safe to repeat): no row lock or connection is held across the acquirer's
   * answer. Returns the amount captured, or null when no call is owed.
   */
  private async captureIfOwed(
    connector: Connector,
    scope: { merchant_id: string; livemode: boolean },
    attempt: AttemptRow,
    inquiry: Inquiry | null,
  ): Promise<number | null> {
    if (attempt.kind !== 'capture') return null;
    const transaction = inquiry?.transaction ?? null;
    if (transaction && transaction.captured_amount > 0) return null;
    if (transaction && attempt.age_s < IN_FLIGHT_BOUND_S && !attempt.unsent) return null;
    const intent = await requireIntent(this.pool, scope, attempt.payment_intent_id, false);
    assert(intent.authorization_id, 'an authorized intent has its authorization');
    const answer = await connector.capture(intent.authorization_id, {
      reference: attempt.id,
      amount: Number(attempt.amount),
    });
    return answer.captured_amount;
  }

  private async bookCapture(
    tx: Parameters<Parameters<typeof withTransaction>[1]>[0],
    scope: { merchant_id: string; livemode: boolean },
    attempt: AttemptRow,
    intent: Awaited<ReturnType<typeof requireIntent>>,
    captured: number,
  ) {
    const outcome = await recordCaptured(this.deps, scope, tx, { attempt_id: attempt.id }, intent, captured);
    return [...(outcome.writes ?? [])];
  }

  /**
   * Next inquiry on the schedule; past its end, the intent is flagged for review. Returns true
   * when flagged. An attempt settled meanwhile (a client's retry asked the acquirer too) is
   * left as it is.
   */
  private async postpone(attempt: AttemptRow): Promise<boolean> {
    const delay = SCHEDULE_S[attempt.inquiries];
    if (delay === undefined) {
      const { rowCount } = await this.pool.query(
        `WITH a AS (UPDATE payment_attempts SET next_inquiry_at = NULL, inquiries = inquiries + 1
                     WHERE id = $1 AND status IN ('started', 'unknown') RETURNING 1)
         UPDATE payment_intents SET needs_review = true WHERE id = $2 AND EXISTS (SELECT 1 FROM a)`,
        [attempt.id, attempt.payment_intent_id],
      );
      if (!rowCount) return false;
      this.deps.log.error(
        { attempt: attempt.id, intent: attempt.payment_intent_id },
        'payment needs manual review',
      );
      return true;
    }
    await this.pool.query(
      `UPDATE payment_attempts SET inquiries = inquiries + 1, next_inquiry_at = now() + make_interval(secs => $2),
         status = 'unknown' WHERE id = $1 AND status IN ('started', 'unknown')`,
      [attempt.id, delay],
    );
    return false;
  }
}
