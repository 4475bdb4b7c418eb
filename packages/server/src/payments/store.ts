import { createHash } from 'node:crypto';
import type { Queryable, Statement, Tx } from '../db/pool.ts';
import { assert, invalidRequest, resourceMissing } from '../lib/errors.ts';
import { isIdOf } from '../lib/ids.ts';
import { type CreatedFilter, type ListParams, listPage, type Page, Where } from '../lib/list.ts';
import { type Metadata, orderedMetadata } from '../lib/metadata.ts';
import { TEST_CARD_SHORTCUTS } from '../vault/test-cards.ts';

export interface Scope {
  merchant_id: string;
  livemode: boolean;
}

export type IntentStatus =
  | 'requires_payment_method'
  | 'requires_confirmation'
  | 'requires_action'
  | 'processing'
  | 'requires_capture'
  | 'succeeded'
  | 'canceled';

export interface PaymentError {
  type: 'card_error' | 'api_error' | 'invalid_request_error';
  code: string;
  decline_code?: string;
  message: string;
  charge?: string;
}

export interface IntentRow {
  id: string;
  livemode: boolean;
  amount: string; // bigint column: pg returns text
  currency: string;
  status: IntentStatus;
  capture_method: 'automatic' | 'manual';
  customer_id: string | null;
  payment_method_id: string | null;
  description: string | null;
  statement_descriptor: string | null;
  metadata: Metadata;
  amount_capturable: string;
  amount_received: string;
  latest_charge: string | null;
  last_payment_error: PaymentError | null;
  cancellation_reason: string | null;
  canceled_at: Date | null;
  acquirer: string | null;
  authorization_id: string | null;
  needs_review: boolean;
  created_at: Date;
}

export interface ChargeRow {
  id: string;
  payment_intent_id: string;
  livemode: boolean;
  amount: string;
  amount_captured: string;
  amount_refunded: string;
  currency: string;
  status: 'succeeded' | 'failed' | 'pending';
  captured: boolean;
  failure_code: string | null;
  failure_message: string | null;
  outcome: Record<string, unknown>;
  payment_method_id: string | null;
  card: Record<string, unknown>;
  acquirer_id: string | null;
  created_at: Date;
}

export interface RefundRow {
  id: string;
  payment_intent_id: string;
  charge_id: string;
  livemode: boolean;
  amount: string;
  currency: string;
  status: 'pending' | 'succeeded' | 'failed';
  reason: string | null;
  failure_reason: string | null;
  metadata: Metadata;
  created_at: Date;
}

export const INTENT_COLUMNS = `id, livemode, amount, currency, status, capture_method, customer_id, payment_method_id,
  description, statement_descriptor, metadata, amount_capturable, amount_received, latest_charge, last_payment_error,
  cancellation_reason, canceled_at, acquirer, authorization_id, needs_review, created_at`;
const CHARGE_COLUMNS = `id, payment_intent_id, livemode, amount, amount_captured, amount_refunded, currency, status,
  captured, failure_code, failure_message, outcome, payment_method_id, card, acquirer_id, created_at`;
const REFUND_COLUMNS = `id, payment_intent_id, charge_id, livemode, amount, currency, status, reason, failure_reason,
  metadata, created_at`;

export async function findIntent(
  db: Queryable,
  scope: Scope,
  id: string,
  lock: boolean,
): Promise<IntentRow | null> {
  if (!isIdOf('pi', id)) return null;
  const { rows } = await db.query(
    `SELECT ${INTENT_COLUMNS} FROM payment_intents WHERE id = $1 AND merchant_id = $2 AND livemode = $3${lock ? ' FOR UPDATE' : ''}`,
    [id, scope.merchant_id, scope.livemode],
  );
  return (rows[0] as IntentRow | undefined) ?? null;
}

export async function requireIntent(
  db: Queryable,
  scope: Scope,
  id: string,
  lock: boolean,
  param = 'id',
): Promise<IntentRow> {
  const row = await findIntent(db, scope, id, lock);
  if (!row) throw resourceMissing('payment_intent', id, param);
  return row;
}

export async function findCharge(db: Queryable, scope: Scope, id: string): Promise<ChargeRow | null> {
  if (!isIdOf('ch', id)) return null;
  const { rows } = await db.query(
    `SELECT ${CHARGE_COLUMNS} FROM charges WHERE id = $1 AND merchant_id = $2 AND livemode = $3`,
    [id, scope.merchant_id, scope.livemode],
  );
  return (rows[0] as ChargeRow | undefined) ?? null;
}

