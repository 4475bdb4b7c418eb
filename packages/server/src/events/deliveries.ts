import { deleteInBatches, type Queryable } from '../db/pool.ts';
import { invalidRequest, resourceMissing } from '../lib/errors.ts';
import { isIdOf } from '../lib/ids.ts';
import { type ListParams, listPage, type Page, Where } from '../lib/list.ts';
import { retrieveEndpoint } from './endpoints.ts';
import { EVENT_RETENTION_DAYS, type Scope } from './store.ts';

/** What operators do with deliveries: look at them, send events again, and drop old ones. */

export interface DeliveryRow {
  endpoint_id: string;
  event_id: string;
  event_type: string;
  status: 'pending' | 'succeeded' | 'failed';
  attempts: number;
  next_attempt_at: Date;
  last_status_code: number | null;
  last_error: string | null;
  created_at: Date;
  delivered_at: Date | null;
}

const DELIVERY_COLUMNS = `endpoint_id, event_id, event_type, status, attempts, next_attempt_at, last_status_code,
  last_error, created_at, delivered_at`;

/** An endpoint's deliveries, newest event first, optionally of one status (Stripe's list paging). */
export async function listDeliveries(
  db: Queryable,
  scope: Scope,
  endpoint_id: string,
  params: ListParams & { status?: DeliveryRow['status'] | undefined },
): Promise<Page<DeliveryRow>> {
  await retrieveEndpoint(db, scope, endpoint_id);
  const where = new Where().add((p) => `endpoint_id = ${p}`, endpoint_id);
  if (params.status !== undefined) where.add((p) => `status = ${p}`, params.status);
  return listPage(db, {
    // A delivery is paged by its event's id (time-sortable, one delivery per event and endpoint).
    table: `(SELECT d.event_id AS id, d.*, ev.type AS event_type
               FROM webhook_deliveries d JOIN events ev ON ev.id = d.event_id) AS deliveries`,
    columns: DELIVERY_COLUMNS,
    where,
    params,
    cursorExists: async (cursor) =>
      (
        await db.query('SELECT 1 FROM webhook_deliveries WHERE endpoint_id = $1 AND event_id = $2', [
          endpoint_id,
          cursor,
        ])
      ).rowCount === 1,
    map: (row) => row as unknown as DeliveryRow,
  });
}

export function serializeDelivery(row: DeliveryRow): Record<string, unknown> {
  const seconds = (d: Date | null) => (d === null ? null : Math.floor(d.getTime() / 1000));
  return {
    object: 'webhook_delivery',
    webhook_endpoint: row.endpoint_id,
    event: row.event_id,
    event_type: row.event_type,
    status: row.status,
    attempts: row.attempts,
    next_attempt: row.status === 'pending' ? seconds(row.next_attempt_at) : null,
    last_status_code: row.last_status_code,
    last_error: row.last_error,
    created: seconds(row.created_at),
    delivered: seconds(row.delivered_at),
  };
}

/** At most this many deliveries are queued again by one resend. */
const MAX_RESEND = 10_000;

export type ResendTarget = { event: string } | { since: Date; until: Date };

/**
 * What a resend asks for: one event, or a time range (both ends) of failed deliveries; the
 * API and the CLI read their arguments into this.
 */
export function resendTarget(args: {
  event?: string | undefined;
  since?: Date | undefined;
  until?: Date | undefined;
}): ResendTarget {
  const by_range = args.since !== undefined || args.until !== undefined;
  if ((args.event !== undefined) === by_range) {
    throw invalidRequest(
      'Pass either event, or since and until for the failed deliveries of a time range.',
      'event',
    );
  }
  if (args.event !== undefined) return { event: args.event };
  if (args.since === undefined || args.until === undefined) {
    throw invalidRequest('since and until go together.', args.since === undefined ? 'since' : 'until');
  }
  return { since: args.since, until: args.until };
}

/**
 * Sends events to an endpoint again, now: one event (whether or not it was ever delivered
 * there), or every failed delivery whose event was created in [since, until). A delivery
 * given up on gets one more attempt; its record keeps the earlier ones. Returns how many
 * deliveries are due.
 */
export async function resend(
  db: Queryable,
  scope: Scope,
  endpoint_id: string,
  what: ResendTarget,
): Promise<number> {
  await retrieveEndpoint(db, scope, endpoint_id);
  if ('event' in what) {
    if (!isIdOf('evt', what.event)) throw resourceMissing('event', what.event, 'event');
    const { rowCount } = await db.query(
      `INSERT INTO webhook_deliveries (endpoint_id, event_id, merchant_id, livemode)
       SELECT $1, id, merchant_id, livemode FROM events
        WHERE id = $2 AND merchant_id = $3 AND livemode = $4
          AND created_at > now() - make_interval(days => $5)
       ON CONFLICT (endpoint_id, event_id)
       DO UPDATE SET status = 'pending', next_attempt_at = now()`,
      [endpoint_id, what.event, scope.merchant_id, scope.livemode, EVENT_RETENTION_DAYS],
    );
    if (rowCount !== 1) throw resourceMissing('event', what.event, 'event');
    return 1;
  }
  if (!(what.since < what.until)) throw invalidRequest('since must be before until.', 'since');
  const { rowCount } = await db.query(
    `UPDATE webhook_deliveries d SET status = 'pending', next_attempt_at = now()
       FROM (SELECT d2.endpoint_id, d2.event_id FROM webhook_deliveries d2 JOIN events ev ON ev.id = d2.event_id
              WHERE d2.endpoint_id = $1 AND d2.status = 'failed'
                AND ev.created_at >= $2 AND ev.created_at < $3
              LIMIT $4) chosen
      WHERE d.endpoint_id = chosen.endpoint_id AND d.event_id = chosen.event_id`,
    [endpoint_id, what.since, what.until, MAX_RESEND],
  );
  return rowCount ?? 0;
}

/** The merchant and mode an endpoint belongs to (operators name endpoints by id alone), or null. */
export async function endpointScope(db: Queryable, id: string): Promise<Scope | null> {
  if (!isIdOf('we', id)) return null;
  const { rows } = await db.query(
    'SELECT merchant_id, livemode FROM webhook_endpoints WHERE id = $1 AND deleted_at IS NULL',
    [id],
  );
  return (rows[0] as Scope | undefined) ?? null;
}

const REAP_BATCH = 5_000;

/**
 * Deletes events past their retention (30 days) with their deliveries and attempts, in
 * batches, at most `max_batches`. Events still in the outbox (not dispatched, or not yet
 * published to NATS) are kept whatever their age.
 */
export function reapEvents(db: Queryable, max_batches: number): Promise<number> {
  return deleteInBatches(
    db,
    `WITH old AS (
         SELECT seq, id FROM events
          WHERE created_at < now() - make_interval(days => $1)
            AND dispatched_at IS NOT NULL AND published_at IS NOT NULL
          ORDER BY seq LIMIT $2),
       deliveries AS (DELETE FROM webhook_deliveries WHERE event_id IN (SELECT id FROM old)
                      RETURNING endpoint_id, event_id),
       -- Through the deliveries: webhook_attempts is keyed (endpoint_id, event_id, attempt).
       attempts AS (DELETE FROM webhook_attempts a USING deliveries d
                     WHERE a.endpoint_id = d.endpoint_id AND a.event_id = d.event_id)
       DELETE FROM events WHERE seq IN (SELECT seq FROM old)`,
    [EVENT_RETENTION_DAYS],
    REAP_BATCH,
    max_batches,
  );
}
