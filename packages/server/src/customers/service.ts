import type { Queryable, Statement } from '../db/pool.ts';
import { invalidRequest, resourceMissing } from '../lib/errors.ts';
import { isIdOf, newId } from '../lib/ids.ts';
import { type CreatedFilter, type ListParams, listPage, type Page, Where } from '../lib/list.ts';
import {
  checkMetadata,
  type Metadata,
  type MetadataInput,
  mergeMetadata,
  metadataForCreate,
  orderedMetadata,
} from '../lib/metadata.ts';

export interface Scope {
  merchant_id: string;
  livemode: boolean;
}

export interface Address {
  city: string | null;
  country: string | null;
  line1: string | null;
  line2: string | null;
  postal_code: string | null;
  state: string | null;
}

/** Customer fields as a client may send them; "" unsets a field (Stripe's convention). */
export interface CustomerInput {
  email?: string;
  name?: string;
  phone?: string;
  description?: string;
  address?: Partial<Record<keyof Address, string>> | '';
  metadata?: MetadataInput;
}

export interface CustomerListParams extends ListParams {
  email?: string | undefined;
  created?: CreatedFilter | number | undefined;
}

interface CustomerRow {
  id: string;
  livemode: boolean;
  email: string | null;
  name: string | null;
  phone: string | null;
  description: string | null;
  address: Address | null;
  metadata: Metadata;
  created_at: Date;
  deleted_at: Date | null;
}

const COLUMNS = 'id, livemode, email, name, phone, description, address, metadata, created_at, deleted_at';
const LIMITS = { email: 512, name: 256, phone: 40, description: 1000, address: 200 } as const;
const EMAIL = /^[^\s@]+@[^\s@]+\.[^\s@]+$/;
const ADDRESS_FIELDS = ['city', 'country', 'line1', 'line2', 'postal_code', 'state'] as const;

/** Checks what a JSON schema cannot say; throws a 400 naming the parameter. Runs before any work. */
export function checkCustomerInput(input: CustomerInput): void {
  for (const field of ['email', 'name', 'phone', 'description'] as const) {
    const v = input[field];
    if (v !== undefined && v.length > LIMITS[field]) {
      throw invalidRequest(`Invalid ${field}: must be at most ${LIMITS[field]} characters`, field);
    }
  }
  if (input.email !== undefined && input.email !== '' && !EMAIL.test(input.email)) {
    throw invalidRequest(`Invalid email address: ${input.email}`, 'email', 'email_invalid');
  }
  if (input.address !== undefined && input.address !== '') {
    for (const [k, v] of Object.entries(input.address)) {
      if (v !== undefined && v.length > LIMITS.address) {
        throw invalidRequest(
          `Invalid address[${k}]: must be at most ${LIMITS.address} characters`,
          `address[${k}]`,
        );
      }
    }
  }
  checkMetadata(input.metadata);
}

export function checkCustomerId(id: string, param = 'id'): void {
  if (!isIdOf('cus', id)) throw resourceMissing('customer', id, param);
}

function orNull(v: string | undefined): string | null | undefined {
  return v === undefined ? undefined : v === '' ? null : v;
}

function toAddress(input: CustomerInput['address'], current: Address | null): Address | null | undefined {
  if (input === undefined) return undefined;
  if (input === '') return null;
  const out: Address = {
    ...(current ?? { city: null, country: null, line1: null, line2: null, postal_code: null, state: null }),
  };
  for (const f of ADDRESS_FIELDS) {
    const v = orNull(input[f]);
    if (v !== undefined) out[f] = v;
  }
  return out;
}

/**
 * Builds a new customer row and the statement that stores it, without touching the
 * database: the caller sends the statement with its transaction's COMMIT (one round trip).
 * The row is exactly what the statement writes, so it can be serialized right away.
 */
export function newCustomer(scope: Scope, input: CustomerInput): { row: CustomerRow; insert: Statement } {
  const row: CustomerRow = {
    id: newId('cus'),
    livemode: scope.livemode,
    email: orNull(input.email) ?? null,
    name: orNull(input.name) ?? null,
    phone: orNull(input.phone) ?? null,
    description: orNull(input.description) ?? null,
    address: toAddress(input.address, null) ?? null,
    metadata: metadataForCreate(input.metadata),
    created_at: new Date(),
    deleted_at: null,
  };
  const insert: Statement = {
    // Named: the hottest write is parsed and planned once per connection, not per request.
    name: 'moneta_customers_insert',
    text: `INSERT INTO customers (id, merchant_id, livemode, email, name, phone, description, address, metadata, created_at)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)`,
    values: [
      row.id,
      scope.merchant_id,
      row.livemode,
      row.email,
      row.name,
      row.phone,
      row.description,
      row.address,
      row.metadata,
      row.created_at,
    ],
  };
  return { row, insert };
}

/** A live or deleted customer of this merchant and mode, or null. */
async function findCustomer(
  db: Queryable,
  scope: Scope,
  id: string,
  lock: boolean,
): Promise<CustomerRow | null> {
  const { rows } = await db.query(
    `SELECT ${COLUMNS} FROM customers WHERE id = $1 AND merchant_id = $2 AND livemode = $3${lock ? ' FOR UPDATE' : ''}`,
    [id, scope.merchant_id, scope.livemode],
  );
  return (rows[0] as CustomerRow | undefined) ?? null;
}

