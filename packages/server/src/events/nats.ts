import {
  AckPolicy,
  connect,
  DiscardPolicy,
  type JetStreamClient,
  type JetStreamManager,
  type NatsConnection,
  nanos,
  RetentionPolicy,
  StorageType,
} from 'nats';
import { deleteInBatches, type Pool, type Queryable, withTransaction } from '../db/pool.ts';
import { assert } from '../lib/errors.ts';
import { backoffMs, Waker } from '../lib/waker.ts';
import type { Logger } from '../ops/logger.ts';
import { serializeEvent } from './store.ts';

/**
 * Events on NATS JetStream, for other services (risk, analytics, reconciliation, a data
 * warehouse) when Moneta is scaled out. The outbox in PostgreSQL stays the source of truth:
 * the publisher takes events from it in commit order, publishes each with its id as
 * `Nats-Msg-Id` (JetStream drops a repeat within the duplicate window), and marks them
 * published only once JetStream has acknowledged them. A crash in between publishes them
 * again; the stream drops the repeats, and consumers skip ids they have handled.
 *
 * One stream per event family: `MONETA_PAYMENTS` holds `moneta.payments.>` (payment
 * intents, charges, refunds), `MONETA_WEBHOOKS` holds `moneta.webhooks.>`, and
 * `MONETA_EVENTS` the rest. A subject is `moneta.<family>.<event type>`.
 */

const FAMILIES = {
  payments: ['payment_intent', 'charge', 'refund'],
  webhooks: ['webhook_endpoint'],
  events: [] as string[],
} as const;

export type Family = keyof typeof FAMILIES;

function familyOf(type: string): Family {
  const object = type.split('.')[0]!;
  for (const [family, objects] of Object.entries(FAMILIES) as [Family, readonly string[]][]) {
    if (objects.includes(object)) return family;
  }
  return 'events';
}

export const streamName = (family: Family) => `MONETA_${family.toUpperCase()}`;
export const subjectOf = (type: string) => `moneta.${familyOf(type)}.${type}`;

/** How long JetStream remembers a message id to drop a repeat (Nats-Msg-Id). */
const DUPLICATE_WINDOW_MS = 10 * 60_000;
/** The outbox keeps events 30 days; so does the stream. */
const MAX_AGE_MS = 30 * 24 * 3600_000;
const PUBLISH_BATCH = 256;
const PUBLISH_TIMEOUT_MS = 5_000;
const MAX_DELIVER = 50;
/** Longest sleep when the outbox is empty and nobody nudges. */
const POLL_MS = 100;
/** The longest wait between tries to reach NATS. */
const MAX_RETRY_WAIT_MS = 10_000;
/** The advisory lock that makes one process at a time the publisher ("MONETA_N" in ASCII). */
const PUBLISHER_LOCK = '5570757323753873230';

export interface NatsOptions {
  url: string;
  replicas: number;
}

export async function connectNats(url: string, name: string): Promise<NatsConnection> {
  return connect({
    servers: url.split(','),
    name,
    // Keep trying for ever: the outbox holds events while NATS is away.
    reconnect: true,
    maxReconnectAttempts: -1,
    reconnectTimeWait: 250,
    // The first connection fails fast; connectNats's callers retry it.
    waitOnFirstConnect: false,
  });
}

/** Creates (or updates) the streams with the settings docs/events.md recommends. */
async function ensureStreams(jsm: JetStreamManager, replicas: number): Promise<void> {
  for (const family of Object.keys(FAMILIES) as Family[]) {
    const config = {
      name: streamName(family),
      subjects: [`moneta.${family}.>`],
      storage: StorageType.File,
      num_replicas: replicas,
      retention: RetentionPolicy.Limits,
      discard: DiscardPolicy.Old,
      max_age: nanos(MAX_AGE_MS),
      duplicate_window: nanos(DUPLICATE_WINDOW_MS),
    };
    try {
      await jsm.streams.info(config.name);
      await jsm.streams.update(config.name, config);
    } catch (err) {
      if (!/stream not found/i.test((err as Error).message)) throw err;
      await jsm.streams.add(config);
    }
  }
}

