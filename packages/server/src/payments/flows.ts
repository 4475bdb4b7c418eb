import { type AcquirerTransaction, type Connector, ConnectorError } from '../connectors/index.ts';
import { requireLiveCustomer } from '../customers/index.ts';
import { combineWrites, type Statement, type Tx } from '../db/pool.ts';
import { eventInsert } from '../events/index.ts';
import type { IdempotentOperation, PhaseContext, PhaseOutcome, RequestScope } from '../idempotency/index.ts';
import { jsonResponse } from '../idempotency/index.ts';
import { assert, invalidRequest, MonetaError, resourceMissing } from '../lib/errors.ts';
import { newId } from '../lib/ids.ts';
import { type MetadataInput, metadataForCreate } from '../lib/metadata.ts';
import { newPaymentMethod } from '../payment-methods/service.ts';
import { checkCard } from '../vault/cards.ts';
import { CardNotInVault } from '../vault/index.ts';
import { TEST_CARD_SHORTCUTS } from '../vault/test-cards.ts';
import { authorizationTransfer, captureTransfers, ensureAccounts, voidTransfer } from './accounts.ts';
import {
  attemptInsert,
  attemptResolution,
  type CallResult,
  callAcquirer,
  inquireAttempt,
  insertAttempt,
  lockForRecord,
  resolveAttempt,
} from './attempts.ts';
import { captureFee } from './currency.ts';
import { makeRefundOperation, type RefundInput } from './refunds.ts';
import { accountsOf, ledgerWrites, type PaymentDeps, type Scope } from './shared.ts';
import {
  type ChargeRow,
  type IntentRow,
  type IntentStatus,
  intentUpdate,
  newCharge,
  type PaymentError,
  requireIntent,
  serializeCharge,
  serializeIntent,
  unexpectedState,
  updateCharge,
  updateIntent,
} from './store.ts';
import { makeUpdateOperation } from './update.ts';

export interface IntentInput {
  amount: number;
  currency: string;
  customer?: string | undefined;
  payment_method?: string | undefined;
  capture_method?: 'automatic' | 'manual' | undefined;
  description?: string | undefined;
  statement_descriptor?: string | undefined;
  metadata?: MetadataInput | undefined;
}

const CONFIRMABLE: readonly IntentStatus[] = ['requires_payment_method', 'requires_confirmation'];

const CANCELABLE: readonly IntentStatus[] = [
  'requires_payment_method',
  'requires_confirmation',
  'requires_action',
  'requires_capture',
];

/** Stripe's codes and messages for the decline codes acquirers answer. */
const DECLINES: Record<string, { code: string; message: string }> = {
  generic_decline: { code: 'card_declined', message: 'Your card was declined.' },
  insufficient_funds: { code: 'card_declined', message: 'Your card has insufficient funds.' },
  lost_card: { code: 'card_declined', message: 'Your card was declined.' },
  stolen_card: { code: 'card_declined', message: 'Your card was declined.' },
  card_velocity_exceeded: { code: 'card_declined', message: 'Your card was declined.' },
  expired_card: { code: 'expired_card', message: 'Your card has expired.' },
  incorrect_cvc: { code: 'incorrect_cvc', message: "Your card's security code is incorrect." },
  processing_error: {
    code: 'processing_error',
    message: 'An error occurred while processing your card. Try again in a little bit.',
  },
};

function declineError(decline_code: string | null): PaymentError {
  const d = DECLINES[decline_code ?? 'generic_decline'] ?? DECLINES.generic_decline!;
  return {
    type: 'card_error',
    code: d.code,
    decline_code: decline_code ?? 'generic_decline',
    message: d.message,
  };
}

/** The 402 a declined confirmation answers, with the intent as Stripe puts it in the error. */
function declineResponse(intent: IntentRow, error: PaymentError): PhaseOutcome {
  return {
    response: {
      status: 402,
      body: JSON.stringify({ error: { ...error, payment_intent: serializeIntent(intent) } }),
    },
  };
}

/**
 * The payment method to charge: a `pm_card_*` shortcut becomes a new one (test mode), whose
 * writes (the card, its CVC, the payment method) are returned to go with the phase's next
 * statement.
 */
