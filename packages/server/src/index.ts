/** Moneta's public surface for embedding and tests. */
export { buildApi } from './api/app.ts';
export { type Config, ConfigError, loadConfig } from './config/index.ts';
export { migrate } from './db/migrate.ts';
export { createPool, type Pool } from './db/pool.ts';
// For services that consume Moneta's events from NATS JetStream (docs/events.md).
export {
  type ConsumeOptions,
  connectNats,
  consumeEvents,
  type HandledStore,
  pgHandledStore,
} from './events/index.ts';
export { IdempotencyEngine } from './idempotency/index.ts';
export { createMerchant, rollKey } from './merchants/index.ts';
export { createLogger } from './ops/logger.ts';
export { openDatabase, type RunningMoneta, startMoneta } from './service.ts';
