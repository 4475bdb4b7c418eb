import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import pg from 'pg';
import { from as copyFrom } from 'pg-copy-streams';
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
  /** Default true. A pool for COPY (see Tx.copyIn) must not pipeline. */
  pipeline?: boolean;
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
    pipeline: opts.pipeline ?? true,
  });
  // An idle client's error (the server restarted, a connection was killed) must not crash
  // the process; the pool discards that client and the next checkout gets a fresh one.
  pool.on('error', () => {});
  pool.on('connect', (client) => {
    client.on('error', () => {});
    // Only the statements we name (the hot writes) are prepared and cached; their
    // parameters are arrays and ids whose best plan never depends on the values, so a
    // custom plan per execution is pure overhead (it halved the ledger's single-transfer
    // rate). Unnamed statements are planned per execution either way. Sent first on the
    // connection, so it applies before any query the caller queues.
    client.query('SET plan_cache_mode = force_generic_plan').catch(() => {});
  });
  return pool;
}

/**
 * One transaction on one pooled connection, built to cost as few round trips as the work
 * allows. `commit(writes)` sends the transaction's last writes as one statement (see
 * `combineWrites`):
 * - when nothing ran before, that statement alone is the transaction (a single statement
 *   commits atomically on its own): one round trip, exactly like a bare INSERT;
 * - otherwise BEGIN went out with the first statement and the writes go out with the
 *   COMMIT, each pair in one socket write (the pool's clients pipeline).
 *
 * Why the pipelining is safe: statements after BEGIN run inside the transaction as long as
 * BEGIN succeeds, and BEGIN on a live connection cannot fail (on a dead one every statement
 * fails). A failing statement aborts the transaction, so PostgreSQL answers the COMMIT
 * behind it with ROLLBACK; `commit` checks for that and throws the statement's error.
 */
export class Tx implements Queryable {
  private begin: Promise<unknown> | null = null;
  private state: 'open' | 'committed' | 'failed' = 'open';
  /** On a client that does not pipeline: the last submitted query, which the next waits for. */
  private tail: Promise<unknown> = Promise.resolve();

  constructor(private readonly client: pg.PoolClient) {}

  query(text: string, values?: unknown[]): Promise<QueryResult>;
  query(statement: Statement): Promise<QueryResult>;
  query(textOrStatement: string | Statement, values?: unknown[]): Promise<QueryResult> {
    assert(this.state === 'open', 'no statement after the transaction ended');
    return this.send(() =>
      this.submit(() =>
        typeof textOrStatement === 'string'
          ? this.client.query(textOrStatement, values)
          : this.client.query(textOrStatement),
      ),
    );
  }

  /**
   * Runs `writes` (combined into one statement) and commits. Resolves with the result of the
   * last write, or null when there was none, once the commit is durable.
   */
  async commit(writes: readonly Statement[] = []): Promise<QueryResult | null> {
    assert(this.state === 'open', 'a transaction commits once');
    const statement = writes.length > 0 ? combineWrites(writes) : null;
    if (this.begin === null) {
      this.state = 'failed'; // until confirmed: a failed single statement leaves nothing to roll back
      const result = statement ? await this.client.query(statement) : null;
      this.state = 'committed';
      return result;
    }
    const pending = this.send(() => ({
      result: statement ? this.submit(() => this.client.query(statement)) : Promise.resolve(null),
      commit: this.submit(() => this.client.query('COMMIT')),
    }));
    this.state = 'failed'; // until the COMMIT is confirmed; then there is nothing to roll back either way
    const [began, result, commit] = await Promise.allSettled([this.begin, pending.result, pending.commit]);
    for (const r of [began, result, commit]) if (r.status === 'rejected') throw r.reason;
    const tag = (commit as PromiseFulfilledResult<QueryResult>).value.command;
    if (tag !== 'COMMIT') throw new Error(`transaction ended with ${tag}`);
    this.state = 'committed';
    return (result as PromiseFulfilledResult<QueryResult | null>).value;
  }

  /**
   * Streams `data` (COPY text format) into `COPY … FROM STDIN` inside this transaction: the
   * fastest way PostgreSQL takes many rows. Needs a client that does not pipeline (the
   * COPY sub-protocol cannot share the wire with queued queries).
   */
  async copyIn(text: string, data: string): Promise<void> {
    assert(this.state === 'open', 'no COPY after the transaction ended');
    assert(!this.client.pipeline, 'COPY needs a pool created with pipeline: false');
    await this.send(() =>
      this.submit(() => pipeline(Readable.from([data]), this.client.query(copyFrom(text)))),
    );
  }

  /** Rolls back if anything was sent. Returns false when the connection is unusable. */
  async rollback(): Promise<boolean> {
    if (this.state !== 'open' || this.begin === null) return true;
    this.state = 'failed';
    try {
      await this.submit(() => this.client.query('ROLLBACK'));
      return true;
    } catch {
      return false;
    }
  }

  get committed(): boolean {
    return this.state === 'committed';
  }

  /**
   * Submits a query now on a pipelining client; on any other, once the previous one has
   * finished (whatever its outcome), so the queries still run in order without leaning on
   * pg's own queue (deprecated).
   */
  private submit<T>(run: () => Promise<T>): Promise<T> {
    if (this.client.pipeline) return run();
    const next = this.tail.then(run, run);
    this.tail = next.catch(() => {});
    return next;
  }