async function resolvePaymentMethod(
  deps: PaymentDeps,
  tx: Tx,
  scope: RequestScope,
  pm_id: string,
): Promise<{ pm: AuthorizeState['pm']; writes: Statement[] }> {
  const shortcut = TEST_CARD_SHORTCUTS[pm_id];
  if (shortcut && !scope.livemode) {
    const card = checkCard(shortcut);
    const sealed = await deps.vault.sealCard(scope, card);
    const { row, insert } = newPaymentMethod(scope, { card }, sealed);
    return { pm: chargeable(row), writes: [...sealed.writes, insert] };
  }
  return { pm: await loadPaymentMethod(tx, scope, pm_id), writes: [] };
}

/** A payment method as an authorization needs it: its vault card and what the charge shows. */
function chargeable(pm: {
  id: string;
  vault_card_id: string | null;
  card_brand: string;
  card_country: string | null;
  card_exp_month: number;
  card_exp_year: number;
  card_fingerprint: string;
  card_funding: string;
  card_last4: string;
}): AuthorizeState['pm'] {
  if (!pm.vault_card_id) {
    throw invalidRequest('This PaymentMethod can no longer be used: its card was deleted.', 'payment_method');
  }
  return {
    id: pm.id,
    card_id: pm.vault_card_id,
    exp_month: pm.card_exp_month,
    exp_year: pm.card_exp_year,
    card: {
      brand: pm.card_brand,
      country: pm.card_country,
      exp_month: pm.card_exp_month,
      exp_year: pm.card_exp_year,
      fingerprint: pm.card_fingerprint,
      funding: pm.card_funding,
      last4: pm.card_last4,
    },
  };
}

export async function loadPaymentMethod(tx: Tx, scope: Scope, id: string): Promise<AuthorizeState['pm']> {
  const { rows } = await tx.query(
    `SELECT id, vault_card_id, card_brand, card_last4, card_exp_month, card_exp_year, card_fingerprint, card_funding,
            card_country
       FROM payment_methods WHERE id = $1 AND merchant_id = $2 AND livemode = $3`,
    [id, scope.merchant_id, scope.livemode],
  );
  if (!rows[0]) throw resourceMissing('payment_method', id, 'payment_method');
  return chargeable(rows[0]);
}

export interface AuthorizeState {
  intent_id: string;
  attempt_id: string;
  pm: { id: string; card_id: string; card: Record<string, unknown>; exp_month: number; exp_year: number };
  /** What the call needs of the intent, so the step reads nothing before it (absent in older states). */
  intent?: IntentForCall;
}

/** The intent's fields an authorization call and its booking use; fixed once it is processing. */
export type IntentForCall = Pick<
  IntentRow,
  'id' | 'amount' | 'currency' | 'acquirer' | 'statement_descriptor' | 'capture_method'
>;

function forCall(intent: IntentRow): IntentForCall {
  const { id, amount, currency, acquirer, statement_descriptor, capture_method } = intent;
  return { id, amount, currency, acquirer, statement_descriptor, capture_method };
}

interface CaptureState {
  intent_id: string;
  attempt_id: string;
  amount: number;
}

/**
 * The steps every confirmation shares, by recovery point. Each acquirer call sits between two
 * atomic phases: the first records the attempt (started) and commits; the call carries the
 * attempt's id as reference and idempotency key; the second records the outcome, the ledger
 * transfers and the events in one transaction. A crash in between leaves the request at the
 * call's recovery point, and resuming repeats the call with the same key: the acquirer
 * answers what it did the first time.
 */
