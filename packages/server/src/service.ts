import type { FastifyInstance } from 'fastify';
import type { Runner } from 'graphile-worker';
import { buildApi } from './api/app.ts';
import type { ReadinessReport } from './api/types.ts';
import type { Config } from './config/index.ts';
import { Connectors, SimulatorConnector } from './connectors/index.ts';
import { DEFAULT_SIMULATORS, type RunningSimulators, startSimulators } from './connectors/simulators.ts';
import { createCustomerOperation, updateCustomerOperation } from './customers/index.ts';
import { EmbeddedPostgres } from './db/embedded.ts';
import { migrate, migrationsApplied } from './db/migrate.ts';
import { createPool, type Pool } from './db/pool.ts';
import {
  EVENTS_INSERT,
  endpointOperations,
  NatsPublisher,
  OutboxListener,
  OutboxNotifier,
  WebhookDispatcher,
} from './events/index.ts';
import { IdempotencyEngine } from './idempotency/index.ts';
import { startJobs } from './jobs/index.ts';
import { DEFAULT_LEDGER_OPTIONS, Ledger, makeLedgerOperations } from './ledger/index.ts';
import { Authenticator, type CreatedMerchant, countMerchants, createMerchant } from './merchants/index.ts';
import { createLogger, type Logger } from './ops/logger.ts';
import { Metrics } from './ops/metrics.ts';
import { createRateLimiter } from './ops/rate-limit.ts';
import { makePaymentMethodOperations } from './payment-methods/index.ts';
import { Janitor, makePaymentOperations } from './payments/index.ts';
import { openKeyProvider, Vault } from './vault/index.ts';

export interface Database {
  pool: Pool;
  url: string;
  embedded: EmbeddedPostgres | null;
  close(): Promise<void>;
}

/** Connects to DATABASE_URL, or starts (or attaches to) the embedded PostgreSQL. */
export async function openDatabase(config: Config, log: Logger, application_name: string): Promise<Database> {
  const embedded = config.database_url ? null : new EmbeddedPostgres(config.data_dir, log);
  const url = config.database_url ?? (await embedded!.start());
  const pool = createPool({ connection_string: url, max_connections: config.db_pool_max, application_name });
  return {
    pool,
    url,
    embedded,
    async close() {
      await pool.end().catch(() => {});
      await embedded?.stop();
    },
  };
}

export interface RunningMoneta {
  config: Config;
  log: Logger;
  db: Database;
  app: FastifyInstance;
  /** Base URL the HTTP server listens on. */
  url: string;
  engine: IdempotencyEngine;
  ledger: Ledger;
  vault: Vault;
  connectors: Connectors;
  /** Settles acquirer calls of unknown outcome (also run by the `payments_janitor` job). */
  janitor: Janitor | null;
  /** Delivers the outbox's events to webhook endpoints (null in the `api` role). */
  dispatcher: WebhookDispatcher | null;
  /** In the `worker` role: wakes the dispatcher when an `api` process commits events. */
  outbox_listener: OutboxListener | null;
  /** With NATS_URL (roles all and worker): publishes the outbox to JetStream. */
  nats_publisher: NatsPublisher | null;
  /** The acquirers this process reaches, by name and URL. */
  acquirers: { name: string; url: string }[];
  metrics: Metrics;
  jobs: Runner | null;
  /** Set when this start created the demo merchant (first start on an empty database). */
  demo: CreatedMerchant | null;
  stop(): Promise<void>;
}

export interface StartOptions {
  log?: Logger;
  /** Use this pool instead of opening one (tests share a database this way). */
  database?: Database;
}

/**
 * Composes Moneta: database, migrations, domain services, HTTP API and background jobs,
 * according to the role. `stop()` shuts down in reverse: stop accepting, finish in-flight
 * requests (bounded by the shutdown timeout), stop jobs, close the pool, stop PostgreSQL.
 */
