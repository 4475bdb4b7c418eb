import type { Queryable } from '../db/pool.ts';
import { invalidRequest, resourceMissing } from '../lib/errors.ts';
import { isIdOf } from '../lib/ids.ts';
import { type CreatedFilter, type ListParams, listPage, type Page, Where } from '../lib/list.ts';

/** The Events API: the outbox as merchants read it (Stripe's Event objects), kept 30 days. */

export interface Scope {
  merchant_id: string;
  livemode: boolean;
}

export interface EventRow {
  id: string;
  livemode: boolean;
  type: string;
  data: { object: Record<string, unknown> };
  created_at: Date;
  pending_webhooks: number;
}

export interface EventListParams extends ListParams {
  type?: string | undefined;
  created?: CreatedFilter | number | undefined;
}

/** How long events are kept and listed (Stripe: 30 days). */
export const EVENT_RETENTION_DAYS = 30;

const COLUMNS = `id, livemode, type, data, created_at,
  (SELECT count(*)::int FROM webhook_deliveries d WHERE d.event_id = events.id AND d.status = 'pending')
    AS pending_webhooks`;

const TYPE_FILTER = /^[a-z_]+(\.[a-z_*]+)*$/;

export async function retrieveEvent(db: Queryable, scope: Scope, id: string): Promise<EventRow> {
  const row = isIdOf('evt', id) ? await findEvent(db, scope, id) : null;
  if (!row) throw resourceMissing('event', id);
  return row;
}

async function findEvent(db: Queryable, scope: Scope, id: string): Promise<EventRow | null> {
  const { rows } = await db.query(
    `SELECT ${COLUMNS} FROM events
      WHERE id = $1 AND merchant_id = $2 AND livemode = $3
        AND created_at > now() - make_interval(days => $4)`,
    [id, scope.merchant_id, scope.livemode, EVENT_RETENTION_DAYS],
  );
  return (rows[0] as EventRow | undefined) ?? null;
}

/** Newest first; `type` matches exactly or, ending in `.*`, by prefix (Stripe's rule). */
export function listEvents(db: Queryable, scope: Scope, params: EventListParams): Promise<Page<EventRow>> {
  const where = new Where()
    .add((p) => `merchant_id = ${p}`, scope.merchant_id)
    .add((p) => `livemode = ${p}`, scope.livemode)
    .add((p) => `created_at > now() - make_interval(days => ${p})`, EVENT_RETENTION_DAYS)
    .created('created_at', params.created);
  if (params.type !== undefined) {
    if (!TYPE_FILTER.test(params.type) || params.type.length > 100) {
      throw invalidRequest(
        'Invalid type: an event type such as charge.succeeded, or a prefix such as charge.*',
        'type',
      );
    }
    if (params.type.endsWith('.*'))
      where.add((p) => `type LIKE ${p}`, `${params.type.slice(0, -1).replaceAll('_', '\\_')}%`);
    else where.add((p) => `type = ${p}`, params.type);
  }
  return listPage(db, {
    table: 'events',
    columns: COLUMNS,
    where,
    params,
    cursorExists: async (id) => isIdOf('evt', id) && (await findEvent(db, scope, id)) !== null,
    map: (row) => row as unknown as EventRow,
  });
}

/** Stripe's Event object, as the API returns it and as webhooks deliver it. */
export function serializeEvent(
  row: Omit<EventRow, 'pending_webhooks'>,
  pending_webhooks: number,
): Record<string, unknown> {
  return {
    id: row.id,
    object: 'event',
    api_version: null,
    created: Math.floor(row.created_at.getTime() / 1000),
    data: row.data,
    livemode: row.livemode,
    pending_webhooks,
    request: { id: null, idempotency_key: null },
    type: row.type,
  };
}
