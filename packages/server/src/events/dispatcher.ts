import {
  type BulkheadPolicy,
  bulkhead,
  type CircuitBreakerPolicy,
  CircuitState,
  ConsecutiveBreaker,
  circuitBreaker,
  handleAll,
  isBrokenCircuitError,
  isBulkheadRejectedError,
} from 'cockatiel';
import { Agent, request } from 'undici';
import { type Pool, withTransaction } from '../db/pool.ts';
import { assert } from '../lib/errors.ts';
import { Waker } from '../lib/waker.ts';
import type { Logger } from '../ops/logger.ts';
import type { Metrics } from '../ops/metrics.ts';
import { type EndpointRow, MAX_ENDPOINTS, serializeEndpoint } from './endpoints.ts';
import { checkEndpointUrl, guardedLookup } from './guard.ts';
import { eventInsert } from './outbox.ts';
import { signatureHeader } from './signature.ts';
import { serializeEvent } from './store.ts';

/**
 * Takes events out of the outbox and delivers them to webhook endpoints, at least once.
 *
 * Two statements, each safe for several dispatchers (processes) at once (row locks taken
 * with SKIP LOCKED):
 * - fan-out: a batch of undispatched events, in commit order, becomes one delivery row per
 *   endpoint that wants it, leased to this dispatcher (due again only past the attempt's
 *   longest possible duration), the events are marked dispatched, and the deliveries come
 *   back to be posted at once: the usual path reads no queue at all;
 * - claim, once per poll interval: deliveries due again (a retry, or a lease that ran out
 *   because its dispatcher died mid-attempt) are leased the same way. A receiver may thus
 *   see an event twice, always with the same event id.
 * Each attempt is recorded, and the delivery done, rescheduled or given up.
 *
 * Endpoints are isolated: each has its own bulkhead (at most `per_endpoint` attempts in
 * flight, a few more claimed and waiting their turn) and circuit breaker, and an endpoint
 * that is full or whose circuit is open is left out of the next claim, so a slow or dead
 * endpoint never holds up the others. Claims are made in bulk, once half the room is free:
 * one claim per delivery was the dispatcher's bottleneck.
 */

/** Waits after failed attempts 1…7; the 8th failure ends the delivery (Stripe's 3-day span). */
export const RETRY_DELAYS_S = [60, 300, 1800, 7200, 18_000, 36_000, 86_400] as const;
export const MAX_ATTEMPTS = RETRY_DELAYS_S.length + 1;
/** An endpoint whose every delivery has failed for this long is disabled. */
const DISABLE_AFTER_S = 3 * 24 * 3600;
/** While a circuit is open, its endpoint's deliveries wait this long without an attempt. */
const POSTPONE_S = 30;
const EXCERPT_CHARS = 500;
/** Deliveries an endpoint may have waiting, as a multiple of those in flight. */
const QUEUE_FACTOR = 4;
/** Events fanned out in one statement, at most (fewer when there is less room; see runOnce). */
const FANOUT_BATCH = 100;
/** Deliveries held at once (in flight or claimed and waiting), over all endpoints. */
const MAX_HELD = 256;
/** Longest sleep when there is nothing to do and nobody nudges. */
const POLL_MS = 100;
/** Consecutive failures that open an endpoint's circuit, and how long it stays open (scaled). */
const BREAKER_FAILURES = 5;
const BREAKER_HALF_OPEN_MS = 30_000;

export interface DispatcherOptions {
  /** A 2xx within this time is a success (Stripe: 15 s). */
  timeout_ms: number;
  allow_private: boolean;
  /** Multiplies every wait of the retry schedule (tests shrink three days to seconds). */
  retry_scale: number;
  /** Attempts in flight per endpoint (`MONETA_WEBHOOK_CONCURRENCY`); more wait in its queue. */
  per_endpoint: number;
  /** No NATS publisher: events leaving the outbox need no NATS mark (it is set with the dispatch). */
  without_nats: boolean;
}

interface Claimed {
  endpoint_id: string;
  event_id: string;
  attempts: number;
  url: string;
  secrets: string[];
  type: string;
  data: { object: Record<string, unknown> };
  livemode: boolean;
  created_at: Date;
  pending_webhooks: number;
}