/**
 * For objects that name a customer (payment methods, payment intents): the customer exists,
 * is not deleted, and belongs to this merchant and mode; locked against deletion (FOR SHARE)
 * until the caller's transaction ends. Answers 404 naming `param`.
 */
export async function requireLiveCustomer(
  tx: Queryable,
  scope: Scope,
  id: string,
  param = 'customer',
): Promise<void> {
  const { rowCount } = await tx.query(
    'SELECT 1 FROM customers WHERE id = $1 AND merchant_id = $2 AND livemode = $3 AND deleted_at IS NULL FOR SHARE',
    [id, scope.merchant_id, scope.livemode],
  );
  if (rowCount !== 1) throw resourceMissing('customer', id, param);
}

/** Whether a customer of this merchant and mode exists (deleted or not), for list filters. */
export async function customerExists(db: Queryable, scope: Scope, id: string): Promise<boolean> {
  return isIdOf('cus', id) && (await findCustomer(db, scope, id, false)) !== null;
}

export async function retrieveCustomer(db: Queryable, scope: Scope, id: string): Promise<CustomerRow> {
  checkCustomerId(id);
  const row = await findCustomer(db, scope, id, false);
  if (!row) throw resourceMissing('customer', id);
  return row;
}

export async function updateCustomer(
  db: Queryable,
  scope: Scope,
  id: string,
  input: CustomerInput,
): Promise<CustomerRow> {
  const current = await findCustomer(db, scope, id, true);
  if (!current || current.deleted_at) throw resourceMissing('customer', id);
  const next = {
    email: orNull(input.email),
    name: orNull(input.name),
    phone: orNull(input.phone),
    description: orNull(input.description),
  };
  const { rows } = await db.query(
    `UPDATE customers SET email = $2, name = $3, phone = $4, description = $5, address = $6, metadata = $7
      WHERE id = $1 RETURNING ${COLUMNS}`,
    [
      id,
      next.email === undefined ? current.email : next.email,
      next.name === undefined ? current.name : next.name,
      next.phone === undefined ? current.phone : next.phone,
      next.description === undefined ? current.description : next.description,
      (() => {
        const a = toAddress(input.address, current.address);
        return a === undefined ? current.address : a;
      })(),
      mergeMetadata(current.metadata, input.metadata),
    ],
  );
  return rows[0] as CustomerRow;
}

export async function deleteCustomer(db: Queryable, scope: Scope, id: string): Promise<{ id: string }> {
  checkCustomerId(id);
  const { rowCount } = await db.query(
    'UPDATE customers SET deleted_at = now() WHERE id = $1 AND merchant_id = $2 AND livemode = $3 AND deleted_at IS NULL',
    [id, scope.merchant_id, scope.livemode],
  );
  if (rowCount !== 1) throw resourceMissing('customer', id);
  return { id };
}

export async function listCustomers(
  db: Queryable,
  scope: Scope,
  params: CustomerListParams,
): Promise<Page<CustomerRow>> {
  if (params.email !== undefined && params.email.length > LIMITS.email) {
    throw invalidRequest(`Invalid email: must be at most ${LIMITS.email} characters`, 'email');
  }
  const where = new Where()
    .add((p) => `merchant_id = ${p}`, scope.merchant_id)
    .add((p) => `livemode = ${p}`, scope.livemode)
    .raw('deleted_at IS NULL')
    .created('created_at', params.created);
  if (params.email !== undefined) where.add((p) => `email = ${p}`, params.email);
  return listPage(db, {
    table: 'customers',
    columns: COLUMNS,
    where,
    params,
    cursorExists: async (id) => isIdOf('cus', id) && (await findCustomer(db, scope, id, false)) !== null,
    map: (row) => row as unknown as CustomerRow,
  });
}

/**
 * jsonb stores object keys in its own order (shorter keys first), so a response built from
 * the row we wrote and one built from the row we read back would differ byte for byte.
 * Fixed orders keep every response of the same object identical.
 */
function orderedAddress(address: Address): Address {
  return {
    city: address.city ?? null,
    country: address.country ?? null,
    line1: address.line1 ?? null,
    line2: address.line2 ?? null,
    postal_code: address.postal_code ?? null,
    state: address.state ?? null,
  };
}

/** Stripe's Customer object. A deleted customer is a stub with `deleted: true`. */
export function serializeCustomer(row: CustomerRow): Record<string, unknown> {
  if (row.deleted_at) return { id: row.id, object: 'customer', deleted: true };
  return {
    id: row.id,
    object: 'customer',
    address: row.address && orderedAddress(row.address),
    balance: 0,
    created: Math.floor(row.created_at.getTime() / 1000),
    currency: null,
    default_source: null,
    delinquent: false,
    description: row.description,
    email: row.email,
    invoice_settings: {
      custom_fields: null,
      default_payment_method: null,
      footer: null,
      rendering_options: null,
    },
    livemode: row.livemode,
    metadata: orderedMetadata(row.metadata),
    name: row.name,
    phone: row.phone,
    preferred_locales: [],
    shipping: null,
    tax_exempt: 'none',
  };
}
