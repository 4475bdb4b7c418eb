import pg from 'pg';
import { assert } from '../lib/errors.ts';

export type Pool = pg.Pool;
export type Client = pg.PoolClient;
/** Anything that can run a query: the pool, or a client inside a transaction. */
export type Queryable = pg.Pool | pg.PoolClient;

export interface PoolOptions {
  connection_string: string;
  max_connections: number;
  application_name: string;
}

export function createPool(opts: PoolOptions): Pool {
  const pool = new pg.Pool({
    connectionString: opts.connection_string,
    max: opts.max_connections,
    application_name: opts.application_name,
    idleTimeoutMillis: 30_000,
    connectionTimeoutMillis: 10_000,
  });
  // An idle client's error (the server restarted, a connection was killed) must not crash
  // the process; the pool discards that client and the next checkout gets a fresh one.
  pool.on('error', () => {});
  pool.on('connect', (client) => client.on('error', () => {}));
  return pool;
}

const RETRYABLE_SQLSTATES = new Set(['40001', '40P01']); // serialization_failure, deadlock_detected
const MAX_TX_ATTEMPTS = 4;

/**
 * Runs `fn` in one transaction. Serialization failures and deadlocks are retried a
 * bounded number of times because they are the database's way of saying "try again";
 * every other error rolls back and propagates.
 */
export async function withTransaction<T>(pool: Pool, fn: (client: Client) => Promise<T>): Promise<T> {
  for (let attempt = 1; attempt <= MAX_TX_ATTEMPTS; attempt += 1) {
    const client = await pool.connect();
    let broken = false;
    try {
      await client.query('BEGIN');
      const result = await fn(client);
      await client.query('COMMIT');
      return result;
    } catch (err) {
      try {
        await client.query('ROLLBACK');
      } catch {
        broken = true;
      }
      const code = (err as { code?: string }).code;
      if (attempt < MAX_TX_ATTEMPTS && code !== undefined && RETRYABLE_SQLSTATES.has(code)) continue;
      throw err;
    } finally {
      client.release(broken);
    }
  }
  assert(false, 'withTransaction loop must return or throw');
}

/** True when the error is a unique-constraint violation (SQLSTATE 23505). */
export function isUniqueViolation(err: unknown): boolean {
  return (err as { code?: string }).code === '23505';
}