export async function findRefund(db: Queryable, scope: Scope, id: string): Promise<RefundRow | null> {
  if (!isIdOf('re', id)) return null;
  const { rows } = await db.query(
    `SELECT ${REFUND_COLUMNS} FROM refunds WHERE id = $1 AND merchant_id = $2 AND livemode = $3`,
    [id, scope.merchant_id, scope.livemode],
  );
  return (rows[0] as RefundRow | undefined) ?? null;
}

/**
 * `UPDATE table SET <fields> WHERE id = $1 [RETURNING …]`, named by table, column set and
 * RETURNING (a hash: PostgreSQL cuts names at 63 bytes, and a cut could collide). `fields`
 * are column names chosen by our code, never by a client.
 */
function setColumns(table: string, id: string, fields: Record<string, unknown>, returning = ''): Statement {
  const names = Object.keys(fields);
  assert(names.length > 0 && names.every((n) => /^[a-z_]+$/.test(n)), 'columns are plain names');
  const text = `UPDATE ${table} SET ${names.map((n, i) => `${n} = $${i + 2}`).join(', ')} WHERE id = $1${
    returning ? ` RETURNING ${returning}` : ''
  }`;
  return {
    name: `moneta_set_${createHash('sha256').update(text).digest('hex').slice(0, 20)}`,
    text,
    values: [id, ...names.map((n) => fields[n])],
  };
}

/** The UPDATE setting columns of an intent, to send with the commit. */
export function intentUpdate(id: string, fields: Record<string, unknown>): Statement {
  return setColumns('payment_intents', id, fields);
}

/** Sets columns of an intent now and returns the row. */
export async function updateIntent(tx: Tx, id: string, fields: Record<string, unknown>): Promise<IntentRow> {
  const { rows } = await tx.query(setColumns('payment_intents', id, fields, INTENT_COLUMNS));
  return rows[0] as IntentRow;
}

export async function chargeOf(db: Queryable, intent: IntentRow): Promise<ChargeRow | null> {
  if (!intent.latest_charge) return null;
  const { rows } = await db.query(`SELECT ${CHARGE_COLUMNS} FROM charges WHERE id = $1`, [
    intent.latest_charge,
  ]);
  return (rows[0] as ChargeRow | undefined) ?? null;
}

export async function updateCharge(tx: Tx, id: string, fields: Record<string, unknown>): Promise<ChargeRow> {
  const { rows } = await tx.query(setColumns('charges', id, fields, CHARGE_COLUMNS));
  return rows[0] as ChargeRow;
}

/**
 * A new charge: its row as it will read, and the INSERT, not sent, so it can go with the
 * commit. Its creation time is taken here rather than by the database for the same reason.
 */
export function newCharge(
  scope: Scope,
  c: Omit<ChargeRow, 'created_at' | 'livemode'>,
): { row: ChargeRow; insert: Statement } {
  const row: ChargeRow = { ...c, livemode: scope.livemode, created_at: new Date() };
  const insert = {
    name: 'moneta_charge_insert',
    text: `INSERT INTO charges (id, payment_intent_id, merchant_id, livemode, amount, amount_captured, amount_refunded, currency,
             status, captured, failure_code, failure_message, outcome, payment_method_id, card, acquirer_id, created_at)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17)`,
    values: [
      c.id,
      c.payment_intent_id,
      scope.merchant_id,
      scope.livemode,
      c.amount,
      c.amount_captured,
      c.amount_refunded,
      c.currency,
      c.status,
      c.captured,
      c.failure_code,
      c.failure_message,
      c.outcome,
      c.payment_method_id,
      c.card,
      c.acquirer_id,
      row.created_at,
    ],
  };
  return { row, insert };
}

/** An event for the outbox, committed with the change it describes. */
export interface IntentListParams extends ListParams {
  customer?: string | undefined;
  created?: CreatedFilter | number | undefined;
}

export function listIntents(db: Queryable, scope: Scope, params: IntentListParams): Promise<Page<IntentRow>> {
  const where = new Where()
    .add((p) => `merchant_id = ${p}`, scope.merchant_id)
    .add((p) => `livemode = ${p}`, scope.livemode)
    .created('created_at', params.created);
  if (params.customer !== undefined) where.add((p) => `customer_id = ${p}`, params.customer);
  return listPage(db, {
    table: 'payment_intents',
    columns: INTENT_COLUMNS,
    where,
    params,
    cursorExists: async (id) => (await findIntent(db, scope, id, false)) !== null,
    map: (row) => row as unknown as IntentRow,
  });
}