interface Outcome {
  ok: boolean;
  status_code: number | null;
  latency_ms: number;
  excerpt: string | null;
  error: string | null;
}

class DeliveryFailed extends Error {
  constructor(readonly outcome: Outcome) {
    super(outcome.error ?? `HTTP ${outcome.status_code}`);
  }
}

interface EndpointGate {
  bulkhead: BulkheadPolicy;
  breaker: CircuitBreakerPolicy;
  /** Deliveries of this endpoint claimed and not yet recorded (in flight or waiting). */
  held: number;
  /** Until when an open circuit holds the endpoint's deliveries back (then one may probe it). */
  closed_until_ms: number;
}

const MAX_GATES = 10_000;

export class WebhookDispatcher {
  private readonly agent: Agent;
  private readonly gates = new Map<string, EndpointGate>();
  /** Set by `nudge` (new events); a fan-out is also due every poll interval regardless. */
  private outbox_dirty = true;
  private last_fan_out_ms = 0;
  private last_claim_ms = 0;
  private readonly attempts = new Set<Promise<void>>();
  /** Deliveries held: in flight, or waiting in an endpoint's queue. */
  private held(): number {
    return this.attempts.size;
  }
  private running: Promise<void> | null = null;
  private stopped = false;
  private readonly waker = new Waker();
  private last_disable_check_ms = 0;
  private last_lag_ms = 0;

  constructor(
    private readonly pool: Pool,
    private readonly log: Logger,
    private readonly metrics: Metrics,
    private readonly opts: DispatcherOptions,
  ) {
    assert(opts.retry_scale > 0 && opts.retry_scale <= 1, 'retry scale within (0, 1]');
    this.agent = new Agent({
      connect: { lookup: guardedLookup(opts.allow_private), timeout: opts.timeout_ms },
      keepAliveTimeout: 10_000,
      // Redirects are never followed (undici's request does not): a 3xx is a failed attempt.
    });
  }

  start(): void {
    assert(this.running === null, 'the dispatcher starts once');
    this.running = this.loop();
  }

  /** Something was committed to the outbox (or is due again): look now rather than at the next poll. */
  nudge(): void {
    this.outbox_dirty = true;
    this.waker.nudge();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.nudge();
    await this.running;
    // Attempts in flight finish (each is bounded by the timeout) so their outcome is recorded.
    await Promise.allSettled([...this.attempts]);
    await this.agent.close();
  }

  /** One round of work: fan out, claim what is due again, start attempts. */
  private async runOnce(): Promise<{ dispatched: number; started: number; more: boolean }> {
    let dispatched = 0;
    let started = 0;
    let more = false;
    // Backpressure: while half the room is taken, events wait in the outbox (its lag shows it).
    if (this.held() < MAX_HELD / 2 && (this.outbox_dirty || Date.now() - this.last_fan_out_ms >= POLL_MS)) {
      this.outbox_dirty = false;
      this.last_fan_out_ms = Date.now();
      // Each event may go to every endpoint of its merchant: sized so that even then the
      // deliveries fit the room, never more than MAX_HELD held.
      const batch = Math.max(1, Math.min(FANOUT_BATCH, Math.floor((MAX_HELD - this.held()) / MAX_ENDPOINTS)));
      const fanned = await this.fanOut(batch);
      dispatched = fanned.events;
      started += this.startAll(fanned.deliveries);
      // A full batch: more may be behind it; the loop goes on without sleeping.
      if (dispatched >= batch) {
        this.outbox_dirty = true;
        more = true;
      }
    }
    if (Date.now() - this.last_claim_ms >= POLL_MS) {
      this.last_claim_ms = Date.now();
      started += await this.claimAndStart();
    }
    if (Date.now() - this.last_disable_check_ms > 60_000 * this.opts.retry_scale) {
      this.last_disable_check_ms = Date.now();
      await this.disableFailingEndpoints();
    }
    return { dispatched, started, more };
  }

