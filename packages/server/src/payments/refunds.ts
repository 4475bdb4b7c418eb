import type { Tx } from '../db/pool.ts';
import { eventInsert } from '../events/index.ts';
import type { IdempotentOperation, PhaseOutcome, RequestScope } from '../idempotency/index.ts';
import { jsonResponse } from '../idempotency/index.ts';
import { assert, invalidRequest } from '../lib/errors.ts';
import { newId } from '../lib/ids.ts';
import { type MetadataInput, metadataForCreate } from '../lib/metadata.ts';
import { refundTransfer } from './accounts.ts';
import {
  type CallResult,
  callAcquirer,
  inquireAttempt,
  insertAttempt,
  lockForRecord,
  resolveAttempt,
} from './attempts.ts';
import { captureFee } from './currency.ts';
import { accountsOf, ledgerWrites, type PaymentDeps, type Scope } from './shared.ts';
import {
  chargeOf,
  findRefund,
  type RefundRow,
  requireIntent,
  serializeCharge,
  serializeRefund,
  updateCharge,
} from './store.ts';

/** Refunds: reserve, call the acquirer, book. */

export interface RefundInput {
  payment_intent: string;
  amount?: number | undefined;
  reason?: string | undefined;
  metadata?: MetadataInput | undefined;
}

/**
 * Refunds: the first phase reserves the amount (a `pending` refund row, under the intent's
 * row lock, so concurrent refunds never add up past what was captured), then the acquirer
 * refunds, then the outcome and its transfers commit. Moneta returns its fee in proportion
 * to what is refunded, so a merchant's pending balance always covers a refund of its own
 * payment.
 */
export function makeRefundOperation(deps: PaymentDeps): IdempotentOperation<RefundInput> {
  return {
    name: 'refunds.create',
    persist_params: true,
    steps: {
      started: (ctx) =>
        ctx.atomicPhase(async (tx) => {
          const intent = await requireIntent(
            tx,
            ctx.scope,
            ctx.params.payment_intent,
            true,
            'payment_intent',
          );
          if (intent.status !== 'succeeded' || !intent.latest_charge) {
            throw invalidRequest(
              `This PaymentIntent (${intent.id}) does not have a successful charge to refund.`,
              'payment_intent',
              'charge_not_refundable',
            );
          }
          const { rows } = await tx.query(
            `SELECT coalesce(sum(amount), 0)::bigint AS reserved FROM refunds WHERE payment_intent_id = $1 AND status <> 'failed'`,
            [intent.id],
          );
          const available = Number(intent.amount_received) - Number(rows[0].reserved);
          const amount = ctx.params.amount ?? available;
          if (amount < 1 || amount > available) {
            throw invalidRequest(
              `Refund amount (${amount}) is greater than the unrefunded amount on the charge (${available}).`,
              'amount',
              'amount_too_large',
            );
          }
          const refund_id = newId('re');
          await tx.query(
            `INSERT INTO refunds (id, payment_intent_id, charge_id, merchant_id, livemode, amount, currency, status, reason, metadata)
             VALUES ($1, $2, $3, $4, $5, $6, $7, 'pending', $8, $9)`,
            [
              refund_id,
              intent.id,
              intent.latest_charge,
              ctx.scope.merchant_id,
              ctx.scope.livemode,
              amount,
              intent.currency,
              ctx.params.reason ?? null,
              metadataForCreate(ctx.params.metadata),
            ],
          );
          const attempt_id = await insertAttempt(tx, ctx.scope, intent, 'refund', amount, refund_id);
          const refund = await loadRefund(tx, ctx.scope, refund_id);
          return {
            recovery_point: 'refund',
            state: { intent_id: intent.id, attempt_id, refund_id, amount },
            writes: [eventInsert(ctx.scope, 'refund.created', serializeRefund(refund))],
          };
        }),
      refund: async (ctx) => {
        const s = ctx.state as { intent_id: string; attempt_id: string; refund_id: string; amount: number };
        const intent = await requireIntent(deps.ledger.pool, ctx.scope, s.intent_id, false);
        const connector = deps.connectors.get(intent.acquirer!);
        assert(connector && intent.authorization_id, 'a captured intent has its acquirer and authorization');
        const result = await callAcquirer(
          connector,
          s.attempt_id,
          () => connector.refund(intent.authorization_id!, { reference: s.attempt_id, amount: s.amount }),
          (inquiry) => (inquiry.kind === 'refund' ? inquiry.refund : null),
        );
        await ctx.atomicPhase((tx) => recordRefund(deps, ctx.scope, tx, s, result));
      },
      settle_refund: async (ctx) => {
        const s = ctx.state as { intent_id: string; attempt_id: string; refund_id: string; amount: number };
        const intent = await requireIntent(deps.ledger.pool, ctx.scope, s.intent_id, false);
        const connector = deps.connectors.get(intent.acquirer!);
        assert(connector, 'an intent in flight names a configured acquirer');
        const result = await inquireAttempt(connector, s.attempt_id, (inquiry) =>
          inquiry.kind === 'refund' ? inquiry.refund : null,
        );
        await ctx.atomicPhase((tx) => recordRefund(deps, ctx.scope, tx, s, result));
      },
    },
  };
}

