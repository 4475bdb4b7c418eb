/**
 * One side of a paired benchmark (paired.ts), in its own process so the load generator does
 * not share its event loop: `bare` is a fastify route that inserts one row; `moneta` is the
 * real Moneta API (auth, rate limit, validation, idempotency, logging at info to /dev/null).
 * Prints `READY <url> <key>` when it listens: the secret key for /v1/customers, the
 * publishable key for /v1/payment_methods (as a browser tokenizes).
 */
import { randomUUID } from 'node:crypto';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import Fastify from 'fastify';
import pino from 'pino';
import { loadConfig } from '../packages/server/src/config/index.ts';
import { startSimulators } from '../packages/server/src/connectors/simulators.ts';
import { createPool } from '../packages/server/src/db/pool.ts';
import { createMerchant } from '../packages/server/src/merchants/index.ts';
import { createLogger } from '../packages/server/src/ops/logger.ts';
import { startMoneta } from '../packages/server/src/service.ts';

const [mode, db_url, endpoint = 'customers'] = process.argv.slice(2);
if (
  (mode !== 'bare' && mode !== 'moneta') ||
  !db_url ||
  !['customers', 'payment_methods', 'payment_intents', 'webhooks'].includes(endpoint)
) {
  console.error(
    'usage: server.ts bare|moneta DATABASE_URL [customers|payment_methods|payment_intents|webhooks]',
  );
  process.exit(2);
}
const POOL_MAX = 20;

if (mode === 'bare') {
  const pool = createPool({
    connection_string: db_url,
    max_connections: POOL_MAX,
    application_name: 'bench-bare',
  });
  await pool.query(
    'CREATE TABLE IF NOT EXISTS bench_bare (id text PRIMARY KEY, email text, created_at timestamptz DEFAULT now())',
  );
  const app = Fastify();
  app.post('/bare', async (req) => {
    const body = (req.body ?? {}) as { email?: string };
    const { rows } = await pool.query(
      'INSERT INTO bench_bare (id, email) VALUES ($1, $2) RETURNING id, email, created_at',
      [randomUUID(), body.email ?? null],
    );
    return rows[0];
  });
  const url = await app.listen({ port: 0, host: '127.0.0.1' });
  console.log(`READY ${url}/bare none`);
} else {
  const scratch = mkdtempSync(path.join(tmpdir(), 'moneta-bench-'));
  // Payments need an acquirer: one simulator in its own process, on this machine.
  const simulators =
    endpoint === 'payment_intents'
      ? await startSimulators(['acme'], scratch, 'sim_test_key', createLogger('warn'))
      : null;
  const config = loadConfig(
    {},
    {
      DATABASE_URL: db_url,
      ...(simulators ? { MONETA_ACQUIRERS: `acme=${simulators.acquirers[0]!.url}` } : {}),
      // No payments are confirmed in the webhooks benchmark: no simulators beside it.
      ...(endpoint === 'webhooks' ? { MONETA_ACQUIRERS: 'acme=http://127.0.0.1:9' } : {}),
      PORT: '0',
      // `webhooks`: the API and the outbox dispatcher in one process, posting to loopback.
      MONETA_ROLE: endpoint === 'webhooks' ? 'all' : 'api',
      MONETA_WEBHOOK_ALLOW_PRIVATE: endpoint === 'webhooks' ? 'true' : 'false',
      MONETA_DEMO_MERCHANT: 'false',
      MONETA_DB_POOL_MAX: String(POOL_MAX),
      MONETA_RATE_LIMIT_PER_SECOND: '10000000',
      MONETA_RATE_LIMIT_BURST: '10000000',
      // A throwaway keyring, never the repository's ./data.
      MONETA_KEK_FILE: path.join(scratch, 'keys', 'keyring.json'),
    },
  );
  // Buffered as Moneta's own default destination is (4 KiB, see ops/logger.ts), into /dev/null
  // instead of stdout, which carries the READY line to the benchmark.
  const log = createLogger(
    (process.env.BENCH_LOG_LEVEL ?? 'info') as 'info',
    pino.destination({ dest: '/dev/null', sync: false, minLength: 4096 }),
  );
  const moneta = await startMoneta(config, { log });
  const merchant = await createMerchant(moneta.db.pool, { name: 'Bench' });
  const key = endpoint === 'payment_methods' ? merchant.test.publishable_key : merchant.test.secret_key;
  console.log(`READY ${moneta.url}/v1/${endpoint === 'webhooks' ? 'payment_intents' : endpoint} ${key}`);
}

// Exit through process.exit so `--cpu-prof` profiles are written when the bench stops us.
for (const signal of ['SIGINT', 'SIGTERM'] as const) process.on(signal, () => process.exit(0));
if (process.env.BENCH_ELU) {
  const { performance, monitorEventLoopDelay } = await import('node:perf_hooks');
  const h = monitorEventLoopDelay({ resolution: 1 });
  h.enable();
  let last = performance.eventLoopUtilization();
  setInterval(() => {
    const now = performance.eventLoopUtilization();
    const d = performance.eventLoopUtilization(now, last);
    last = now;
    console.error(
      `ELU ${(d.utilization * 100).toFixed(0)}% delay p50 ${(h.percentile(50) / 1e6).toFixed(1)} ms p99 ${(h.percentile(99) / 1e6).toFixed(1)} ms`,
    );
    h.reset();
  }, 2000).unref();
}