  private async loop(): Promise<void> {
    while (!this.stopped) {
      let busy = false;
      try {
        // Otherwise it sleeps until nudged (new events, a finished attempt) or the poll interval:
        // never spinning, since with no room the round awaits nothing.
        const { more, started } = await this.runOnce();
        busy = more || started > 0;
        if (Date.now() - this.last_lag_ms >= 1000) {
          this.last_lag_ms = Date.now();
          await this.measureLag();
        }
      } catch (err) {
        this.log.warn({ err }, 'webhook dispatch failed; retrying shortly');
      }
      if (!busy) await this.waker.sleep(POLL_MS);
    }
  }

  /**
   * Undispatched events (oldest first) become deliveries leased to this dispatcher; returns
   * how many events left the outbox and the deliveries to post.
   */
  private async fanOut(batch: number): Promise<{ events: number; deliveries: Claimed[] }> {
    const { rows } = await this.pool.query({
      name: 'moneta_webhooks_fan_out',
      text: `WITH batch AS (
               SELECT seq, id, merchant_id, livemode, type, data, created_at FROM events
                WHERE dispatched_at IS NULL ORDER BY seq LIMIT $1 FOR UPDATE SKIP LOCKED),
             fan AS (
               INSERT INTO webhook_deliveries (endpoint_id, event_id, merchant_id, livemode, next_attempt_at)
               SELECT e.id, b.id, b.merchant_id, b.livemode, now() + make_interval(secs => $2)
                 FROM batch b JOIN webhook_endpoints e
                   ON e.merchant_id = b.merchant_id AND e.livemode = b.livemode
                  AND e.status = 'enabled' AND e.deleted_at IS NULL
                  AND (b.type = ANY (e.enabled_events) OR '*' = ANY (e.enabled_events))
                  -- Only events that happened since the endpoint was added.
                  AND e.created_at <= b.created_at
               ON CONFLICT DO NOTHING
               RETURNING endpoint_id, event_id),
             per_event AS (SELECT event_id, count(*)::int AS n FROM fan GROUP BY event_id),
             done AS (
               UPDATE events SET dispatched_at = now(),
                                 published_at = CASE WHEN $3 THEN now() ELSE events.published_at END
                 FROM batch WHERE events.seq = batch.seq)
             SELECT (SELECT count(*)::int FROM batch) AS events,
                    (SELECT coalesce(json_agg(json_build_object(
                       'endpoint_id', f.endpoint_id, 'event_id', f.event_id, 'url', e.url, 'secret', e.secret,
                       'previous_secret', CASE WHEN e.previous_secret_expires_at > now() THEN e.previous_secret END,
                       'type', b.type, 'data', b.data, 'livemode', b.livemode, 'created_at', b.created_at,
                       'pending_webhooks', p.n)), '[]')
                       FROM fan f JOIN webhook_endpoints e ON e.id = f.endpoint_id JOIN batch b ON b.id = f.event_id
                       JOIN per_event p ON p.event_id = f.event_id)
                      AS deliveries`,
      values: [batch, this.leaseSeconds(), this.opts.without_nats],
    });
    // json_agg leaves the time as text.
    const deliveries = (rows[0].deliveries as ClaimedRow[]).map((d) =>
      toClaimed({ ...d, attempts: 0, created_at: new Date(d.created_at) }),
    );
    return { events: rows[0].events as number, deliveries };
  }

  /**
   * How long a leased delivery is ours: its turn behind the endpoint's others, and its own
   * timeout. A dead endpoint's circuit opens after a few timeouts and fails the rest of its
   * queue at once, so four timeouts and a minute (scaled like the retry schedule) cover the wait.
   */
  private leaseSeconds(): number {
    return Math.ceil((4 * this.opts.timeout_ms) / 1000 + 60 * this.opts.retry_scale);
  }

  private startAll(deliveries: Claimed[]): number {
    for (const claimed of deliveries) {
      const attempt = this.attempt(claimed)
        // The attempt could not be recorded (the database went away): the lease runs out and
        // the delivery is claimed and posted again. Never a crash of the process.
        .catch((err) =>
          this.log.warn({ err, event: claimed.event_id }, 'webhook attempt not recorded; it will be retried'),
        )
        .finally(() => {
          this.attempts.delete(attempt);
        });
      this.attempts.add(attempt);
    }
    return deliveries.length;
  }

