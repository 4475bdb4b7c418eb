import type { Queryable, Statement } from '../db/pool.ts';
import { invalidRequest, resourceMissing } from '../lib/errors.ts';
import { isIdOf, newId } from '../lib/ids.ts';
import { type ListParams, listPage, type Page, Where } from '../lib/list.ts';
import {
  type Metadata,
  type MetadataInput,
  mergeMetadata,
  metadataForCreate,
  orderedMetadata,
} from '../lib/metadata.ts';
import { checkEndpointUrl } from './guard.ts';
import { newWebhookSecret } from './signature.ts';

/** Webhook endpoints (Stripe's WebhookEndpoint): where a merchant wants its events posted. */

export interface Scope {
  merchant_id: string;
  livemode: boolean;
}

export interface EndpointRow {
  id: string;
  livemode: boolean;
  url: string;
  enabled_events: string[];
  description: string | null;
  metadata: Metadata;
  status: 'enabled' | 'disabled';
  secret: string;
  previous_secret: string | null;
  previous_secret_expires_at: Date | null;
  failing_since: Date | null;
  created_at: Date;
}

export interface EndpointInput {
  url?: string | undefined;
  enabled_events?: string[] | undefined;
  description?: string | undefined;
  metadata?: MetadataInput | undefined;
  disabled?: boolean | undefined;
}

const COLUMNS = `id, livemode, url, enabled_events, description, metadata, status, secret, previous_secret,
  previous_secret_expires_at, failing_since, created_at`;

export const MAX_ENABLED_EVENTS = 256;
/** Endpoints per merchant and mode (Stripe's limit): bounds every event's fan-out. */
export const MAX_ENDPOINTS = 16;

/**
 * Refuses a new endpoint beyond MAX_ENDPOINTS (400). Run in the creating transaction: the
 * merchant's row stays locked until it commits, so two creations at once cannot both see
 * room for one. The count is a statement of its own, after the lock: a statement's snapshot
 * is taken when it starts, and one taken before the wait would miss the endpoint the other
 * creation just committed.
 */
export async function checkEndpointRoom(db: Queryable, scope: Scope): Promise<void> {
  await db.query('SELECT 1 FROM merchants WHERE id = $1 FOR UPDATE', [scope.merchant_id]);
  const { rows } = await db.query(
    'SELECT count(*)::int AS n FROM webhook_endpoints WHERE merchant_id = $1 AND livemode = $2 AND deleted_at IS NULL',
    [scope.merchant_id, scope.livemode],
  );
  if (rows[0].n >= MAX_ENDPOINTS) {
    throw invalidRequest(
      `You have reached the maximum of ${MAX_ENDPOINTS} webhook endpoints in this mode. Delete one you no longer use.`,
      'url',
      'webhook_endpoints_limit',
    );
  }
}
const EVENT_TYPE = /^(\*|[a-z_]+(\.[a-z_]+)+)$/;
/** A rolled secret keeps signing at most this long beside the new one. */
export const MAX_SECRET_OVERLAP_S = 7 * 24 * 3600;
export const DEFAULT_SECRET_OVERLAP_S = 24 * 3600;

export function checkEnabledEvents(events: string[]): string[] {
  if (events.length === 0 || events.length > MAX_ENABLED_EVENTS) {
    throw invalidRequest(
      `enabled_events must list 1 to ${MAX_ENABLED_EVENTS} event types, or ['*'] for all.`,
      'enabled_events',
    );
  }
  for (const type of events) {
    if (!EVENT_TYPE.test(type) || type.length > 100) {
      throw invalidRequest(
        `Invalid event type '${type.slice(0, 100)}' in enabled_events: use a type such as payment_intent.succeeded, or '*'.`,
        'enabled_events',
      );
    }
  }
  return [...new Set(events)];
}

export function newEndpoint(
  scope: Scope,
  input: EndpointInput & { url: string; enabled_events: string[] },
  allow_private: boolean,
): { row: EndpointRow; insert: Statement } {
  const row: EndpointRow = {
    id: newId('we'),
    livemode: scope.livemode,
    url: checkEndpointUrl(input.url, allow_private),
    enabled_events: checkEnabledEvents(input.enabled_events),
    description: input.description || null,
    metadata: metadataForCreate(input.metadata),
    status: input.disabled ? 'disabled' : 'enabled',
    secret: newWebhookSecret(),
    previous_secret: null,
    previous_secret_expires_at: null,
    failing_since: null,
    created_at: new Date(),
  };
  return {
    row,
    insert: {
      name: 'moneta_webhook_endpoints_insert',
      text: `INSERT INTO webhook_endpoints (id, merchant_id, livemode, url, enabled_events, description, metadata, status,
               secret, created_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)`,
      values: [
        row.id,
        scope.merchant_id,
        row.livemode,
        row.url,
        row.enabled_events,
        row.description,
        row.metadata,
        row.status,
        row.secret,
        row.created_at,
      ],
    },
  };
}

async function findEndpoint(
  db: Queryable,
  scope: Scope,
  id: string,
  lock: boolean,
): Promise<EndpointRow | null> {
  if (!isIdOf('we', id)) return null;
  const { rows } = await db.query(
    `SELECT ${COLUMNS} FROM webhook_endpoints
      WHERE id = $1 AND merchant_id = $2 AND livemode = $3 AND deleted_at IS NULL${lock ? ' FOR UPDATE' : ''}`,
    [id, scope.merchant_id, scope.livemode],
  );
  return (rows[0] as EndpointRow | undefined) ?? null;
}

