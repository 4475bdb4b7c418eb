/**
 * POST /v1/customers (with an Idempotency-Key, through auth, rate limit, validation and the
 * idempotency layer) against a bare fastify route that inserts one row (see ../paired.ts).
 *
 *   npm run bench:customers            (embedded PostgreSQL in a temp dir)
 *   DATABASE_URL=postgres://… npm run bench:customers
 *   BENCH_ROUNDS=5 BENCH_SECONDS=10 BENCH_CONNECTIONS=50
 */
import { runPairedBench } from '../paired.ts';

await runPairedBench({
  name: 'customers',
  moneta_endpoint: 'customers',
  body: JSON.stringify({ email: 'bench@example.com', metadata: { source: 'bench' } }),
  content_type: 'application/json',
  title: 'moneta POST /v1/customers (idempotent)',
  target_ratio: 0.6,
});