function confirmationSteps(deps: PaymentDeps): IdempotentOperation<unknown>['steps'] {
  return {
    confirm: (ctx) =>
      ctx.atomicPhase(async (tx) => {
        const intent = await requireIntent(tx, ctx.scope, ctx.state.intent_id as string, true);
        if (!CONFIRMABLE.includes(intent.status)) unexpectedState(intent, 'confirm', CONFIRMABLE);
        if (!intent.payment_method_id) {
          throw invalidRequest(
            'You cannot confirm this PaymentIntent because it has no payment method. Pass payment_method.',
            'payment_method',
            'payment_intent_unexpected_state',
          );
        }
        const { pm, writes } = await resolvePaymentMethod(deps, tx, ctx.scope, intent.payment_method_id);
        if (writes.length > 0) await tx.query(combineWrites(writes));
        const acquirer = await merchantAcquirer(tx, ctx.scope.merchant_id);
        const updated = await updateIntent(tx, intent.id, {
          status: 'processing',
          payment_method_id: pm.id,
          acquirer,
          last_payment_error: null,
        });
        const attempt_id = await insertAttempt(tx, ctx.scope, updated, 'authorize', Number(intent.amount));
        return { recovery_point: 'authorize', state: { attempt_id, pm, intent: forCall(updated) } };
      }),

    authorize: async (ctx) => {
      const s = ctx.state as unknown as AuthorizeState;
      const intent = s.intent ?? (await requireIntent(deps.ledger.pool, ctx.scope, s.intent_id, false));
      await ensureAccounts(deps.ledger, accountsOf(ctx.scope, intent));
      const connector = deps.connectors.get(intent.acquirer!);
      const result = connector
        ? await callAcquirer(
            connector,
            s.attempt_id,
            () => authorizeWithCard(deps, ctx, connector, intent, s),
            (inquiry) => inquiry.transaction,
          )
        : { failed: new ConnectorError('failed', intent.acquirer!, 'no such acquirer is configured') };
      // Batched: under load many answers are recorded at once, and they share one transaction.
      await ctx.atomicPhase((tx) => recordAuthorization(deps, ctx, tx, s, result), { batch: s.intent_id });
    },

    capture: async (ctx) => {
      const s = ctx.state as unknown as CaptureState;
      const intent = await requireIntent(deps.ledger.pool, ctx.scope, s.intent_id, false);
      const connector = deps.connectors.get(intent.acquirer!);
      assert(connector && intent.authorization_id, 'an authorized intent has its acquirer and authorization');
      const result = await callAcquirer(
        connector,
        s.attempt_id,
        () => connector.capture(intent.authorization_id!, { reference: s.attempt_id, amount: s.amount }),
        (inquiry) => inquiry.transaction,
      );
      await ctx.atomicPhase((tx) => recordCapture(deps, ctx, tx, s, result), { batch: s.intent_id });
    },

    // A retry (or the completer) of a request whose acquirer answer was not known.
    settle_authorization: async (ctx) => {
      const s = ctx.state as unknown as AuthorizeState;
      const intent = await requireIntent(deps.ledger.pool, ctx.scope, s.intent_id, false);
      const connector = deps.connectors.get(intent.acquirer!);
      assert(connector, 'an intent in flight names a configured acquirer');
      const result = await inquireAttempt(connector, s.attempt_id, (inquiry) => inquiry.transaction);
      await ctx.atomicPhase((tx) => recordAuthorization(deps, ctx, tx, s, result));
    },

    settle_capture: async (ctx) => {
      const s = ctx.state as unknown as CaptureState;
      const intent = await requireIntent(deps.ledger.pool, ctx.scope, s.intent_id, false);
      const connector = deps.connectors.get(intent.acquirer!);
      assert(connector, 'an intent in flight names a configured acquirer');
      const result = await inquireAttempt(connector, s.attempt_id, (inquiry) =>
        inquiry.transaction.captured_amount > 0 ? inquiry.transaction : null,
      );
      await ctx.atomicPhase((tx) => recordCapture(deps, ctx, tx, s, result));
    },
  };
}

/**
 * What a request answers when its attempt was settled already (by the janitor). An intent
 * still `processing` (the janitor settled the authorization; the capture it owes is due) is
 * not a final answer: the request stays open at `settle_point`.
 */
function settledResponse(intent: IntentRow, settle_point: string): PhaseOutcome {
  if (intent.status === 'requires_payment_method' && intent.last_payment_error) {
    return declineResponse(intent, intent.last_payment_error);
  }
  if (intent.status === 'processing') return waitForSettlement(intent, settle_point);
  return jsonResponse(200, serializeIntent(intent));
}

/**
 * The acquirer's answer is not known yet: answer `processing` now, store nothing, and leave
 * the request open at `settle_point`, so a retry with the same key (or the completer) asks
 * again and ends with the final answer, the same one every later retry gets.
 */
function waitForSettlement(intent: IntentRow, settle_point: string): PhaseOutcome {
  return { recovery_point: settle_point, provisional: jsonResponse(200, serializeIntent(intent)).response };
}