export async function startMoneta(config: Config, opts: StartOptions = {}): Promise<RunningMoneta> {
  const log = opts.log ?? createLogger(config.log_level);
  const db = opts.database ?? (await openDatabase(config, log, `moneta-${config.role}`));
  let closing = false;
  let app: FastifyInstance | null = null;
  let jobs: Runner | null = null;
  let copy_pool: Pool | null = null;
  let vault: Vault | null = null;
  let simulators: RunningSimulators | null = null;
  let connectors: Connectors | null = null;
  let dispatcher: WebhookDispatcher | null = null;
  let listener: OutboxListener | null = null;
  let publisher: NatsPublisher | null = null;
  try {
    await migrate(db.pool, (m) => log.info({ migration: `${m.version}_${m.name}` }, 'migration applied'));
    const demo = config.demo_merchant && config.role !== 'worker' ? await ensureDemoMerchant(db.pool) : null;

    const metrics = new Metrics(db.pool, config.db_pool_max);
    // The outbox dispatcher runs where background work runs (roles all and worker); a commit
    // that adds events nudges it, so delivery starts in milliseconds, not at the next poll.
    dispatcher =
      config.role === 'api'
        ? null
        : new WebhookDispatcher(db.pool, log, metrics, {
            timeout_ms: config.webhook_timeout_ms,
            allow_private: config.webhook_allow_private,
            retry_scale: config.webhook_retry_scale,
            without_nats: !config.nats_url,
            per_endpoint: config.webhook_concurrency,
          });
    // With NATS_URL, the same processes also publish the outbox to JetStream.
    publisher =
      config.role === 'api' || !config.nats_url
        ? null
        : new NatsPublisher(db.pool, log, { url: config.nats_url, replicas: config.nats_replicas });
    const running_publisher = publisher;
    const running_dispatcher = dispatcher;
    // Split roles: an `api` process tells the `worker` processes by NOTIFY, which they listen for.
    const notifier = config.role === 'api' ? new OutboxNotifier(db.pool, log) : null;
    if (config.role === 'worker' && dispatcher) {
      listener = new OutboxListener(db.url, log, () => {
        running_dispatcher?.nudge();
        running_publisher?.nudge();
      });
      await listener.start();
    }
    const engine = new IdempotencyEngine(db.pool, {
      lock_timeout_s: config.idempotency_lock_timeout_s,
      log,
      onCommit: (writes) => {
        if (!writes.some((w) => w.name === EVENTS_INSERT)) return;
        running_dispatcher?.nudge();
        running_publisher?.nudge();
        notifier?.notify();
      },
      onBatch: (phases, committed) => {
        if (committed) metrics.phase_batch_size.observe(phases);
        else metrics.phase_batches_failed.inc();
      },
    });
    engine.register(createCustomerOperation);
    engine.register(updateCustomerOperation);
    // Large ledger batches stream their transfers with COPY, which needs a pool that does not
    // pipeline; one connection per batch in flight (the ledger's default is two).
    copy_pool = createPool({
      connection_string: db.url,
      max_connections: 2,
      application_name: 'moneta-ledger-copy',
      pipeline: false,
    });
    const ledger = new Ledger(db.pool, { ...DEFAULT_LEDGER_OPTIONS, copy_pool });
    const ledger_operations = makeLedgerOperations(ledger);
    engine.register(ledger_operations.create_accounts);
    engine.register(ledger_operations.create_transfers);
    const keys = await openKeyProvider(config, (message) => log.warn(message));
    vault = new Vault(db.pool, keys, { cvc_ttl_s: config.cvc_ttl_s, log });
    await vault.checkKeyring();
    vault.startRefresh(config.kek_refresh_ms);
    const payment_method_operations = makePaymentMethodOperations(vault);
    engine.register(payment_method_operations.create);
    engine.register(payment_method_operations.attach);
    engine.register(payment_method_operations.detach);
    const endpoint_operations = endpointOperations(config.webhook_allow_private);
    for (const op of Object.values(endpoint_operations)) engine.register(op);
    // Acquirers: MONETA_ACQUIRERS, or (role all) the two simulators started beside us.
    let acquirers = config.acquirers;
    if (!acquirers && config.role === 'all') {
      simulators = await startSimulators(DEFAULT_SIMULATORS, config.data_dir, config.acquirer_api_key, log);
      acquirers = simulators.acquirers;
    }
    connectors = new Connectors(
      (acquirers ?? []).map(
        (a) =>
          new SimulatorConnector({
            name: a.name,
            url: a.url,
            api_key: config.acquirer_api_key,
            timeout_ms: config.acquirer_timeout_ms,
            connections: 32,
          }),
      ),
    );
    const payment_deps = { ledger, vault, connectors, log };
    const payment_operations = makePaymentOperations(payment_deps);
    for (const op of Object.values(payment_operations)) engine.register(op);
    const janitor = connectors.names().length > 0 ? new Janitor(db.pool, payment_deps) : null;
    const rate_limiter = createRateLimiter(
      config.redis_url,
      { rate_per_second: config.rate_limit_per_second, burst: config.rate_limit_burst },
      log,
    );

    const readiness = async (): Promise<ReadinessReport> => {
      const checks: ReadinessReport['checks'] = {};
      try {
        await db.pool.query('SELECT 1');
        checks.database = 'ok';
      } catch (err) {
        checks.database = `unreachable: ${(err as Error).message}`;
      }
      checks.migrations = (await migrationsApplied(db.pool)) ? 'ok' : 'pending';
      checks.shutdown = closing ? 'in progress' : 'ok';
      return { ready: Object.values(checks).every((v) => v === 'ok'), checks };
    };

    app = await buildApi({
      config,
      pool: db.pool,
      log,
      metrics,
      engine,
      ledger,
      vault,
      payment_method_operations,
      payment_operations,
      endpoint_operations,
      nudge_dispatcher: () => running_dispatcher?.nudge(),
      authenticator: new Authenticator(db.pool, config.auth_cache_ttl_ms),
      rate_limiter,
      readiness,
      is_closing: () => closing,
      probes_only: config.role === 'worker',
    });
    const address = await app.listen({ port: config.port, host: config.host });
    const url = address.replace('0.0.0.0', '127.0.0.1').replace('[::]', '127.0.0.1');

    if (config.role !== 'api') {
      jobs = await startJobs({
        pool: db.pool,
        engine,
        ledger,
        vault,
        janitor,
        log,
        metrics,
        concurrency: config.worker_concurrency,
        idempotency_retention_hours: config.idempotency_retention_hours,
      });
    }
    dispatcher?.start();
    publisher?.start();
    log.info({ url, role: config.role, embedded_db: db.embedded !== null }, 'moneta ready');

    const server = app;
    const running_vault = vault;
    const running_connectors = connectors;
    const running_simulators = simulators;
    let stopping: Promise<void> | null = null;
    const stop = () => {
      stopping ??= (async () => {
        closing = true;
        log.info('shutting down: refusing new requests, finishing in-flight ones');
        const drained = server.close();
        const timer = new Promise<'timeout'>((r) =>
          setTimeout(() => r('timeout'), config.shutdown_timeout_ms).unref(),
        );
        if ((await Promise.race([drained.then(() => 'done' as const), timer])) === 'timeout') {
          log.warn(
            { timeout_ms: config.shutdown_timeout_ms },
            'in-flight requests did not finish in time; closing connections',
          );
          server.server.closeAllConnections();
        }
        if (jobs) await jobs.stop().catch((err) => log.error({ err }, 'job runner did not stop cleanly'));
        await listener?.stop();
        await publisher?.stop();
        await running_dispatcher
          ?.stop()
          .catch((err) => log.error({ err }, 'webhook dispatcher did not stop cleanly'));
        await rate_limiter.close();
        running_vault.stop();
        await running_connectors.close();
        await running_simulators?.stop();
        await copy_pool?.end();
        if (!opts.database) await db.close();
        log.info('shutdown complete');
      })();
      return stopping;
    };
    return {
      config,
      log,
      db,
      app: server,
      url,
      engine,
      ledger,
      vault: running_vault,
      connectors: running_connectors,
      janitor,
      dispatcher: running_dispatcher,
      outbox_listener: listener,
      nats_publisher: publisher,
      acquirers: acquirers ?? [],
      metrics,
      jobs,
      demo,
      stop,
    };
  } catch (err) {
    await app?.close().catch(() => {});
    await jobs?.stop().catch(() => {});
    await listener?.stop();
    await publisher?.stop().catch(() => {});
    await dispatcher?.stop().catch(() => {});
    vault?.stop();
    await connectors?.close().catch(() => {});
    await simulators?.stop();
    await copy_pool?.end().catch(() => {});
    if (!opts.database) await db.close();
    throw err;
  }
}

async function ensureDemoMerchant(pool: Pool): Promise<CreatedMerchant | null> {
  // Serialised by an advisory lock so two processes starting together create one demo merchant.
  const client = await pool.connect();
  try {
    await client.query('SELECT pg_advisory_lock(7242011002)');
    if ((await countMerchants(client)) > 0) return null;
    return await createMerchant(pool, { name: 'Demo merchant', is_demo: true });
  } finally {
    await client.query('SELECT pg_advisory_unlock(7242011002)').catch(() => {});
    client.release();
  }
}