  /** Runs `queue` with the socket corked, BEGIN first if this is the transaction's first statement. */
  private send<T>(queue: () => T): T {
    const socket = this.client.connection.stream;
    socket.cork();
    try {
      if (this.begin === null) {
        this.begin = this.submit(() => this.client.query('BEGIN'));
        // Observed by `commit`; a failed BEGIN also fails every statement queued behind it.
        this.begin.catch(() => {});
      }
      return queue();
    } finally {
      socket.uncork();
    }
  }
}

/**
 * One pooled connection shared by everyone who holds it, for single statements that must
 * run in the order they were sent: the connection pipelines, so a statement goes out while
 * the ones before it still run, and PostgreSQL runs them one after another. Held while
 * anyone uses it and returned to the pool when the last user lets go, so an idle process
 * keeps no connection.
 */
export class OrderedConnection {
  private client: pg.PoolClient | null = null;
  private connecting: Promise<pg.PoolClient> | null = null;
  private users = 0;

  constructor(private readonly pool: Pool) {}

  /** The connection, for one user; pair every call with `release`. */
  async acquire(): Promise<pg.PoolClient> {
    this.users += 1;
    if (this.client) return this.client;
    try {
      this.connecting ??= this.pool.connect();
      this.client = await this.connecting;
      assert(this.client.pipeline, 'an ordered connection comes from a pipelining pool');
      return this.client;
    } catch (err) {
      this.connecting = null;
      this.users -= 1;
      throw err;
    }
  }

  /** The pool itself drops a connection that failed rather than lending it again. */
  release(): void {
    assert(this.users > 0, 'release follows acquire');
    this.users -= 1;
    if (this.users > 0 || !this.client) return;
    const client = this.client;
    this.client = null;
    this.connecting = null;
    client.release();
  }
}

/** Combined statement shapes by their parts' names; bounded, and never evicted so names stay stable. */
const combined_shapes = new Map<string, { name: string; text: string }>();
const MAX_COMBINED_SHAPES = 256;
const DATA_MODIFYING = /^\s*(INSERT|UPDATE|DELETE)\b/i;
const PLACEHOLDER = /\$(\d+)/g;

/**
 * Combines writes into one statement: all but the last become data-modifying CTEs, the last
 * is the main statement. One statement means one Sync, one commit and one answer from the
 * server instead of one per write. The price is the CTE rule: the writes see the database
 * as it was before any of them ran, so they must not depend on each other's effects (a
 * write that needs an earlier one's rows belongs in `tx.query`, in order).
 */
export function combineWrites(writes: readonly Statement[]): Statement {
  assert(writes.length > 0, 'there is something to combine');
  if (writes.length === 1) return writes[0]!;
  const key = writes.every((w) => w.name) ? writes.map((w) => w.name).join('+') : null;
  let shape = key === null ? undefined : combined_shapes.get(key);
  if (!shape) {
    const text = combinedText(writes);
    const named = key !== null && combined_shapes.size < MAX_COMBINED_SHAPES;
    shape = { name: named ? `moneta_combined_${combined_shapes.size}` : '', text };
    if (named) combined_shapes.set(key, shape);
  }
  const values = writes.flatMap((w) => w.values);
  return shape.name ? { name: shape.name, text: shape.text, values } : { text: shape.text, values };
}

function combinedText(writes: readonly Statement[]): string {
  let offset = 0;
  const ctes: string[] = [];
  const shifted = writes.map((w) => {
    const highest = Math.max(0, ...Array.from(w.text.matchAll(PLACEHOLDER), (m) => Number(m[1])));
    assert(highest === w.values.length, 'every value has its placeholder and no placeholder lacks one');
    assert(!w.text.includes("'") && !w.text.includes('$$'), 'combined statements carry no literals');
    const text = w.text.replace(PLACEHOLDER, (_, n: string) => `$${Number(n) + offset}`);
    offset += w.values.length;
    return text;
  });
  const main = shifted.pop()!;
  shifted.forEach((text, i) => {
    assert(DATA_MODIFYING.test(text), 'only INSERT, UPDATE and DELETE combine');
    ctes.push(`moneta_w${i} AS (${text})`);
  });
  // A main statement with its own WITH list continues ours (WITH cannot nest data-modifying CTEs).
  const main_with = /^\s*WITH\s+/i.exec(main);
  return main_with
    ? `WITH ${ctes.join(', ')}, ${main.slice(main_with[0].length)}`
    : `WITH ${ctes.join(', ')} ${main}`;
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
      if (attempt < MAX_TX_ATTEMPTS && isRetryableConflict(err)) continue;
      throw err;
    } finally {
      client.release(broken);
    }
  }
  assert(false, 'withTransaction loop must return or throw');
}

/** A serialization failure or deadlock: the database asks to run the transaction again. */
export function isRetryableConflict(err: unknown): boolean {
  const code = (err as { code?: string }).code;
  return code !== undefined && RETRYABLE_SQLSTATES.has(code);
}

/** True when the error is a unique-constraint violation (SQLSTATE 23505). */
export function isUniqueViolation(err: unknown): boolean {
  return (err as { code?: string }).code === '23505';
}