/** Merchants' acquirers, cached briefly: read on every confirmation, changed almost never. */
const acquirer_cache = new Map<string, { acquirer: string; until_ms: number }>();

const ACQUIRER_CACHE_MS = 10_000;

const MAX_CACHED_MERCHANTS = 10_000;

async function merchantAcquirer(tx: Tx, merchant_id: string): Promise<string> {
  const hit = acquirer_cache.get(merchant_id);
  if (hit && hit.until_ms > Date.now()) return hit.acquirer;
  const { rows } = await tx.query('SELECT acquirer FROM merchants WHERE id = $1', [merchant_id]);
  assert(rows[0], 'the authenticated merchant exists');
  if (acquirer_cache.size >= MAX_CACHED_MERCHANTS) acquirer_cache.clear();
  acquirer_cache.set(merchant_id, { acquirer: rows[0].acquirer, until_ms: Date.now() + ACQUIRER_CACHE_MS });
  return rows[0].acquirer as string;
}

function authorizeWithCard(
  deps: PaymentDeps,
  ctx: PhaseContext<unknown>,
  connector: Connector,
  intent: IntentForCall,
  s: AuthorizeState,
): Promise<AcquirerTransaction> {
  return deps.vault
    .useCard(
      ctx.scope,
      {
        actor: `api_key:${ctx.scope.api_key_id}`,
        origin: `request:${ctx.scope.request_id}`,
        card_id: s.pm.card_id,
        purpose: 'authorization',
        consume_cvc: true,
      },
      (card) =>
        connector.authorize({
          reference: s.attempt_id,
          amount: Number(intent.amount),
          currency: intent.currency,
          card: { number: card.number, cvc: card.cvc, exp_month: s.pm.exp_month, exp_year: s.pm.exp_year },
          statement_descriptor: intent.statement_descriptor,
          // Automatic capture is a sale: approved and captured in one call.
          capture: intent.capture_method === 'automatic',
        }),
    )
    .catch((err) => {
      if (err instanceof CardNotInVault)
        throw new ConnectorError('failed', connector.name, 'card not in the vault');
      throw err;
    });
}

async function recordAuthorization(
  deps: PaymentDeps,
  ctx: PhaseContext<unknown>,
  tx: Tx,
  s: AuthorizeState,
  result: CallResult<AcquirerTransaction>,
): Promise<PhaseOutcome> {
  const { intent, settled } = await lockForRecord(tx, ctx.scope, s.intent_id, s.attempt_id);
  if (settled) return settledResponse(intent, 'settle_authorization');
  if ('unknown' in result) {
    await resolveAttempt(tx, s.attempt_id, 'unknown', { error: result.unknown.message });
    return waitForSettlement(intent, 'settle_authorization');
  }
  if ('failed' in result) {
    await resolveAttempt(tx, s.attempt_id, 'failed', { error: result.failed.message });
    const error: PaymentError = {
      type: 'api_error',
      code: 'processing_error',
      message: 'The payment could not be sent to the acquirer. Retry the confirmation.',
    };
    const failed = await updateIntent(tx, intent.id, {
      status: 'requires_payment_method',
      last_payment_error: error,
    });
    return {
      ...declineResponse(failed, error),
      writes: [eventInsert(ctx.scope, 'payment_intent.payment_failed', serializeIntent(failed))],
    };
  }
  return recordAuthorizationAnswer(deps, ctx.scope, tx, s, intent, result.answer);
}

