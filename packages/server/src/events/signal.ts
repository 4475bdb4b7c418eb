import pg from 'pg';
import type { Pool } from '../db/pool.ts';
import { backoffMs } from '../lib/waker.ts';
import type { Logger } from '../ops/logger.ts';

/**
 * Tells dispatchers in other processes that events were committed, when roles are split
 * (`api` processes commit, `worker` processes dispatch): a NOTIFY on its own, after the
 * commit, at most one per turn of the event loop however many commits there were. Not a
 * trigger on `events`: a transaction that notifies holds a database-wide lock through its
 * commit, which would make every committing payment wait for the others' WAL flushes. The
 * dispatcher's poll (100 ms) still finds anything a lost notification missed.
 */
const OUTBOX_CHANNEL = 'moneta_outbox';

export class OutboxNotifier {
  private scheduled = false;

  constructor(
    private readonly pool: Pool,
    private readonly log: Logger,
  ) {}

  notify(): void {
    if (this.scheduled) return;
    this.scheduled = true;
    setImmediate(() => {
      this.scheduled = false;
      this.pool
        .query('SELECT pg_notify($1, $2)', [OUTBOX_CHANNEL, ''])
        .catch((err) => this.log.debug({ err }, 'outbox notification not sent; the dispatcher will poll'));
    });
  }
}

const MAX_RECONNECT_WAIT_MS = 5_000;

/** Listens for outbox notifications on a connection of its own, reconnecting with backoff. */
export class OutboxListener {
  private client: pg.Client | null = null;
  private stopped = false;
  private failures = 0;
  /** Notifications received (tests and metrics). */
  received = 0;

  constructor(
    private readonly connection_string: string,
    private readonly log: Logger,
    private readonly onNotify: () => void,
  ) {}

  async start(): Promise<void> {
    await this.connect();
  }

  private async connect(): Promise<void> {
    if (this.stopped) return;
    const client = new pg.Client({
      connectionString: this.connection_string,
      application_name: 'moneta-outbox-listener',
    });
    client.on('notification', () => {
      this.received += 1;
      this.onNotify();
    });
    client.on('error', (err) => {
      this.log.warn({ err }, 'outbox listener lost its connection; reconnecting');
      this.reconnect(client);
    });
    try {
      await client.connect();
      await client.query(`LISTEN ${OUTBOX_CHANNEL}`);
      this.client = client;
      this.failures = 0;
      this.onNotify(); // anything committed while we were not listening
    } catch (err) {
      this.log.warn({ err }, 'outbox listener could not connect; retrying');
      this.reconnect(client);
    }
  }

  private reconnect(client: pg.Client): void {
    if (this.client === client) this.client = null;
    client.end().catch(() => {});
    if (this.stopped) return;
    this.failures += 1;
    const wait_ms = backoffMs(this.failures, 100, MAX_RECONNECT_WAIT_MS);
    setTimeout(() => void this.connect(), wait_ms).unref();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    await this.client?.end().catch(() => {});
    this.client = null;
  }
}