export async function retrieveEndpoint(db: Queryable, scope: Scope, id: string): Promise<EndpointRow> {
  const row = await findEndpoint(db, scope, id, false);
  if (!row) throw resourceMissing('webhook_endpoint', id);
  return row;
}

export async function updateEndpoint(
  db: Queryable,
  scope: Scope,
  id: string,
  input: EndpointInput,
  allow_private: boolean,
): Promise<EndpointRow> {
  const current = await findEndpoint(db, scope, id, true);
  if (!current) throw resourceMissing('webhook_endpoint', id);
  const status = input.disabled === undefined ? current.status : input.disabled ? 'disabled' : 'enabled';
  const { rows } = await db.query(
    `WITH parked AS (
       -- A disabled endpoint's waiting deliveries are set aside (no claim scans them); enabling
       -- it makes them due again.
       UPDATE webhook_deliveries
          SET next_attempt_at = CASE WHEN $6 = 'disabled' THEN 'infinity'::timestamptz ELSE now() END
        WHERE endpoint_id = $1 AND status = 'pending' AND $6 <> $7)
     UPDATE webhook_endpoints SET url = $2, enabled_events = $3, description = $4, metadata = $5, status = $6,
            failing_since = CASE WHEN $6 = 'enabled' AND status = 'disabled' THEN NULL ELSE failing_since END
      WHERE id = $1 AND deleted_at IS NULL RETURNING ${COLUMNS}`,
    [
      id,
      input.url === undefined ? current.url : checkEndpointUrl(input.url, allow_private),
      input.enabled_events === undefined ? current.enabled_events : checkEnabledEvents(input.enabled_events),
      input.description === undefined ? current.description : input.description || null,
      mergeMetadata(current.metadata, input.metadata),
      status,
      current.status,
    ],
  );
  if (!rows[0]) throw resourceMissing('webhook_endpoint', id);
  return rows[0] as EndpointRow;
}

/**
 * A new secret; the old one keeps signing beside it for `overlap_s` (0: stops at once), so
 * receivers can switch without missing a delivery. Returns the endpoint with its new secret.
 */
export async function rollSecret(
  db: Queryable,
  scope: Scope,
  id: string,
  overlap_s: number,
): Promise<EndpointRow> {
  if (!Number.isInteger(overlap_s) || overlap_s < 0 || overlap_s > MAX_SECRET_OVERLAP_S) {
    throw invalidRequest(
      `expires_in must be a whole number of seconds from 0 to ${MAX_SECRET_OVERLAP_S}.`,
      'expires_in',
    );
  }
  const { rows } = await db.query(
    `UPDATE webhook_endpoints
        SET previous_secret = CASE WHEN $4 > 0 THEN secret END,
            previous_secret_expires_at = CASE WHEN $4 > 0 THEN now() + make_interval(secs => $4) END,
            secret = $5
      WHERE id = $1 AND merchant_id = $2 AND livemode = $3 AND deleted_at IS NULL
      RETURNING ${COLUMNS}`,
    [id, scope.merchant_id, scope.livemode, overlap_s, newWebhookSecret()],
  );
  if (!rows[0]) throw resourceMissing('webhook_endpoint', id);
  return rows[0] as EndpointRow;
}

export async function deleteEndpoint(db: Queryable, scope: Scope, id: string): Promise<void> {
  const { rowCount } = await db.query(
    `WITH parked AS (
       UPDATE webhook_deliveries SET next_attempt_at = 'infinity'::timestamptz
        WHERE endpoint_id = $1 AND status = 'pending')
     UPDATE webhook_endpoints SET deleted_at = now(), status = 'disabled'
      WHERE id = $1 AND merchant_id = $2 AND livemode = $3 AND deleted_at IS NULL`,
    [id, scope.merchant_id, scope.livemode],
  );
  if (rowCount !== 1) throw resourceMissing('webhook_endpoint', id);
}

export function listEndpoints(db: Queryable, scope: Scope, params: ListParams): Promise<Page<EndpointRow>> {
  const where = new Where()
    .add((p) => `merchant_id = ${p}`, scope.merchant_id)
    .add((p) => `livemode = ${p}`, scope.livemode)
    .raw('deleted_at IS NULL');
  return listPage(db, {
    table: 'webhook_endpoints',
    columns: COLUMNS,
    where,
    params,
    cursorExists: async (id) => (await findEndpoint(db, scope, id, false)) !== null,
    map: (row) => row as unknown as EndpointRow,
  });
}

/** Stripe's WebhookEndpoint; `secret` only where Stripe shows it (creation, and our roll). */
export function serializeEndpoint(row: EndpointRow, with_secret = false): Record<string, unknown> {
  return {
    id: row.id,
    object: 'webhook_endpoint',
    api_version: null,
    application: null,
    created: Math.floor(row.created_at.getTime() / 1000),
    description: row.description,
    enabled_events: row.enabled_events,
    livemode: row.livemode,
    metadata: orderedMetadata(row.metadata),
    ...(with_secret ? { secret: row.secret } : {}),
    status: row.status,
    url: row.url,
  };
}
