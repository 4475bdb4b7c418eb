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
  /**
   * Connections shared by single-statement transactions (see AutocommitLanes); default 2 on a
   * pipelining pool (one per core here), 0 otherwise. They count against max_connections
   * while busy.
   */
  autocommit_lanes?: number;
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
  const lanes = opts.autocommit_lanes ?? (opts.pipeline === false ? 0 : 2);
  if (lanes > 0) LANES.set(pool, new AutocommitLanes(pool, lanes));
  pool.on('error', () => {});
  pool.on('connect', (client) => {
    client.on('error', () => {});
    // Only the statements we name (the hot writes) are prepared and cached; their
    // parameters are arrays and ids whose best plan never depends on the values, so a
    // custom plan per execution is pure overhead (it halved the ledger's single-transfer
    // rate). Unnamed statements are planned per execution either way.
    //
    // A cached plan is made once per connection, often while its tables are still small,
    // and kept while they grow. With the default random_page_cost (4, priced for spinning
    // disks) a lookup by ids on a young table plans as a sequential scan, which then reads
    // the whole table on every call: after 20 s of payments the ledger's look-up of a
    // booking's transfers took 600 µs a call, and PostgreSQL's CPU per payment was 5.8–8.9
    // ms against 4.3–4.4 ms with 1.1, the usual value for SSDs and a cached working set,
    // which keeps such lookups on their indexes however small the table was.
    //
    // Sent first on the connection, so they apply before any query the caller queues.
    client.query('SET plan_cache_mode = force_generic_plan; SET random_page_cost = 1.1').catch(() => {});
  });
  return pool;
}

/**
 * One transaction, built to cost as few round trips and system calls as the work allows.
 * `commit(writes)` sends the transaction's last writes as one statement (see
 * `combineWrites`):
 * - when nothing ran before, that statement alone is the transaction (a single statement
 *   commits atomically on its own): one round trip, exactly like a bare INSERT, and no
 *   connection of its own either: it goes out on one of the pool's autocommit lanes
 *   (see AutocommitLanes), together with whatever else was sent in the same turn;
 * - otherwise the transaction took a connection at its first statement, BEGIN went out
 *   with that statement and the writes go out with the COMMIT, each pair in one socket
 *   write (the pool's clients pipeline).
 *
 * Why the pipelining is safe: statements after BEGIN run inside the transaction as long as
 * BEGIN succeeds, and BEGIN on a live connection cannot fail (on a dead one every statement
 * fails). A failing statement aborts the transaction, so PostgreSQL answers the COMMIT
 * behind it with ROLLBACK; `commit` checks for that and throws the statement's error.
 */
export class Tx implements Queryable {
  private begin: Promise<unknown> | null = null;
  private state: 'open' | 'committed' | 'failed' = 'open';
  /** Set as soon as a statement is queued (before the connection is there). */
  private used = false;
  private client: pg.PoolClient | null = null;
  private connecting: Promise<pg.PoolClient> | null = null;
  /** On a client that does not pipeline: the last submitted query, which the next waits for. */
  private tail: Promise<unknown> = Promise.resolve();
  /** Statements sent with `queue`, whose outcome `commit` checks first. */
  private queued: Promise<unknown>[] = [];
  /** The socket is held corked until the current burst of statements has been sent (see `send`). */
  private corked = false;

  constructor(private readonly pool: Pool) {}

  query(text: string, values?: unknown[]): Promise<QueryResult>;
  query(statement: Statement): Promise<QueryResult>;
  query(textOrStatement: string | Statement, values?: unknown[]): Promise<QueryResult> {
    assert(this.state === 'open', 'no statement after the transaction ended');
    this.used = true;
    const statement =
      typeof textOrStatement !== 'string'
        ? textOrStatement
        : values === undefined
          ? null
          : preparedStatement(textOrStatement, values);
    // Queries queued before the connection arrives are sent in the order they were made:
    // every one waits on the same promise, whose callbacks run in registration order.
    return this.connection().then((client) =>
      this.send(client, () =>
        this.submit(client, () =>
          statement === null ? client.query(textOrStatement as string) : client.query(statement),
        ),
      ),
    );
  }