/** Publishes the outbox to JetStream, in commit order, at least once. */
export class NatsPublisher {
  private nc: NatsConnection | null = null;
  private js: JetStreamClient | null = null;
  private running: Promise<void> | null = null;
  private connected: Promise<void> | null = null;
  private stopped = false;
  private readonly waker = new Waker();
  /** Events published (acknowledged by JetStream); tests read it. */
  published = 0;

  constructor(
    private readonly pool: Pool,
    private readonly log: Logger,
    private readonly opts: NatsOptions,
  ) {}

  /** Starts publishing; does not wait for NATS, which may be away (the events wait in the outbox). */
  start(): void {
    assert(this.running === null, 'the publisher starts once');
    const connected = this.connect();
    this.connected = connected;
    this.running = connected.then(() => this.loop());
  }

  /** Resolves once connected, with the streams in place (or stopped meanwhile). */
  ready(): Promise<void> {
    assert(this.connected !== null, 'the publisher was started');
    return this.connected;
  }

  /** Connects and sets up the streams, retrying with backoff until it works or the publisher stops. */
  private async connect(): Promise<void> {
    for (let failures = 0; !this.stopped; failures += 1) {
      try {
        this.nc = await connectNats(this.opts.url, 'moneta-publisher');
        this.js = this.nc.jetstream();
        await ensureStreams(await this.nc.jetstreamManager(), this.opts.replicas);
        return;
      } catch (err) {
        this.log.warn({ err: (err as Error).message }, 'cannot reach NATS yet; events wait in the outbox');
        await this.nc?.close().catch(() => {});
        this.nc = null;
        this.js = null;
        await this.waker.sleep(backoffMs(failures, 250, MAX_RETRY_WAIT_MS));
      }
    }
  }

  nudge(): void {
    this.waker.nudge();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.nudge();
    await this.running;
    await this.nc?.drain().catch(() => {});
  }

  private async loop(): Promise<void> {
    let failures = 0;
    while (!this.stopped && this.js) {
      let full = false;
      try {
        full = (await this.publishBatch()) >= PUBLISH_BATCH;
        failures = 0;
      } catch (err) {
        // NATS away (restarting, partitioned): the events wait in the outbox; back off.
        failures += 1;
        this.log.warn({ err: (err as Error).message }, 'publishing events to NATS failed; retrying');
        await this.waker.sleep(backoffMs(failures, 100, MAX_RETRY_WAIT_MS));
        continue;
      }
      if (!full) await this.waker.sleep(POLL_MS);
    }
  }

  /**
   * One batch in one transaction: read, published, and marked once every publish is
   * acknowledged. Returns how many. One publisher at a time holds the transaction's advisory
   * lock (the others skip the round), so the stream gets the events in order; the events' rows
   * themselves are not locked, since the webhook fan-out locks them too and must not wait for
   * NATS to acknowledge.
   */
  private async publishBatch(): Promise<number> {
    const js = this.js;
    assert(js, 'the publisher is started');
    return withTransaction(this.pool, async (tx) => {
      const lock = await tx.query('SELECT pg_try_advisory_xact_lock($1) AS mine', [PUBLISHER_LOCK]);
      if (!lock.rows[0].mine) return 0;
      const { rows } = await tx.query(
        `SELECT seq, id, livemode, type, data, created_at FROM events
          WHERE published_at IS NULL ORDER BY seq LIMIT $1`,
        [PUBLISH_BATCH],
      );
      if (rows.length === 0) return 0;
      // Sent together on one connection (JetStream keeps their order per subject), acknowledged together.
      await Promise.all(
        rows.map((row) => {
          const body = JSON.stringify(serializeEvent(row as Parameters<typeof serializeEvent>[0], 0));
          return js.publish(subjectOf(row.type as string), body, {
            msgID: row.id as string, // sent as Nats-Msg-Id: the stream drops a repeat
            timeout: PUBLISH_TIMEOUT_MS,
          });
        }),
      );
      await tx.commit([
        {
          name: 'moneta_events_published',
          text: 'UPDATE events SET published_at = now() WHERE seq = ANY($1::bigint[])',
          values: [rows.map((r) => r.seq)],
        },
      ]);
      this.published += rows.length;
      return rows.length;
    });
  }
}

