import pg from 'pg';
import { assert } from '../lib/errors.ts';

export type Pool = pg.Pool;
export type QueryResult = pg.QueryResult;

/** Anything that can run a query: the pool, a client, or a transaction (`Tx`). */
export interface Queryable {
  query(text: string, values?: unknown[]): Promise<QueryResult>;
  query(statement: Statement): Promise<QueryResult>;
}

/** A statement to send later. `name` makes it a prepared statement, planned once per connection. */
export interface Statement {
  text: string;
  values: unknown[];
  name?: string;
}

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
    // Pipelining lets a transaction send BEGIN, its writes and COMMIT in one write to
    // the socket and wait for one round trip instead of one per statement (see Tx).
    pipeline: true,
  });
  // An idle client's error (the server restarted, a connection was killed) must not crash
  // the process; the pool discards that client and the next checkout gets a fresh one.
  pool.on('error', () => {});
  pool.on('connect', (client) => client.on('error', () => {}));
  return pool;
}

/**
 * One transaction on one pooled connection. BEGIN is sent lazily with the first statement,
 * and `commit` sends its statements with the COMMIT, all through a corked socket: a
 * transaction whose writes are known up front (`tx.commit([...writes])`) costs one write
 * and one round trip, like a single autocommit INSERT.
 *
 * Why this is safe: the statements after BEGIN run inside the transaction as long as
 * BEGIN succeeds, and BEGIN on a live connection cannot fail (on a dead one every
 * statement fails). A failing statement aborts the transaction, so PostgreSQL answers
 * the COMMIT behind it with ROLLBACK; `commit` checks for that and throws the first error.
 */
export class Tx implements Queryable {
  private begin: Promise<unknown> | null = null;
  private state: 'open' | 'committed' | 'failed' = 'open';

  constructor(private readonly client: pg.PoolClient) {}

  query(text: string, values?: unknown[]): Promise<QueryResult>;
  query(statement: Statement): Promise<QueryResult>;
  query(textOrStatement: string | Statement, values?: unknown[]): Promise<QueryResult> {
    assert(this.state === 'open', 'no statement after the transaction ended');
    return this.send(() =>
      typeof textOrStatement === 'string'
        ? this.client.query(textOrStatement, values)
        : this.client.query(textOrStatement),
    );
  }

  /** Sends `statements` and COMMIT together; resolves with the statements' results once durable. */
  async commit(statements: readonly Statement[] = []): Promise<QueryResult[]> {
    assert(this.state === 'open', 'a transaction commits once');
    if (this.begin === null && statements.length === 0) {
      this.state = 'committed';
      return []; // nothing ran: nothing to commit
    }
    const pending = this.send(() => ({
      results: statements.map((statement) => this.client.query(statement)),
      commit: this.client.query('COMMIT'),
    }));
    this.state = 'failed'; // until the COMMIT is confirmed; then there is nothing to roll back either way
    const settled = await Promise.allSettled([this.begin, ...pending.results, pending.commit]);
    const failure = settled.find((r) => r.status === 'rejected');
    if (failure) throw (failure as PromiseRejectedResult).reason;
    const commit = (settled.at(-1) as PromiseFulfilledResult<QueryResult>).value;
    if (commit.command !== 'COMMIT') throw new Error(`transaction ended with ${commit.command}`);
    this.state = 'committed';
    return settled.slice(1, -1).map((r) => (r as PromiseFulfilledResult<QueryResult>).value);
  }

  /** Rolls back if anything was sent. Returns false when the connection is unusable. */
  async rollback(): Promise<boolean> {
    if (this.state !== 'open' || this.begin === null) return true;
    this.state = 'failed';
    try {
      await this.client.query('ROLLBACK');
      return true;
    } catch {
      return false;
    }
  }

  get committed(): boolean {
    return this.state === 'committed';
  }

  /** Runs `queue` with the socket corked, BEGIN first if this is the transaction's first statement. */
  private send<T>(queue: () => T): T {
    const socket = this.client.connection.stream;
    socket.cork();
    try {
      if (this.begin === null) {
        this.begin = this.client.query('BEGIN');
        // Observed by `commit`; a failed BEGIN also fails every statement queued behind it.
        this.begin.catch(() => {});
      }
      return queue();
    } finally {
      socket.uncork();
    }
  }
}

const RETRYABLE_SQLSTATES = new Set(['40001', '40P01']); // serialization_failure, deadlock_detected
const MAX_TX_ATTEMPTS = 4;

/**
 * Runs `fn` in one transaction and commits it, unless `fn` committed already through
 * `tx.commit(statements)` (which sends its last writes with the COMMIT). Serialization
 * failures and deadlocks are retried a bounded number of times because they are the
 * database's way of saying "try again"; every other error rolls back and propagates.
 */
export async function withTransaction<T>(pool: Pool, fn: (tx: Tx) => Promise<T>): Promise<T> {
  for (let attempt = 1; attempt <= MAX_TX_ATTEMPTS; attempt += 1) {
    const client = await pool.connect();
    const tx = new Tx(client);
    let broken = false;
    try {
      const result = await fn(tx);
      if (!tx.committed) await tx.commit();
      return result;
    } catch (err) {
      broken = !(await tx.rollback());
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