  /**
   * Sends `statement` now without waiting for its answer, so it travels with what follows
   * (the commit, typically) in one round trip. If it fails, the transaction is aborted and
   * `commit` throws its error.
   */
  queue(statement: Statement): void {
    assert(this.queued.length < MAX_QUEUED, 'a transaction queues a bounded number of statements');
    const result = this.query(statement);
    result.catch(() => {}); // observed by commit (or moot after a rollback)
    this.queued.push(result);
  }

  /**
   * Runs `writes` (combined into one statement) and commits. Resolves with the result of the
   * last write, or null when there was none, once the commit is durable.
   */
  async commit(writes: readonly Statement[] = []): Promise<QueryResult | null> {
    assert(this.state === 'open', 'a transaction commits once');
    const statement = writes.length > 0 ? combineWrites(writes) : null;
    if (!this.used) {
      this.state = 'failed'; // until confirmed: a failed single statement leaves nothing to roll back
      const lanes = LANES.get(this.pool);
      const result = statement ? await (lanes ? lanes.query(statement) : this.pool.query(statement)) : null;
      this.state = 'committed';
      return result;
    }
    const client = await this.connection();
    const pending = this.send(client, () => ({
      result: statement ? this.submit(client, () => client.query(statement)) : Promise.resolve(null),
      commit: this.submit(client, () => client.query('COMMIT')),
    }));
    this.state = 'failed'; // until the COMMIT is confirmed; then there is nothing to roll back either way
    const [began, result, commit] = await Promise.allSettled([this.begin, pending.result, pending.commit]);
    // In the order sent: the first failure is the cause, the rest only say the transaction was aborted.
    const queued = await Promise.allSettled(this.queued);
    for (const r of [began, ...queued, result, commit]) if (r.status === 'rejected') throw r.reason;
    const tag = (commit as PromiseFulfilledResult<QueryResult>).value.command;
    if (tag !== 'COMMIT') throw new RolledBack(tag);
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
    this.used = true;
    const client = await this.connection();
    assert(!client.pipeline, 'COPY needs a pool created with pipeline: false');
    await this.send(client, () =>
      this.submit(client, () => pipeline(Readable.from([data]), client.query(copyFrom(text)))),
    );
  }

  /** Rolls back if anything was sent. Returns false when the connection is unusable. */
  async rollback(): Promise<boolean> {
    if (this.state !== 'open' || !this.used) return true;
    this.state = 'failed';
    try {
      const client = await this.connection();
      if (this.begin === null) return true; // the connection came, but nothing was sent on it
      await this.submit(client, () => client.query('ROLLBACK'));
      return true;
    } catch {
      return false;
    }
  }

  /** Returns the connection to the pool, if the transaction took one (`broken`: drop it). */
  async release(broken: boolean): Promise<void> {
    if (!this.connecting) return;
    const client = await this.connecting.catch(() => null);
    client?.release(broken);
  }

  get committed(): boolean {
    return this.state === 'committed';
  }

  /** The transaction's own connection, taken at its first statement. */
  private connection(): Promise<pg.PoolClient> {
    this.connecting ??= this.pool.connect().then((client) => {
      this.client = client;
      return client;
    });
    return this.connecting;
  }

  /**
   * Submits a query now on a pipelining client; on any other, once the previous one has
   * finished (whatever its outcome), so the queries still run in order without leaning on
   * pg's own queue (deprecated).
   */
  private submit<T>(client: pg.PoolClient, run: () => Promise<T>): Promise<T> {
    if (client.pipeline) return run();
    const next = this.tail.then(run, run);
    this.tail = next.catch(() => {});
    return next;
  }

  /**
   * Runs `queue` with the socket corked, BEGIN first if this is the transaction's first
   * statement. The socket stays corked until the promise callbacks now running have run:
   * the phases of a batch share this transaction and each sends its statements from its own
   * callback, so they all leave in one write instead of one write (and one wake-up of the
   * server) each.
   */
  private send<T>(client: pg.PoolClient, queue: () => T): T {
    assert(client === this.client, 'one connection per transaction');
    const socket = client.connection.stream;
    if (!this.corked) {
      this.corked = true;
      socket.cork();
      // A tick callback queued from a promise callback runs once the promise callbacks
      // queued so far (and those they queue) have run: the end of this burst of statements.
      process.nextTick(() => {
        this.corked = false;
        socket.uncork();
      });
    }
    if (this.begin === null) {
      this.begin = this.submit(client, () => client.query('BEGIN'));
      // Observed by `commit`; a failed BEGIN also fails every statement queued behind it.
      this.begin.catch(() => {});
    }
    return queue();
  }
}