  private async claimAndStart(): Promise<number> {
    // Claimed in bulk once half the room is free, not one delivery per finished attempt.
    if (this.held() > MAX_HELD / 2) return 0;
    const depth = QUEUE_FACTOR * this.opts.per_endpoint;
    // Endpoints that cannot take more now (full, or circuit open) are left out of the claim.
    // (The breaker moves from open to half-open only when called, so the time is kept here.)
    const now_ms = Date.now();
    const held_back = [...this.gates]
      .filter(
        ([, g]) =>
          g.held >= depth / 2 || (g.breaker.state === CircuitState.Open && now_ms < g.closed_until_ms),
      )
      .map(([id]) => id);
    const free = MAX_HELD - this.held();
    const { rows } = await this.pool.query({
      name: 'moneta_webhooks_claim',
      // The candidates are read without locks (locking hundreds of rows to use a few wrote a
      // WAL record each and made the claim the dispatcher's slowest statement); only the
      // chosen ones are locked, skipping any another dispatcher holds, and re-checked.
      text: `WITH candidates AS (
               SELECT endpoint_id, event_id, next_attempt_at FROM webhook_deliveries
                WHERE status = 'pending' AND next_attempt_at <= now() AND endpoint_id <> ALL ($1::text[])
                  -- A disabled endpoint's deliveries wait (for its re-enabling) without taking slots.
                  AND EXISTS (SELECT 1 FROM webhook_endpoints e WHERE e.id = endpoint_id AND e.status = 'enabled')
                ORDER BY next_attempt_at LIMIT $2),
             chosen AS (
               SELECT endpoint_id, event_id FROM (
                 SELECT endpoint_id, event_id,
                        row_number() OVER (PARTITION BY endpoint_id ORDER BY next_attempt_at) AS n
                   FROM candidates) c
                WHERE n <= $3 LIMIT $4),
             due AS (
               SELECT w.endpoint_id, w.event_id FROM webhook_deliveries w
                 JOIN chosen USING (endpoint_id, event_id)
                WHERE w.status = 'pending' AND w.next_attempt_at <= now()
                FOR UPDATE OF w SKIP LOCKED)
             UPDATE webhook_deliveries d SET next_attempt_at = now() + make_interval(secs => $5)
               FROM due, webhook_endpoints e, events ev
              WHERE d.endpoint_id = due.endpoint_id AND d.event_id = due.event_id
                AND e.id = d.endpoint_id AND e.status = 'enabled' AND ev.id = d.event_id
             RETURNING d.endpoint_id, d.event_id, d.attempts, e.url, e.secret,
                       CASE WHEN e.previous_secret_expires_at > now() THEN e.previous_secret END AS previous_secret,
                       ev.type, ev.data, ev.livemode, ev.created_at,
                       (SELECT count(*)::int FROM webhook_deliveries x
                         WHERE x.event_id = d.event_id AND x.status = 'pending') AS pending_webhooks`,
      values: [held_back, free * 2, depth / 2, free, this.leaseSeconds()],
    });
    return this.startAll(rows.map((row) => toClaimed(row as ClaimedRow)));
  }

  private gate(endpoint_id: string): EndpointGate {
    let gate = this.gates.get(endpoint_id);
    if (gate === undefined) {
      if (this.gates.size >= MAX_GATES) {
        for (const [id, g] of this.gates) if (g.held === 0) this.gates.delete(id);
      }
      // Scaled with the retry schedule, so tests that shrink days to seconds shrink this too.
      const half_open_ms = Math.max(10, BREAKER_HALF_OPEN_MS * this.opts.retry_scale);
      const breaker = circuitBreaker(handleAll, {
        halfOpenAfter: half_open_ms,
        breaker: new ConsecutiveBreaker(BREAKER_FAILURES),
      });
      const created: EndpointGate = {
        // A fan-out may hand an endpoint a whole batch; they wait here for their turn.
        bulkhead: bulkhead(this.opts.per_endpoint, MAX_HELD),
        breaker,
        held: 0,
        closed_until_ms: 0,
      };
      breaker.onBreak(() => {
        created.closed_until_ms = Date.now() + half_open_ms;
      });
      gate = created;
      this.gates.set(endpoint_id, gate);
    }
    return gate;
  }