/** Books an authorization's answer; also used by the janitor when an inquiry finds it. */
export async function recordAuthorizationAnswer(
  deps: PaymentDeps,
  scope: Scope,
  tx: Tx,
  s: AuthorizeState,
  intent: IntentRow,
  answer: AcquirerTransaction,
): Promise<PhaseOutcome> {
  const ctx = { scope: scope as RequestScope };
  const resolution = [
    attemptResolution(s.attempt_id, answer.status === 'approved' ? 'succeeded' : 'failed', {
      acquirer_id: answer.id,
      status: answer.status,
      decline_code: answer.decline_code,
    }),
    {
      name: 'moneta_pm_cvc_check',
      text: 'UPDATE payment_methods SET cvc_check = $2 WHERE id = $1',
      values: [s.pm.id, answer.cvc_check],
    },
  ];
  if (answer.status === 'authentication_required') {
    await tx.query(combineWrites(resolution));
    const waiting = await updateIntent(tx, intent.id, { status: 'requires_action' });
    return {
      ...jsonResponse(200, serializeIntent(waiting)),
      writes: [eventInsert(ctx.scope, 'payment_intent.requires_action', serializeIntent(waiting))],
    };
  }
  const approved = answer.status === 'approved';
  const error = approved ? null : declineError(answer.decline_code);
  // A sale (automatic capture) is captured with its approval, whole; an acquirer that does not
  // do sales captures nothing here, and the capture step follows.
  const captured = approved ? answer.captured_amount : 0;
  assert(
    captured === 0 || (captured === Number(intent.amount) && intent.capture_method === 'automatic'),
    'only an automatic capture is captured with its approval, and in full',
  );
  const { row: charge, insert } = newCharge(ctx.scope, {
    id: newId('ch'),
    payment_intent_id: intent.id,
    amount: intent.amount,
    amount_captured: String(captured),
    amount_refunded: '0',
    currency: intent.currency,
    status: approved ? 'succeeded' : 'failed',
    captured: captured > 0,
    failure_code: error?.code ?? null,
    failure_message: error?.message ?? null,
    outcome: {
      network_status: answer.network_status,
      reason: approved ? null : answer.decline_code,
      risk_level: 'normal',
      seller_message: approved
        ? 'Payment complete.'
        : 'The bank did not return any further details with this decline.',
      type: approved ? 'authorized' : 'issuer_declined',
    },
    payment_method_id: s.pm.id,
    card: { ...s.pm.card, checks: { cvc_check: answer.cvc_check }, network: s.pm.card.brand },
    acquirer_id: answer.id,
  });
  // The attempt's outcome, the card's cvc_check and the new charge go with the commit.
  const recorded = [...resolution, insert];
  if (!approved) {
    const failed = await updateIntent(tx, intent.id, {
      status: 'requires_payment_method',
      latest_charge: charge.id,
      last_payment_error: { ...error!, charge: charge.id },
    });
    return {
      ...declineResponse(failed, { ...error!, charge: charge.id }),
      writes: [...recorded, eventInsert(ctx.scope, 'payment_intent.payment_failed', serializeIntent(failed))],
    };
  }
  if (captured > 0) return recordSale(deps, ctx.scope, tx, intent, answer, charge, recorded);
  const manual = intent.capture_method === 'manual';
  // Sent with the commit, not one by one: each statement on its own was a round trip.
  const changes = {
    status: manual ? 'requires_capture' : 'processing',
    authorization_id: answer.id,
    latest_charge: charge.id,
    amount_capturable: intent.amount,
  } as const;
  const authorized: IntentRow = { ...intent, ...changes };
  const writes: Statement[] = [...recorded, intentUpdate(intent.id, changes)];
  const capture = manual ? null : attemptInsert(ctx.scope, authorized, 'capture', Number(intent.amount));
  if (capture) writes.push(capture.statement);
  // Last before the commit: the ledger locks the payment's accounts (hot ones among them),
  // and every statement after the lock would hold up every other payment.
  await ledgerWrites(deps, tx, [
    authorizationTransfer(intent.id, accountsOf(ctx.scope, intent), Number(intent.amount)),
  ]);
  if (capture === null) {
    writes.push(
      eventInsert(ctx.scope, 'payment_intent.amount_capturable_updated', serializeIntent(authorized)),
    );
    return { ...jsonResponse(200, serializeIntent(authorized)), writes };
  }
  return {
    recovery_point: 'capture',
    state: { attempt_id: capture.id, amount: Number(intent.amount) },
    writes,
  };
}