/** A refund this transaction knows exists (it reserved it, or is settling it). */
async function loadRefund(tx: Tx, scope: Scope, id: string): Promise<RefundRow> {
  const refund = await findRefund(tx, scope, id);
  assert(refund, 'the refund being processed exists');
  return refund;
}

/** Books a refund's outcome; also used by the janitor when it learns it. */
export async function recordRefund(
  deps: PaymentDeps,
  scope: { merchant_id: string; livemode: boolean },
  tx: Tx,
  s: { intent_id: string; attempt_id: string; refund_id: string; amount: number },
  result: CallResult<unknown>,
): Promise<PhaseOutcome> {
  const { intent, settled } = await lockForRecord(tx, scope, s.intent_id, s.attempt_id);
  if (settled) {
    return jsonResponse(200, serializeRefund(await loadRefund(tx, scope, s.refund_id)));
  }
  if ('unknown' in result || ('answer' in result && result.answer === null)) {
    await resolveAttempt(tx, s.attempt_id, 'unknown', {});
    const pending = jsonResponse(200, serializeRefund(await loadRefund(tx, scope, s.refund_id))).response;
    return { recovery_point: 'settle_refund', provisional: pending };
  }
  if ('failed' in result) {
    await resolveAttempt(tx, s.attempt_id, 'failed', { error: result.failed.message });
    const { rows } = await tx.query(
      `UPDATE refunds SET status = 'failed', failure_reason = 'unknown' WHERE id = $1 RETURNING *`,
      [s.refund_id],
    );
    return {
      ...jsonResponse(200, serializeRefund(rows[0])),
      writes: [eventInsert(scope, 'refund.updated', serializeRefund(rows[0]))],
    };
  }
  await resolveAttempt(tx, s.attempt_id, 'succeeded', {});
  const charge = await chargeOf(tx, intent);
  assert(charge, 'a refunded intent has its charge');
  const captured = Number(charge.amount_captured);
  const before = Number(charge.amount_refunded);
  const after = before + s.amount;
  assert(after <= captured, 'refunds never exceed the captured amount');
  // Fee returned in proportion, cumulatively floored: the total returned is the whole fee at a full refund.
  const fee = captureFee(captured);
  const share = (refunded: number) => (BigInt(fee) * BigInt(refunded)) / BigInt(captured); // integer division
  const fee_back = Number(share(after) - share(before));
  const a = accountsOf(scope as RequestScope, intent);
  const transfers = [refundTransfer(s.refund_id, a, s.amount)];
  if (fee_back > 0) {
    transfers.unshift({
      ...refundTransfer(`${s.refund_id}:fee`, a, fee_back),
      debit_account_id: a.fees,
      credit_account_id: a.merchant_pending,
    });
  }
  const updatedCharge = await updateCharge(tx, charge.id, { amount_refunded: after });
  const { rows } = await tx.query(`UPDATE refunds SET status = 'succeeded' WHERE id = $1 RETURNING *`, [
    s.refund_id,
  ]);
  await ledgerWrites(deps, tx, transfers); // last: see recordAuthorizationAnswer
  return {
    ...jsonResponse(200, serializeRefund(rows[0])),
    writes: [
      eventInsert(scope, 'refund.updated', serializeRefund(rows[0])),
      eventInsert(scope, 'charge.refunded', serializeCharge(updatedCharge)),
    ],
  };
}
