import client from 'prom-client';
import type { Pool } from '../db/pool.ts';

/**
 * One registry per Moneta instance (tests run several in a process). Covers the four
 * golden signals: traffic and errors (requests by route and status), latency (a
 * histogram per route) and saturation (database pool use, requests in flight).
 */
export class Metrics {
  readonly registry = new client.Registry();
  readonly http_requests = new client.Counter({
    name: 'moneta_http_requests_total',
    help: 'HTTP requests by method, route pattern and status code',
    labelNames: ['method', 'route', 'status_code'] as const,
    registers: [this.registry],
  });
  readonly http_duration = new client.Histogram({
    name: 'moneta_http_request_duration_seconds',
    help: 'HTTP request latency by method and route pattern',
    labelNames: ['method', 'route'] as const,
    buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.2, 0.5, 1, 2.5, 5, 10],
    registers: [this.registry],
  });
  readonly http_in_flight = new client.Gauge({
    name: 'moneta_http_requests_in_flight',
    help: 'HTTP requests being handled now',
    registers: [this.registry],
  });
  readonly idempotency = new client.Counter({
    name: 'moneta_idempotency_outcomes_total',
    help: 'Idempotent requests by outcome: executed, replayed, mismatch, in_use',
    labelNames: ['outcome'] as const,
    registers: [this.registry],
  });
  readonly phase_batch_size = new client.Histogram({
    name: 'moneta_phase_batch_phases',
    help: 'Atomic phases committed together in one transaction (group commit of batched phases)',
    buckets: [1, 2, 4, 8, 16, 32, 64],
    registers: [this.registry],
  });
  readonly phase_batches_failed = new client.Counter({
    name: 'moneta_phase_batches_failed_total',
    help: 'Batches of phases rolled back (a phase failed in it): the failed phases run again alone, the others together',
    registers: [this.registry],
  });
  readonly rate_limited = new client.Counter({
    name: 'moneta_rate_limited_total',
    help: 'Requests refused with 429 by the per-key rate limiter',
    registers: [this.registry],
  });
  readonly jobs = new client.Counter({
    name: 'moneta_jobs_total',
    help: 'Background job runs by task and outcome',
    labelNames: ['task', 'outcome'] as const,
    registers: [this.registry],
  });

  readonly payments_needing_review = new client.Gauge({
    name: 'moneta_payments_needing_review',
    help: 'Payment intents whose acquirer outcome the janitor could not settle: an operator must look',
    registers: [this.registry],
  });
  readonly payments_settled = new client.Counter({
    name: 'moneta_payment_attempts_settled_total',
    help: 'Acquirer calls of unknown outcome that the janitor settled by inquiry',
    registers: [this.registry],
  });

  readonly ledger_violations = new client.Gauge({
    name: 'moneta_ledger_invariant_violations',
    help: 'Ledger invariant violations found by the last scheduled check, by check (0 = sound)',
    labelNames: ['check'] as const,
    registers: [this.registry],
  });
  readonly ledger_verified_accounts = new client.Counter({
    name: 'moneta_ledger_verified_accounts_total',
    help: 'Accounts whose balances the scheduled check recomputed from their transfers',
    registers: [this.registry],
  });
  readonly ledger_expired = new client.Counter({
    name: 'moneta_ledger_expired_pending_total',
    help: 'Pending transfers released because their timeout passed',
    registers: [this.registry],
  });

  readonly outbox_lag = new client.Gauge({
    name: 'moneta_outbox_lag_seconds',
    help: 'Age of the oldest event not yet fanned out to webhook endpoints (0 when the outbox is empty)',
    registers: [this.registry],
  });
  readonly webhook_attempts = new client.Counter({
    name: 'moneta_webhook_attempts_total',
    help: 'Webhook delivery attempts by outcome: succeeded, failed (will retry or gave up), postponed (circuit open)',
    labelNames: ['outcome'] as const,
    registers: [this.registry],
  });
  readonly webhook_endpoints_disabled = new client.Counter({
    name: 'moneta_webhook_endpoints_disabled_total',
    help: 'Webhook endpoints disabled after failing for three days',
    registers: [this.registry],
  });

  constructor(pool: Pool | null, pool_max: number) {
    client.collectDefaultMetrics({ register: this.registry, prefix: 'moneta_process_' });
    if (pool) this.observePool(pool, pool_max);
  }

  private observePool(pool: Pool, pool_max: number): void {
    new client.Gauge({
      name: 'moneta_db_pool_connections',
      help: 'Database pool connections by state',
      labelNames: ['state'] as const,
      registers: [this.registry],
      collect() {
        this.set({ state: 'total' }, pool.totalCount);
        this.set({ state: 'idle' }, pool.idleCount);
        this.set({ state: 'waiting' }, pool.waitingCount);
        this.set({ state: 'max' }, pool_max);
      },
    });
    new client.Gauge({
      name: 'moneta_db_pool_saturation_ratio',
      help: 'Connections in use divided by the pool maximum (1 = every connection busy)',
      registers: [this.registry],
      collect() {
        this.set((pool.totalCount - pool.idleCount) / pool_max);
      },
    });
  }
}