/** An approval captured at once: authorization, capture and fee are booked together. */
async function recordSale(
  deps: PaymentDeps,
  scope: Scope,
  tx: Tx,
  intent: IntentRow,
  answer: AcquirerTransaction,
  charge: ChargeRow,
  recorded: Statement[],
): Promise<PhaseOutcome> {
  const captured = answer.captured_amount;
  const accounts = accountsOf(scope, intent);
  const changes = {
    status: 'succeeded',
    authorization_id: answer.id,
    latest_charge: charge.id,
    amount_received: String(captured),
    amount_capturable: '0',
  } as const;
  const succeeded: IntentRow = { ...intent, ...changes };
  // Last before the commit: see recordAuthorizationAnswer.
  await ledgerWrites(deps, tx, [
    authorizationTransfer(intent.id, accounts, Number(intent.amount)),
    ...captureTransfers(intent.id, accounts, captured, captureFee(captured)),
  ]);
  return {
    ...jsonResponse(200, serializeIntent(succeeded)),
    writes: [
      ...recorded,
      intentUpdate(intent.id, changes),
      eventInsert(scope, 'charge.succeeded', serializeCharge(charge)),
      eventInsert(scope, 'payment_intent.succeeded', serializeIntent(succeeded)),
    ],
  };
}

async function recordCapture(
  deps: PaymentDeps,
  ctx: PhaseContext<unknown>,
  tx: Tx,
  s: CaptureState,
  result: CallResult<AcquirerTransaction>,
): Promise<PhaseOutcome> {
  const { intent, settled } = await lockForRecord(tx, ctx.scope, s.intent_id, s.attempt_id);
  if (settled) return settledResponse(intent, 'settle_capture');
  if ('unknown' in result || 'failed' in result) {
    const failure = 'unknown' in result ? result.unknown : result.failed;
    await resolveAttempt(tx, s.attempt_id, 'unknown' in result ? 'unknown' : 'failed', {
      error: failure.message,
    });
    // Unknown: processing until an inquiry (this request's retry, or the janitor) settles it.
    // Refused: still authorized, so the capture can be tried again.
    const waiting = await updateIntent(tx, intent.id, {
      status: 'unknown' in result ? 'processing' : 'requires_capture',
    });
    if ('unknown' in result) return waitForSettlement(waiting, 'settle_capture');
    throw new MonetaError(
      502,
      'api_error',
      `The acquirer refused the capture (${failure.message}). Retry the capture.`,
    );
  }
  return recordCaptured(deps, ctx.scope, tx, s, intent, result.answer.captured_amount);
}

/** The capture happened at the acquirer: book it (and the fee), and the intent succeeded. */
export async function recordCaptured(
  deps: PaymentDeps,
  scope: Scope,
  tx: Tx,
  s: { attempt_id: string },
  intent: IntentRow,
  captured: number,
): Promise<PhaseOutcome> {
  assert(captured > 0 && captured <= Number(intent.amount), 'the acquirer captured within the authorization');
  const fee = captureFee(captured);
  const charge = await updateCharge(tx, intent.latest_charge!, { amount_captured: captured, captured: true });
  // The attempt's and the intent's new state go with the commit (see recordAuthorizationAnswer).
  const changes = { status: 'succeeded', amount_received: String(captured), amount_capturable: '0' } as const;
  const succeeded: IntentRow = { ...intent, ...changes };
  // Last: see recordAuthorizationAnswer.
  await ledgerWrites(
    deps,
    tx,
    captureTransfers(intent.id, accountsOf(scope as RequestScope, intent), captured, fee),
  );
  return {
    ...jsonResponse(200, serializeIntent(succeeded)),
    writes: [
      attemptResolution(s.attempt_id, 'succeeded', { captured }),
      intentUpdate(intent.id, changes),
      eventInsert(scope, 'charge.captured', serializeCharge(charge)),
      eventInsert(scope, 'payment_intent.succeeded', serializeIntent(succeeded)),
    ],
  };
}

/**
 * The new intent (with `acquirer`, one being confirmed as it is created: status processing):
 * its row as it will read, and the INSERT, not sent. Built here, creation time included, so
 * the phase needs no answer from the database and commits as one statement.
 */