/** Names of statements run with parameters inside transactions, by text; bounded, never evicted. */
const prepared_names = new Map<string, string>();
const MAX_PREPARED = 1_000;

/**
 * A statement with parameters, named so each connection parses and plans it once (a generic
 * plan, see createPool) instead of on every run: the payment flows run some thirty of them
 * per payment. Past MAX_PREPARED distinct texts, statements run unnamed.
 */
function preparedStatement(text: string, values: unknown[]): Statement {
  let name = prepared_names.get(text);
  if (name === undefined && prepared_names.size < MAX_PREPARED) {
    name = `moneta_tx_${prepared_names.size}`;
    prepared_names.set(text, name);
  }
  return name === undefined ? { text, values } : { name, text, values };
}

/** The autocommit lanes of each pool that has them (see createPool). */
const LANES = new WeakMap<Pool, AutocommitLanes>();

/**
 * A few pooled connections shared by single-statement transactions. Statements sent in
 * one turn of the event loop go to the same lane and leave in one socket write when the
 * turn ends: under load that is one system call for many requests instead of one each
 * (on loopback TCP the write, which also wakes the server, was the largest single cost in
 * profiles). Each statement still commits on its own, in the order sent; the next turn
 * takes the next lane, so the database works on several at once.
 */
class AutocommitLanes {
  private readonly lanes: OrderedConnection[];
  private current: { lane: OrderedConnection; client: Promise<pg.PoolClient> } | null = null;
  private next = 0;

  constructor(pool: Pool, count: number) {
    assert(count >= 1, 'at least one lane');
    this.lanes = Array.from({ length: count }, () => new OrderedConnection(pool));
  }

  async query(statement: Statement): Promise<QueryResult> {
    const turn = this.turn();
    const client = await turn.client;
    try {
      return await client.query(statement);
    } finally {
      turn.lane.release();
    }
  }