  private async attempt(c: Claimed): Promise<void> {
    const gate = this.gate(c.endpoint_id);
    gate.held += 1;
    try {
      const outcome = await gate.bulkhead.execute(() =>
        gate.breaker.execute(async () => {
          const o = await this.post(c);
          if (!o.ok) throw new DeliveryFailed(o);
          return o;
        }),
      );
      await this.record(c, outcome);
    } catch (err) {
      if (isBrokenCircuitError(err)) {
        await this.postpone(c, POSTPONE_S * this.opts.retry_scale);
      } else if (isBulkheadRejectedError(err)) {
        // More fanned out to this endpoint than it may hold: due again at once, for a later claim.
        await this.postpone(c, 0);
      } else {
        const outcome =
          err instanceof DeliveryFailed
            ? err.outcome
            : {
                ok: false,
                status_code: null,
                latency_ms: 0,
                excerpt: null,
                error: withoutNul(String(err)).slice(0, EXCERPT_CHARS),
              };
        await this.record(c, outcome);
      }
    } finally {
      gate.held -= 1;
      this.waker.nudge(); // room freed: the loop may claim or fan out more
    }
  }

  /** One POST of the event; never throws (a failure is an outcome). */
  private async post(c: Claimed): Promise<Outcome> {
    const body = JSON.stringify(serializeEvent({ ...c, id: c.event_id }, c.pending_webhooks));
    const started = performance.now();
    const latency = () => Math.round(performance.now() - started);
    try {
      // Checked again at each attempt: the operator may have turned private addresses off.
      checkEndpointUrl(c.url, this.opts.allow_private);
      const res = await request(c.url, {
        method: 'POST',
        dispatcher: this.agent,
        headers: {
          'content-type': 'application/json; charset=utf-8',
          'user-agent': 'Moneta/1.0 (+webhooks)',
          'stripe-signature': signatureHeader(body, c.secrets, Math.floor(Date.now() / 1000)),
        },
        body,
        headersTimeout: this.opts.timeout_ms,
        bodyTimeout: this.opts.timeout_ms,
        signal: AbortSignal.timeout(this.opts.timeout_ms),
      });
      const excerpt = withoutNul(await readExcerpt(res.body));
      const ok = res.statusCode >= 200 && res.statusCode < 300;
      return { ok, status_code: res.statusCode, latency_ms: latency(), excerpt, error: null };
    } catch (err) {
      const message =
        (err as Error).name === 'TimeoutError'
          ? `no answer within ${this.opts.timeout_ms} ms`
          : (err as Error).message;
      return {
        ok: false,
        status_code: null,
        latency_ms: latency(),
        excerpt: null,
        error: withoutNul(message).slice(0, EXCERPT_CHARS),
      };
    }
  }

  /** Records the attempt and what follows: done, the next try on the schedule, or given up. */
  private async record(c: Claimed, o: Outcome): Promise<void> {
    const attempt = c.attempts + 1;
    const status = o.ok ? 'succeeded' : attempt >= MAX_ATTEMPTS ? 'failed' : 'pending';
    const wait_s = status === 'pending' ? retryDelay(attempt, this.opts.retry_scale) : 0;
    this.metrics.webhook_attempts.inc({ outcome: o.ok ? 'succeeded' : 'failed' });
    await this.pool.query({
      name: 'moneta_webhooks_record',
      text: `WITH attempt AS (
               INSERT INTO webhook_attempts (endpoint_id, event_id, attempt, status_code, latency_ms, response_excerpt, error)
               VALUES ($1, $2, $3, $4, $5, $6, $7)
               ON CONFLICT DO NOTHING),
             endpoint AS (
               UPDATE webhook_endpoints
                  SET failing_since = CASE WHEN $8 = 'succeeded' THEN NULL ELSE coalesce(failing_since, now()) END
                WHERE id = $1 AND (failing_since IS NULL) = ($8 <> 'succeeded'))
             UPDATE webhook_deliveries
                SET attempts = $3, status = $8, last_status_code = $4, last_error = $7,
                    next_attempt_at = now() + make_interval(secs => $9),
                    delivered_at = CASE WHEN $8 = 'succeeded' THEN now() END
              -- Only over the state this attempt was claimed in: a second sender (after a lease
              -- ran out, or a resend) never overwrites the first one's record.
              WHERE endpoint_id = $1 AND event_id = $2 AND attempts = $3 - 1 AND status = 'pending'`,
      values: [
        c.endpoint_id,
        c.event_id,
        attempt,
        o.status_code,
        o.latency_ms,
        o.excerpt,
        o.error,
        status,
        wait_s,
      ],
    });
  }