export function listRefunds(
  db: Queryable,
  scope: Scope,
  params: ListParams & { payment_intent?: string | undefined },
): Promise<Page<RefundRow>> {
  const where = new Where()
    .add((p) => `merchant_id = ${p}`, scope.merchant_id)
    .add((p) => `livemode = ${p}`, scope.livemode);
  if (params.payment_intent !== undefined)
    where.add((p) => `payment_intent_id = ${p}`, params.payment_intent);
  return listPage(db, {
    table: 'refunds',
    columns: REFUND_COLUMNS,
    where,
    params,
    cursorExists: async (id) => (await findRefund(db, scope, id)) !== null,
    map: (row) => row as unknown as RefundRow,
  });
}

const seconds = (d: Date) => Math.floor(d.getTime() / 1000);

/** Stripe's PaymentIntent. */
export function serializeIntent(row: IntentRow): Record<string, unknown> {
  return {
    id: row.id,
    object: 'payment_intent',
    amount: Number(row.amount),
    amount_capturable: Number(row.amount_capturable),
    amount_received: Number(row.amount_received),
    canceled_at: row.canceled_at ? seconds(row.canceled_at) : null,
    cancellation_reason: row.cancellation_reason,
    capture_method: row.capture_method,
    confirmation_method: 'automatic',
    created: seconds(row.created_at),
    currency: row.currency,
    customer: row.customer_id,
    description: row.description,
    last_payment_error: row.last_payment_error
      ? {
          ...row.last_payment_error,
          payment_method: row.payment_method_id ? { id: row.payment_method_id } : null,
        }
      : null,
    latest_charge: row.latest_charge,
    livemode: row.livemode,
    metadata: orderedMetadata(row.metadata),
    next_action: row.status === 'requires_action' ? { type: 'use_stripe_sdk', use_stripe_sdk: {} } : null,
    payment_method: row.payment_method_id,
    payment_method_types: ['card'],
    statement_descriptor: row.statement_descriptor,
    status: row.status,
  };
}

/** Stripe's Charge, as far as Moneta records it. */
export function serializeCharge(row: ChargeRow): Record<string, unknown> {
  return {
    id: row.id,
    object: 'charge',
    amount: Number(row.amount),
    amount_captured: Number(row.amount_captured),
    amount_refunded: Number(row.amount_refunded),
    captured: row.captured,
    created: seconds(row.created_at),
    currency: row.currency,
    failure_code: row.failure_code,
    failure_message: row.failure_message,
    livemode: row.livemode,
    outcome: row.outcome,
    paid: row.status === 'succeeded',
    payment_intent: row.payment_intent_id,
    payment_method: row.payment_method_id,
    payment_method_details: { type: 'card', card: row.card },
    refunded: Number(row.amount_refunded) > 0 && row.amount_refunded === row.amount_captured,
    status: row.status,
  };
}

export function serializeRefund(row: RefundRow): Record<string, unknown> {
  return {
    id: row.id,
    object: 'refund',
    amount: Number(row.amount),
    charge: row.charge_id,
    created: seconds(row.created_at),
    currency: row.currency,
    failure_reason: row.failure_reason,
    metadata: orderedMetadata(row.metadata),
    payment_intent: row.payment_intent_id,
    reason: row.reason,
    status: row.status,
  };
}

/**
 * A `payment_method` must name one (`pm_…`, or a test shortcut such as `pm_card_visa`). Anything
 * else is refused without echoing it: a card number pasted there must not reach the stored
 * parameters, an error body or an event.
 */
export function checkPaymentMethodRef(value: string | undefined, param = 'payment_method'): void {
  if (value === undefined || isIdOf('pm', value) || Object.hasOwn(TEST_CARD_SHORTCUTS, value)) return;
  throw invalidRequest(
    'Invalid payment_method: pass the id of a PaymentMethod (pm_…) or a test PaymentMethod such as pm_card_visa.',
    param,
  );
}

export function checkIntentId(id: string, param = 'id'): void {
  if (!isIdOf('pi', id)) throw resourceMissing('payment_intent', id, param);
}

export function unexpectedState(intent: IntentRow, action: string, allowed: readonly IntentStatus[]): never {
  throw invalidRequest(
    `You cannot ${action} this PaymentIntent because it has a status of ${intent.status}. ` +
      `Only a PaymentIntent with one of the following statuses may be ${action === 'cancel' ? 'canceled' : `${action}ed`}: ${allowed.join(', ')}.`,
    undefined,
    'payment_intent_unexpected_state',
  );
}