function newIntent(
  scope: RequestScope,
  input: IntentInput,
  id: string,
  acquirer: string | null = null,
): { row: IntentRow; insert: Statement } {
  const row: IntentRow = {
    id,
    livemode: scope.livemode,
    amount: String(input.amount),
    currency: input.currency,
    status: acquirer
      ? 'processing'
      : input.payment_method
        ? 'requires_confirmation'
        : 'requires_payment_method',
    capture_method: input.capture_method ?? 'automatic',
    customer_id: input.customer ?? null,
    payment_method_id: input.payment_method ?? null,
    description: input.description ?? null,
    statement_descriptor: input.statement_descriptor ?? null,
    metadata: metadataForCreate(input.metadata),
    amount_capturable: '0',
    amount_received: '0',
    latest_charge: null,
    last_payment_error: null,
    cancellation_reason: null,
    canceled_at: null,
    acquirer,
    authorization_id: null,
    needs_review: false,
    created_at: new Date(),
  };
  const insert = {
    name: 'moneta_intent_insert',
    text: `INSERT INTO payment_intents (id, merchant_id, livemode, amount, currency, status, capture_method, customer_id,
             payment_method_id, description, statement_descriptor, metadata, acquirer, created_at)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)`,
    values: [
      id,
      scope.merchant_id,
      row.livemode,
      row.amount,
      row.currency,
      row.status,
      row.capture_method,
      row.customer_id,
      row.payment_method_id,
      row.description,
      row.statement_descriptor,
      row.metadata,
      acquirer,
      row.created_at,
    ],
  };
  return { row, insert };
}

export interface PaymentOperations {
  create: IdempotentOperation<{ input: IntentInput; confirm: boolean }>;
  confirm: IdempotentOperation<{ id: string; payment_method?: string | undefined }>;
  capture: IdempotentOperation<{ id: string; amount_to_capture?: number | undefined }>;
  cancel: IdempotentOperation<{ id: string; cancellation_reason?: string | undefined }>;
  refund: IdempotentOperation<RefundInput>;
  update: ReturnType<typeof makeUpdateOperation>;
}