  /** Not attempted now (circuit open, or no room): due again after `wait_s`, no attempt counted. */
  private async postpone(c: Claimed, wait_s: number): Promise<void> {
    this.metrics.webhook_attempts.inc({ outcome: 'postponed' });
    await this.pool.query(
      `UPDATE webhook_deliveries SET next_attempt_at = now() + make_interval(secs => $3)
        WHERE endpoint_id = $1 AND event_id = $2 AND status = 'pending'`,
      [c.endpoint_id, c.event_id, wait_s],
    );
  }

  /** Endpoints failing for three days are disabled, with a `webhook_endpoint.disabled` event. */
  private async disableFailingEndpoints(): Promise<number> {
    return withTransaction(this.pool, async (tx) => {
      const { rows } = await tx.query(
        `WITH disabled AS (
           UPDATE webhook_endpoints SET status = 'disabled'
            WHERE status = 'enabled' AND deleted_at IS NULL
              AND failing_since < now() - make_interval(secs => $1)
            RETURNING *),
         parked AS (
           UPDATE webhook_deliveries SET next_attempt_at = 'infinity'::timestamptz
            WHERE endpoint_id IN (SELECT id FROM disabled) AND status = 'pending')
         -- Not the secrets: nothing here signs, and these rows reach a log line and an event.
         SELECT id, merchant_id, livemode, url, enabled_events, description, metadata, status,
                failing_since, created_at FROM disabled`,
        [DISABLE_AFTER_S * this.opts.retry_scale],
      );
      for (const row of rows) {
        this.log.warn(
          { endpoint: row.id, merchant: row.merchant_id },
          'webhook endpoint disabled after failing for three days',
        );
        this.metrics.webhook_endpoints_disabled.inc();
      }
      await tx.commit(
        rows.map((row) =>
          eventInsert(row, 'webhook_endpoint.disabled', serializeEndpoint(row as EndpointRow)),
        ),
      );
      return rows.length;
    });
  }

  private async measureLag(): Promise<void> {
    const { rows } = await this.pool.query(
      // The lowest seq waiting is the oldest: read through events_undispatched, not the backlog.
      `SELECT coalesce((SELECT extract(epoch FROM now() - created_at) FROM events
                         WHERE dispatched_at IS NULL ORDER BY seq LIMIT 1), 0)::float8 AS lag_s`,
    );
    this.metrics.outbox_lag.set(rows[0].lag_s as number);
  }
}

/** The wait after failed attempt `attempt` (1-based), with ±10 % jitter so retries spread out. */
function retryDelay(attempt: number, scale: number): number {
  assert(attempt >= 1 && attempt < MAX_ATTEMPTS, 'a delay follows attempts 1…7');
  const base = RETRY_DELAYS_S[attempt - 1]! * scale;
  return base * (0.9 + 0.2 * Math.random());
}

/** A delivery as the fan-out and the claim read it: the endpoint's secrets still apart. */
type ClaimedRow = Omit<Claimed, 'secrets'> & { secret: string; previous_secret: string | null };

/** The secrets that sign: the current one, and during a roll the previous one (still in force). */
function toClaimed({ secret, previous_secret, ...rest }: ClaimedRow): Claimed {
  return { ...rest, secrets: previous_secret ? [secret, previous_secret] : [secret] };
}

/** PostgreSQL text cannot hold NUL; a receiver's answer may. */
function withoutNul(text: string): string;
function withoutNul(text: string | null): string | null;
function withoutNul(text: string | null): string | null {
  return text === null ? null : text.replaceAll('\u0000', '');
}

async function readExcerpt(body: AsyncIterable<Buffer> & { destroy?: () => void }): Promise<string | null> {
  let text = '';
  for await (const chunk of body) {
    text += chunk.toString('utf8');
    if (text.length >= EXCERPT_CHARS) break;
  }
  body.destroy?.();
  return text.length > 0 ? text.slice(0, EXCERPT_CHARS) : null;
}