/** What a consumer has handled: kept in PostgreSQL, so a redelivered event is skipped across restarts. */
export interface HandledStore {
  has(event_id: string): Promise<boolean>;
  add(event_id: string): Promise<void>;
}

export function pgHandledStore(pool: Pool, consumer: string): HandledStore {
  return {
    async has(event_id) {
      const { rowCount } = await pool.query(
        'SELECT 1 FROM nats_handled_events WHERE consumer = $1 AND event_id = $2',
        [consumer, event_id],
      );
      return (rowCount ?? 0) > 0;
    },
    async add(event_id) {
      await pool.query(
        'INSERT INTO nats_handled_events (consumer, event_id) VALUES ($1, $2) ON CONFLICT DO NOTHING',
        [consumer, event_id],
      );
    },
  };
}

/**
 * Marks older than the streams' max_age (and a day, for clocks) are kept for nothing: their
 * message is gone from the stream, so it can never come again.
 */
const HANDLED_RETENTION_DAYS = MAX_AGE_MS / 86_400_000 + 1;
const HANDLED_REAP_BATCH = 5_000;

/** Deletes handled marks past HANDLED_RETENTION_DAYS, at most `max_batches` batches; returns how many. */
export function reapHandledEvents(db: Queryable, max_batches: number): Promise<number> {
  return deleteInBatches(
    db,
    `DELETE FROM nats_handled_events WHERE ctid IN (
       SELECT ctid FROM nats_handled_events
        WHERE handled_at < now() - make_interval(days => $1) LIMIT $2)`,
    [HANDLED_RETENTION_DAYS],
    HANDLED_REAP_BATCH,
    max_batches,
  );
}

export interface ConsumeOptions {
  family: Family;
  /** The durable consumer's name: JetStream remembers its position across restarts. */
  durable: string;
  /** One event type to receive, default the whole family. */
  type?: string;
  handled: HandledStore;
  handle: (event: { id: string; type: string; data: { object: Record<string, unknown> } }) => Promise<void>;
  /** Wait before a failed event is offered again. */
  retry_ms?: number;
  /** Messages fetched ahead (bounded). */
  max_messages?: number;
  /** Deliveries of one message at most (default 50). */
  max_deliver?: number;
}

/**
 * Consumes a family's events for another service: each is acknowledged only after `handle`
 * succeeded and the id was recorded as handled; one already handled (a redelivery, a repeat
 * published after a crash) is acknowledged without calling `handle`; a failure is offered
 * again after `retry_ms`. Returns a function that stops consuming.
 */
export async function consumeEvents(nc: NatsConnection, opts: ConsumeOptions): Promise<() => Promise<void>> {
  const jsm = await nc.jetstreamManager();
  const stream = streamName(opts.family);
  await jsm.consumers.add(stream, {
    durable_name: opts.durable,
    ack_policy: AckPolicy.Explicit,
    ack_wait: nanos(30_000),
    // A message whose handler keeps failing is offered at most this often, then left
    // undelivered (JetStream emits a MAX_DELIVERIES advisory for an operator to look at).
    max_deliver: opts.max_deliver ?? MAX_DELIVER,
    filter_subject: opts.type ? subjectOf(opts.type) : `moneta.${opts.family}.>`,
  });
  const consumer = await nc.jetstream().consumers.get(stream, opts.durable);
  const messages = await consumer.consume({ max_messages: opts.max_messages ?? 64 });
  const done = (async () => {
    for await (const m of messages) {
      const event = m.json<{ id: string; type: string; data: { object: Record<string, unknown> } }>();
      try {
        if (!(await opts.handled.has(event.id))) {
          await opts.handle(event);
          await opts.handled.add(event.id);
        }
        m.ack();
      } catch {
        m.nak(opts.retry_ms ?? 1_000);
      }
    }
  })();
  return async () => {
    await messages.close();
    await done;
  };
}