export function makePaymentOperations(deps: PaymentDeps): PaymentOperations {
  const steps = confirmationSteps(deps);
  const create: PaymentOperations['create'] = {
    name: 'payment_intents.create',
    persist_params: true,
    steps: {
      started: (ctx) =>
        ctx.atomicPhase(
          async (tx) => {
            const { input, confirm } = ctx.params;
            if (input.customer !== undefined) await requireLiveCustomer(tx, ctx.scope, input.customer);
            if (!confirm) {
              const { row: intent, insert } = newIntent(ctx.scope, input, newId('pi'));
              return {
                ...jsonResponse(200, serializeIntent(intent)),
                writes: [insert, eventInsert(ctx.scope, 'payment_intent.created', serializeIntent(intent))],
              };
            }
            // Created and confirmed in one phase: the intent starts out processing, with its
            // authorization attempt recorded, and the next step calls the acquirer.
            assert(input.payment_method, 'a confirmation names its payment method (checked at the edge)');
            const { pm, writes } = await resolvePaymentMethod(deps, tx, ctx.scope, input.payment_method);
            const acquirer = await merchantAcquirer(tx, ctx.scope.merchant_id);
            const { row: intent, insert } = newIntent(
              ctx.scope,
              { ...input, payment_method: pm.id },
              newId('pi'),
              acquirer,
            );
            const attempt = attemptInsert(ctx.scope, intent, 'authorize', input.amount);
            // Nothing read (for a test shortcut, with the merchant's acquirer cached): the card,
            // the intent, its attempt, the event and the idempotency record are inserts only,
            // one statement alone, merged with other creations' rows in a batch.
            return {
              recovery_point: 'authorize',
              state: { intent_id: intent.id, attempt_id: attempt.id, pm, intent: forCall(intent) },
              writes: [
                ...writes,
                insert,
                attempt.statement,
                eventInsert(ctx.scope, 'payment_intent.created', serializeIntent(intent)),
              ],
            };
          },
          // Batched: creations arrive many at a time and insert rows of their own only.
          { batch: ctx.scope.request_id },
        ),
      ...steps,
    },
  } as PaymentOperations['create'];

  const confirm: PaymentOperations['confirm'] = {
    name: 'payment_intents.confirm',
    persist_params: true,
    steps: {
      started: (ctx) =>
        ctx.atomicPhase(async (tx) => {
          const intent = await requireIntent(tx, ctx.scope, ctx.params.id, true);
          if (!CONFIRMABLE.includes(intent.status)) unexpectedState(intent, 'confirm', CONFIRMABLE);
          if (ctx.params.payment_method) {
            await updateIntent(tx, intent.id, { payment_method_id: ctx.params.payment_method });
          }
          return { recovery_point: 'confirm', state: { intent_id: intent.id } };
        }),
      ...steps,
    },
  } as PaymentOperations['confirm'];

  const capture: PaymentOperations['capture'] = {
    name: 'payment_intents.capture',
    persist_params: true,
    steps: {
      started: (ctx) =>
        ctx.atomicPhase(async (tx) => {
          const intent = await requireIntent(tx, ctx.scope, ctx.params.id, true);
          if (intent.status !== 'requires_capture') unexpectedState(intent, 'capture', ['requires_capture']);
          const amount = ctx.params.amount_to_capture ?? Number(intent.amount_capturable);
          if (amount > Number(intent.amount_capturable)) {
            throw invalidRequest(
              `The amount to capture (${amount}) is greater than the amount capturable (${intent.amount_capturable}).`,
              'amount_to_capture',
              'amount_too_large',
            );
          }
          const attempt_id = await insertAttempt(tx, ctx.scope, intent, 'capture', amount);
          await updateIntent(tx, intent.id, { status: 'processing' });
          return { recovery_point: 'capture', state: { intent_id: intent.id, attempt_id, amount } };
        }),
      capture: steps.capture!,
      settle_capture: steps.settle_capture!,
    },
  } as PaymentOperations['capture'];

  const cancel: PaymentOperations['cancel'] = {
    name: 'payment_intents.cancel',
    persist_params: true,
    steps: {
      started: (ctx) =>
        ctx.atomicPhase(async (tx) => {
          const intent = await requireIntent(tx, ctx.scope, ctx.params.id, true);
          if (!CANCELABLE.includes(intent.status)) unexpectedState(intent, 'cancel', CANCELABLE);
          if (intent.status !== 'requires_capture')
            return canceled(ctx.scope, tx, intent, ctx.params.cancellation_reason);
          const attempt_id = await insertAttempt(tx, ctx.scope, intent, 'void', 0);
          return { recovery_point: 'void', state: { intent_id: intent.id, attempt_id } };
        }),
      void: async (ctx) => {
        const s = ctx.state as { intent_id: string; attempt_id: string };
        const intent = await requireIntent(deps.ledger.pool, ctx.scope, s.intent_id, false);
        const connector = deps.connectors.get(intent.acquirer!);
        assert(
          connector && intent.authorization_id,
          'an authorized intent has its acquirer and authorization',
        );
        const result = await callAcquirer(
          connector,
          s.attempt_id,
          () => connector.void(intent.authorization_id!, { reference: s.attempt_id }),
          (inquiry) => inquiry.transaction,
        );
        await ctx.atomicPhase(async (tx) => {
          const { intent: locked, settled } = await lockForRecord(tx, ctx.scope, s.intent_id, s.attempt_id);
          if (settled) return settledResponse(locked, 'void');
          if (!('answer' in result)) {
            await resolveAttempt(tx, s.attempt_id, 'unknown' in result ? 'unknown' : 'failed', {});
            throw new MonetaError(
              502,
              'api_error',
              'The acquirer did not confirm the cancellation. Retry it.',
            );
          }
          await resolveAttempt(tx, s.attempt_id, 'succeeded', {});
          const outcome = await canceled(ctx.scope, tx, locked, ctx.params.cancellation_reason);
          await ledgerWrites(deps, tx, [voidTransfer(locked.id, accountsOf(ctx.scope, locked))]);
          return outcome;
        });
      },
    },
  };

  return {
    create,
    confirm,
    capture,
    cancel,
    refund: makeRefundOperation(deps),
    update: makeUpdateOperation(),
  };
}

export async function canceled(
  scope: Scope,
  tx: Tx,
  intent: IntentRow,
  reason: string | undefined,
): Promise<PhaseOutcome> {
  const row = await updateIntent(tx, intent.id, {
    status: 'canceled',
    cancellation_reason: reason ?? null,
    canceled_at: new Date(),
    amount_capturable: 0,
  });
  return {
    ...jsonResponse(200, serializeIntent(row)),
    writes: [eventInsert(scope, 'payment_intent.canceled', serializeIntent(row))],
  };
}
