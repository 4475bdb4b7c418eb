import { requireLiveCustomer } from '../customers/index.ts';
import type { Queryable, Statement, Tx } from '../db/pool.ts';
import type { RequestScope } from '../idempotency/index.ts';
import { invalidRequest, resourceMissing } from '../lib/errors.ts';
import { isIdOf, newId } from '../lib/ids.ts';
import { type ListParams, listPage, type Page, Where } from '../lib/list.ts';
import {
  checkMetadata,
  type Metadata,
  type MetadataInput,
  metadataForCreate,
  orderedMetadata,
} from '../lib/metadata.ts';
import type { CheckedCard } from '../vault/cards.ts';
import type { SealedCard } from '../vault/index.ts';

type Scope = Pick<RequestScope, 'merchant_id' | 'livemode'>;

export interface BillingAddress {
  city: string | null;
  country: string | null;
  line1: string | null;
  line2: string | null;
  postal_code: string | null;
  state: string | null;
}

export interface BillingDetails {
  address: BillingAddress;
  email: string | null;
  name: string | null;
  phone: string | null;
}

export type BillingDetailsInput = Partial<Record<'email' | 'name' | 'phone', string>> & {
  address?: Partial<Record<keyof BillingAddress, string>>;
};

/** A validated create request. `card` holds the number and CVC: never stored as is, never logged. */
export interface PaymentMethodInput {
  card: CheckedCard;
  billing_details?: BillingDetailsInput | undefined;
  metadata?: MetadataInput | undefined;
}

export interface PaymentMethodRow {
  id: string;
  livemode: boolean;
  customer_id: string | null;
  vault_card_id: string | null;
  card_brand: string;
  card_last4: string;
  card_exp_month: number;
  card_exp_year: number;
  card_fingerprint: string;
  card_funding: string;
  card_country: string | null;
  cvc_check: string | null;
  billing_details: BillingDetails;
  metadata: Metadata;
  created_at: Date;
}

export interface PaymentMethodListParams extends ListParams {
  customer?: string | undefined;
  type?: string | undefined;
}

const COLUMNS = `id, livemode, customer_id, vault_card_id, card_brand, card_last4, card_exp_month, card_exp_year,
  card_fingerprint, card_funding, card_country, cvc_check, billing_details, metadata, created_at`;
const ADDRESS_FIELDS = ['city', 'country', 'line1', 'line2', 'postal_code', 'state'] as const;
const EMAIL = /^[^\s@]+@[^\s@]+\.[^\s@]+$/;

export function checkBillingDetails(input: BillingDetailsInput | undefined): void {
  if (input?.email !== undefined && input.email !== '' && !EMAIL.test(input.email)) {
    throw invalidRequest(`Invalid email address: ${input.email}`, 'billing_details[email]', 'email_invalid');
  }
}

export function checkPaymentMethodInput(input: Omit<PaymentMethodInput, 'card'>): void {
  checkBillingDetails(input.billing_details);
  checkMetadata(input.metadata);
}

export function checkPaymentMethodId(id: string, param = 'id'): void {
  if (!isIdOf('pm', id)) throw resourceMissing('payment_method', id, param);
}

function billingDetails(input: BillingDetailsInput | undefined): BillingDetails {
  const address = Object.fromEntries(
    ADDRESS_FIELDS.map((f) => [f, input?.address?.[f] || null]),
  ) as unknown as BillingAddress;
  return {
    address,
    email: input?.email || null,
    name: input?.name || null,
    phone: input?.phone || null,
  };
}

/**
 * Builds a payment method row for a sealed card and the statement that stores it; nothing
 * touches the database, so the caller commits it with the vault's inserts in one statement.
 */
export function newPaymentMethod(
  scope: Scope,
  input: PaymentMethodInput,
  sealed: SealedCard,
  customer_id: string | null = null,
): { row: PaymentMethodRow; insert: Statement } {
  const { card } = input;
  const row: PaymentMethodRow = {
    id: newId('pm'),
    livemode: scope.livemode,
    customer_id,
    vault_card_id: sealed.card_id,
    card_brand: card.brand,
    card_last4: card.last4,
    card_exp_month: card.exp_month,
    card_exp_year: card.exp_year,
    card_fingerprint: sealed.fingerprint,
    card_funding: card.funding,
    card_country: card.country,
    // Stripe's value until an authorization checks it (the payments issue sets pass or fail).
    cvc_check: card.cvc === null ? null : 'unchecked',
    billing_details: billingDetails(input.billing_details),
    metadata: metadataForCreate(input.metadata),
    created_at: new Date(),
  };
  const insert: Statement = {
    name: 'moneta_payment_methods_insert',
    text: `INSERT INTO payment_methods (id, merchant_id, livemode, type, customer_id, vault_card_id, card_brand,
             card_last4, card_exp_month, card_exp_year, card_fingerprint, card_funding, card_country, cvc_check,
             billing_details, metadata, created_at)
           VALUES ($1, $2, $3, $17, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)`,
    values: [
      row.id,
      scope.merchant_id,
      row.livemode,
      row.customer_id,
      row.vault_card_id,
      row.card_brand,
      row.card_last4,
      row.card_exp_month,
      row.card_exp_year,
      row.card_fingerprint,
      row.card_funding,
      row.card_country,
      row.cvc_check,
      row.billing_details,
      row.metadata,
      row.created_at,
      'card',
    ],
  };
  return { row, insert };
}

