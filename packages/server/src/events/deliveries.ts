import type { Queryable } from '../db/pool.ts';
import { assert, invalidRequest, resourceMissing } from '../lib/errors.ts';
import { isIdOf } from '../lib/ids.ts';
import { MAX_LIST_LIMIT } from '../lib/list.ts';
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

/** An endpoint's deliveries, newest event first, optionally of one status; at most `limit`. */
export async function listDeliveries(
  db: Queryable,
  scope: Scope,
  endpoint_id: string,
  opts: { status?: DeliveryRow['status'] | undefined; limit: number; starting_after?: string | undefined },
): Promise<{ has_more: boolean; data: DeliveryRow[] }> {
  assert(opts.limit >= 1 && opts.limit <= MAX_LIST_LIMIT, 'list limit was validated');
  await requireEndpoint(db, scope, endpoint_id);
  const { rows } = await db.query(
    `SELECT d.endpoint_id, d.event_id, ev.type AS event_type, d.status, d.attempts, d.next_attempt_at,
            d.last_status_code, d.last_error, d.created_at, d.delivered_at
       FROM webhook_deliveries d JOIN events ev ON ev.id = d.event_id
      WHERE d.endpoint_id = $1 AND ($2::text IS NULL OR d.status = $2)
        AND ($3::text IS NULL OR d.event_id < $3)
      ORDER BY d.event_id DESC LIMIT $4`,
    [endpoint_id, opts.status ?? null, opts.starting_after ?? null, opts.limit + 1],
  );
  return { has_more: rows.length > opts.limit, data: rows.slice(0, opts.limit) as DeliveryRow[] };
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
  what: { event: string } | { since: Date; until: Date },
): Promise<number> {
  await requireEndpoint(db, scope, endpoint_id);
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

async function requireEndpoint(db: Queryable, scope: Scope, id: string): Promise<void> {
  const { rowCount } = isIdOf('we', id)
    ? await db.query(
        'SELECT 1 FROM webhook_endpoints WHERE id = $1 AND merchant_id = $2 AND livemode = $3 AND deleted_at IS NULL',
        [id, scope.merchant_id, scope.livemode],
      )
    : { rowCount: 0 };
  if (rowCount !== 1) throw resourceMissing('webhook_endpoint', id);
}

const REAP_BATCH = 5_000;

/**
 * Deletes events past their retention (30 days) with their deliveries and attempts, in
 * batches, at most `max_batches`. Events still in the outbox (not dispatched, or not yet
 * published to NATS) are kept whatever their age.
 */
export async function reapEvents(db: Queryable, max_batches: number): Promise<number> {
  let deleted = 0;
  for (let batch = 0; batch < max_batches; batch += 1) {
    const { rowCount } = await db.query(
      `WITH old AS (
         SELECT seq, id FROM events
          WHERE created_at < now() - make_interval(days => $1)
            AND dispatched_at IS NOT NULL AND published_at IS NOT NULL
          ORDER BY seq LIMIT $2),
       attempts AS (DELETE FROM webhook_attempts WHERE event_id IN (SELECT id FROM old)),
       deliveries AS (DELETE FROM webhook_deliveries WHERE event_id IN (SELECT id FROM old))
       DELETE FROM events WHERE seq IN (SELECT seq FROM old)`,
      [EVENT_RETENTION_DAYS, REAP_BATCH],
    );
    deleted += rowCount ?? 0;
    if ((rowCount ?? 0) < REAP_BATCH) break;
  }
  return deleted;
}
