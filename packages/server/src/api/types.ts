import type { Config } from '../config/index.ts';
import type { Pool } from '../db/pool.ts';
import type { EndpointOperations } from '../events/index.ts';
import type { IdempotencyEngine } from '../idempotency/index.ts';
import type { Ledger } from '../ledger/index.ts';
import type { AuthenticatedKey, Authenticator } from '../merchants/index.ts';
import type { Logger } from '../ops/logger.ts';
import type { Metrics } from '../ops/metrics.ts';
import type { RateLimiter } from '../ops/rate-limit.ts';
import type { PaymentMethodOperations } from '../payment-methods/index.ts';
import type { PaymentOperations } from '../payments/index.ts';
import type { Vault } from '../vault/index.ts';

export interface ReadinessReport {
  ready: boolean;
  checks: Record<string, 'ok' | string>;
}

/** Everything the HTTP layer needs, built by the service composer (src/service.ts). */
export interface ApiDeps {
  config: Config;
  pool: Pool;
  log: Logger;
  metrics: Metrics;
  engine: IdempotencyEngine;
  ledger: Ledger;
  vault: Vault;
  payment_method_operations: PaymentMethodOperations;
  payment_operations: PaymentOperations;
  endpoint_operations: EndpointOperations;
  nudge_dispatcher?: () => void;
  authenticator: Authenticator;
  rate_limiter: RateLimiter;
  readiness: () => Promise<ReadinessReport>;
  /** True once shutdown began: new requests get 503 and /readyz goes red. */
  is_closing: () => boolean;
  /** Serve only /healthz, /readyz and /metrics (the `worker` role). */
  probes_only?: boolean;
}

declare module 'fastify' {
  interface FastifyRequest {
    auth: AuthenticatedKey | null;
  }
  interface FastifyContextConfig {
    /** Publishable keys may call this route (only card tokenization will). */
    allow_publishable?: boolean;
  }
}