async function findPaymentMethod(db: Queryable, scope: Scope, id: string): Promise<PaymentMethodRow | null> {
  const { rows } = await db.query(
    `SELECT ${COLUMNS} FROM payment_methods WHERE id = $1 AND merchant_id = $2 AND livemode = $3`,
    [id, scope.merchant_id, scope.livemode],
  );
  return (rows[0] as PaymentMethodRow | undefined) ?? null;
}

export async function retrievePaymentMethod(
  db: Queryable,
  scope: Scope,
  id: string,
): Promise<PaymentMethodRow> {
  checkPaymentMethodId(id);
  const row = await findPaymentMethod(db, scope, id);
  if (!row) throw resourceMissing('payment_method', id);
  return row;
}

export async function attachPaymentMethod(
  tx: Tx,
  scope: Scope,
  id: string,
  customer: string,
): Promise<PaymentMethodRow> {
  await requireLiveCustomer(tx, scope, customer);
  const { rows } = await tx.query(
    `UPDATE payment_methods SET customer_id = $4
      WHERE id = $1 AND merchant_id = $2 AND livemode = $3 AND (customer_id IS NULL OR customer_id = $4)
      RETURNING ${COLUMNS}`,
    [id, scope.merchant_id, scope.livemode, customer],
  );
  if (rows[0]) return rows[0] as PaymentMethodRow;
  const existing = await findPaymentMethod(tx, scope, id);
  if (!existing) throw resourceMissing('payment_method', id);
  throw invalidRequest(
    'The payment method you provided has already been attached to a customer. Detach it first, or create a new one.',
    'customer',
    'payment_method_unexpected_state',
  );
}

export async function detachPaymentMethod(tx: Tx, scope: Scope, id: string): Promise<PaymentMethodRow> {
  const { rows } = await tx.query(
    `UPDATE payment_methods SET customer_id = NULL
      WHERE id = $1 AND merchant_id = $2 AND livemode = $3 AND customer_id IS NOT NULL
      RETURNING ${COLUMNS}`,
    [id, scope.merchant_id, scope.livemode],
  );
  if (rows[0]) return rows[0] as PaymentMethodRow;
  if (!(await findPaymentMethod(tx, scope, id))) throw resourceMissing('payment_method', id);
  throw invalidRequest(
    'The payment method you provided is not attached to a customer so detachment is impossible.',
    undefined,
    'payment_method_unexpected_state',
  );
}

export async function listPaymentMethods(
  db: Queryable,
  scope: Scope,
  params: PaymentMethodListParams,
): Promise<Page<PaymentMethodRow>> {
  if (params.type !== undefined && params.type !== 'card') {
    throw invalidRequest(`Invalid type: must be card (the only payment method type Moneta supports)`, 'type');
  }
  const where = new Where()
    .add((p) => `merchant_id = ${p}`, scope.merchant_id)
    .add((p) => `livemode = ${p}`, scope.livemode);
  if (params.customer !== undefined) where.add((p) => `customer_id = ${p}`, params.customer);
  return listPage(db, {
    table: 'payment_methods',
    columns: COLUMNS,
    where,
    params,
    cursorExists: async (id) => isIdOf('pm', id) && (await findPaymentMethod(db, scope, id)) !== null,
    map: (row) => row as unknown as PaymentMethodRow,
  });
}

/** Stripe's PaymentMethod object: the card by brand, last 4 and expiry, never its number. */
export function serializePaymentMethod(row: PaymentMethodRow): Record<string, unknown> {
  const b = row.billing_details;
  return {
    id: row.id,
    object: 'payment_method',
    allow_redisplay: 'unspecified',
    billing_details: {
      address: Object.fromEntries(ADDRESS_FIELDS.map((f) => [f, b.address?.[f] ?? null])),
      email: b.email ?? null,
      name: b.name ?? null,
      phone: b.phone ?? null,
    },
    card: {
      brand: row.card_brand,
      checks: { address_line1_check: null, address_postal_code_check: null, cvc_check: row.cvc_check },
      country: row.card_country,
      display_brand: row.card_brand,
      exp_month: row.card_exp_month,
      exp_year: row.card_exp_year,
      fingerprint: row.card_fingerprint,
      funding: row.card_funding,
      generated_from: null,
      last4: row.card_last4,
      networks: { available: [row.card_brand], preferred: null },
      three_d_secure_usage: { supported: true },
      wallet: null,
    },
    created: Math.floor(row.created_at.getTime() / 1000),
    customer: row.customer_id,
    livemode: row.livemode,
    metadata: orderedMetadata(row.metadata),
    type: 'card',
  };
}