  /** This turn's lane, acquired once per statement; corked until the turn ends. */
  private turn(): { lane: OrderedConnection; client: Promise<pg.PoolClient> } {
    if (this.current) {
      const { lane } = this.current;
      return { lane, client: lane.acquire() };
    }
    const lane = this.lanes[this.next]!;
    this.next = (this.next + 1) % this.lanes.length;
    const client = lane.acquire();
    this.current = { lane, client };
    void client.then(
      (c) => {
        const socket = c.connection.stream;
        socket.cork();
        setImmediate(() => socket.uncork());
      },
      () => {},
    );
    setImmediate(() => {
      this.current = null;
    });
    return this.current;
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

/** A single-row `INSERT INTO t (cols) VALUES (…)` and nothing after it: rows of such merge. */
const SINGLE_ROW_INSERT = /^\s*INSERT\s+INTO\s+[\w.]+\s*\([^)]*\)\s*VALUES\s*\(/i;

/**
 * A mergeable INSERT's text taken apart once: everything up to its row, and the row as
 * literal pieces around its placeholders, so a merged row is joined, not searched again.
 */
interface InsertShape {
  head: string;
  pieces: string[];
  /** pieces[i] is followed by placeholder $placeholders[i] (the last piece by none). */
  placeholders: number[];
  /** The highest placeholder: the number of values each row must bring. */
  width: number;
}

/** Shapes by statement text (texts are constants of the code; bounded all the same). */
const insert_shapes = new Map<string, InsertShape | null>();
const MAX_INSERT_SHAPES = 1_024;

function insertShape(text: string): InsertShape | null {
  let shape = insert_shapes.get(text);
  if (shape !== undefined) return shape;
  shape = parseInsertShape(text);
  if (insert_shapes.size >= MAX_INSERT_SHAPES) insert_shapes.clear();
  insert_shapes.set(text, shape);
  return shape;
}

function parseInsertShape(text: string): InsertShape | null {
  const m = SINGLE_ROW_INSERT.exec(text);
  if (!m) return null;
  const values_at = m[0].length - 1;
  const row = text.slice(values_at).trimEnd();
  // The VALUES list must be one parenthesised row that closes at the very end of the text.
  let depth = 0;
  for (let i = 0; i < row.length; i += 1) {
    const c = row[i];
    if (c === "'") return null; // literals are not expected, and not parsed here
    if (c === '(') depth += 1;
    if (c === ')' && --depth === 0 && i !== row.length - 1) return null;
  }
  if (depth !== 0) return null;
  const pieces: string[] = [];
  const placeholders: number[] = [];
  let last = 0;
  for (const p of row.matchAll(PLACEHOLDER)) {
    pieces.push(row.slice(last, p.index));
    placeholders.push(Number(p[1]));
    last = p.index + p[0].length;
  }
  pieces.push(row.slice(last));
  return { head: text.slice(0, values_at), pieces, placeholders, width: Math.max(0, ...placeholders) };
}

/** Whether `statement` is a single-row INSERT that `mergeInserts` can join with others of its text. */
export function isMergeableInsert(statement: Statement): boolean {
  return insertShape(statement.text) !== null;
}

/**
 * Joins single-row INSERTs of the same text into one multi-row INSERT each (placeholders
 * renumbered), in the order each text first appears: many phases' rows for one table cost
 * one statement, whose set-up (locks on the table and its indexes, its CHECK constraints
 * prepared) is paid once instead of once per row. The statements must not depend on one
 * another, as for `combineWrites`. Merged statements are unnamed: their text changes with
 * the row count.
 */
export function mergeInserts(inserts: readonly Statement[]): Statement[] {
  const groups = new Map<string, Statement[]>();
  for (const insert of inserts) {
    const group = groups.get(insert.text);
    if (group) group.push(insert);
    else groups.set(insert.text, [insert]);
  }
  const merged: Statement[] = [];
  for (const [text, group] of groups) {
    const shape = insertShape(text);
    assert(shape !== null, 'only single-row INSERTs merge');
    if (group.length === 1) {
      merged.push(group[0]!);
      continue;
    }
    const width = shape.width;
    // Else a row would silently take values of the next one.
    assert(
      group.every((g) => g.values.length === width),
      'every value of every row has its placeholder',
    );
    assert(width * group.length <= MAX_PARAMETERS, 'a merged insert stays within the protocol’s parameters');
    let text_out = shape.head;
    for (let row = 0; row < group.length; row += 1) {
      if (row > 0) text_out += ', ';
      const offset = row * width;
      for (let i = 0; i < shape.placeholders.length; i += 1) {
        text_out += `${shape.pieces[i]}$${shape.placeholders[i]! + offset}`;
      }
      text_out += shape.pieces[shape.placeholders.length];
    }
    merged.push({ text: text_out, values: group.flatMap((g) => g.values) });
  }
  return merged;
}

/**
 * Runs a DELETE that removes at most `batch_size` rows (its last parameter, after `values`)
 * until it removes fewer or `max_batches` have run: old rows go in short transactions, never
 * in one that holds its locks for long, and one run does a bounded amount. Returns how many.
 */
export async function deleteInBatches(
  db: Queryable,
  text: string,
  values: unknown[],
  batch_size: number,
  max_batches: number,
): Promise<number> {
  let deleted = 0;
  for (let batch = 0; batch < max_batches; batch += 1) {
    const { rowCount } = await db.query(text, [...values, batch_size]);
    deleted += rowCount ?? 0;
    if ((rowCount ?? 0) < batch_size) break;
  }
  return deleted;
}

/** PostgreSQL's protocol counts a statement's parameters in 16 bits. */
const MAX_PARAMETERS = 65_535;

/**
 * Statements one transaction may queue: a phase queues a few; a batch of phases one per
 * phase, its merged inserts and the ledger's (see GroupCommit).
 */
export const MAX_QUEUED = 256;

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
    const tx = new Tx(pool);
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
      await tx.release(broken);
    }
  }
  assert(false, 'withTransaction loop must return or throw');
}

/** The database answered a COMMIT by ending the transaction otherwise (ROLLBACK). */
class RolledBack extends Error {
  constructor(tag: string) {
    super(`transaction ended with ${tag}`);
  }
}

/** Whether `err` says the transaction was rolled back (so nothing of it committed). */
export function isRolledBack(err: unknown): boolean {
  return err instanceof RolledBack;
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
