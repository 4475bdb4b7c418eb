import { createHash, createHmac, randomUUID } from 'node:crypto';
import pg from 'pg';
import type { Logger } from 'pino';
import {
  BatchOutcomeUnknown,
  DEFAULT_GROUP_COMMIT_OPTIONS,
  GroupCommit,
  type GroupCommitOptions,
  JobsFailed,
} from '../db/group-commit.ts';
import {
  combineWrites,
  deleteInBatches,
  isMergeableInsert,
  isRetryableConflict,
  isRolledBack,
  isUniqueViolation,
  MAX_QUEUED,
  mergeInserts,
  type Pool,
  type Statement,
  type Tx,
  withTransaction,
} from '../db/pool.ts';
import { canonicalJson } from '../lib/canonical-json.ts';
import {
  assert,
  idempotencyKeyInUse,
  idempotencyMismatch,
  internalError,
  MonetaError,
} from '../lib/errors.ts';
import { bindPhaseBatch, PhaseBatch } from './phase-batch.ts';
import {
  type ExecutionResult,
  FINISHED,
  type IdempotentOperation,
  type PhaseContext,
  type PhaseOptions,
  type PhaseOutcome,
  type RequestScope,
  STARTED,
  type StoredResponse,
} from './types.ts';

/** Upper bound on steps one execution may run; a loop beyond this is a bug in an operation. */
const MAX_STEPS_PER_EXECUTION = 64;
/** The key row can vanish (reaped) or appear (a racing request) between our reads; retry a few times. */
const MAX_ACQUIRE_ATTEMPTS = 3;
export const MAX_KEY_LENGTH = 255;

export interface RequestInfo {
  method: string;
  path: string;
}

/** A key row's primary key. */
interface KeyRef {
  merchant_id: string;
  livemode: boolean;
  key: string;
}

interface KeyIdentity {
  key: string;
  fingerprint: Buffer;
  request: RequestInfo;
}

/**
 * How the run is tied to storage:
 * - `ephemeral`: no Idempotency-Key; phases are plain transactions.
 * - `fresh`: a new key; the first phase inserts the key row in its own transaction, so a
 *   concurrent request with the same key waits on the unique index and then replays.
 * - `locked`: the key row exists and this run holds its lock (`locked_by = token`).
 */
type Binding =
  | { mode: 'ephemeral' }
  | { mode: 'fresh'; identity: KeyIdentity; token: string }
  | { mode: 'locked'; key: string; token: string };

/** The key row appeared under us: another request with the same key got there first. */
class KeyConflict extends Error {}
/** Our lock was taken over (we were too slow, past the lock timeout). */
class LockLost extends Error {}

class Run<P> implements PhaseContext<P> {
  recovery_point: string;
  state: Record<string, unknown>;
  response: StoredResponse | null = null;
  /** This execution's answer when the request stays unfinished (see PhaseOutcome.provisional). */
  provisional: StoredResponse | null = null;

  constructor(
    private readonly engine: IdempotencyEngine,
    readonly operation: IdempotentOperation<P>,
    readonly params: P,
    readonly scope: RequestScope,
    public binding: Binding,
    recovery_point = STARTED,
    state: Record<string, unknown> = {},
  ) {
    this.recovery_point = recovery_point;
    this.state = state;
  }

  async atomicPhase(fn: (tx: Tx) => Promise<PhaseOutcome>, opts?: PhaseOptions): Promise<void> {
    assert(this.response === null, 'no phase runs after the response is decided');
    const outcome =
      opts?.batch !== undefined
        ? await this.engine.commitBatched(this, fn, opts.batch)
        : await this.engine.commitPhase(this, fn);
    if ('response' in outcome) {
      this.response = outcome.response;
      this.recovery_point = FINISHED;
    } else {
      assert(outcome.recovery_point !== STARTED, 'a phase moves the recovery point forward');
      this.recovery_point = outcome.recovery_point;
      this.state = { ...this.state, ...outcome.state };
      this.provisional = outcome.provisional ?? null;
    }
  }
}

export interface EngineOptions {
  lock_timeout_s: number;
  log: Logger;
  /** Told of each phase's writes once they are durable (the outbox dispatcher looks at once). */
  onCommit?: (writes: readonly Statement[]) => void;
  /** Group commit of phases marked `batch` (see GroupCommit); defaults otherwise. */
  phase_batch?: GroupCommitOptions;
  /** Told of each batch of two or more phases: how many, and whether it committed (or rolled back). */
  onBatch?: (phases: number, committed: boolean) => void;
}

/** A phase waiting for its batch. */
interface BatchJob {
  run: Run<unknown>;
  fn: (tx: Tx) => Promise<PhaseOutcome>;
  /** What the phase changes (PhaseOptions.batch): one phase per object in a batch. */
  object: string;
}

export class IdempotencyEngine {
  private readonly operations = new Map<string, IdempotentOperation<unknown>>();
  private readonly batcher: GroupCommit<BatchJob, PhaseOutcome>;

  constructor(
    private readonly pool: Pool,
    private readonly opts: EngineOptions,
  ) {
    const batch_opts = opts.phase_batch ?? DEFAULT_GROUP_COMMIT_OPTIONS;
    // A batch queues a statement per phase; the other half is for merged inserts and deferred work.
    assert(batch_opts.max_batch <= MAX_QUEUED / 2, 'a batch queues within its transaction’s bound');
    this.batcher = new GroupCommit(
      batch_opts,
      (jobs) => this.commitTogether(jobs),
      (job) => this.commitPhase(job.run, job.fn),
      (job) => job.object,
    );
  }

  /** Operations must be registered so the completer can resume them by name. */
  register<P>(operation: IdempotentOperation<P>): void {
    assert(operation.steps[STARTED] !== undefined, `operation ${operation.name} has a '${STARTED}' step`);
    this.operations.set(operation.name, operation as IdempotentOperation<unknown>);
  }

  /**
   * Runs an operation under an optional Idempotency-Key. Params must already be
   * validated: a validation failure is never stored.
   */
  async execute<P>(
    operation: IdempotentOperation<P>,
    params: P,
    scope: RequestScope,
    key: string | undefined,
    request: RequestInfo,
  ): Promise<ExecutionResult> {
    if (key === undefined) {
      const run = new Run(this, operation, params, scope, { mode: 'ephemeral' });
      const response = await this.drive(run);
      return { ...response, replayed: false, original_request_id: scope.request_id };
    }
    assert(key.length > 0 && key.length <= MAX_KEY_LENGTH, 'idempotency key length was validated');
    const identity: KeyIdentity = {
      key,
      request,
      fingerprint: fingerprintOf(request, params, operation.fingerprint_key?.()),
    };
    for (let attempt = 1; attempt <= MAX_ACQUIRE_ATTEMPTS; attempt += 1) {
      try {
        const run = new Run(this, operation, params, scope, { mode: 'fresh', identity, token: randomUUID() });
        const response = await this.drive(run);
        return { ...response, replayed: false, original_request_id: scope.request_id };
      } catch (err) {
        if (!(err instanceof KeyConflict)) throw err;
      }
      const existing = await this.acquireExisting(operation, params, scope, identity);
      if (existing === 'vanished') continue;
      if ('replay' in existing) return existing.replay;
      const response = await this.drive(existing.run);
      return { ...response, replayed: false, original_request_id: scope.request_id };
    }
    throw idempotencyKeyInUse(key);
  }

  /** Runs steps from the run's recovery point until a response is decided. */
  private async drive<P>(run: Run<P>): Promise<StoredResponse> {
    try {
      for (let steps = 0; steps < MAX_STEPS_PER_EXECUTION; steps += 1) {
        if (run.response) return run.response;
        if (run.provisional) return run.provisional;
        const step = run.operation.steps[run.recovery_point];
        assert(step, `operation ${run.operation.name} has a step for recovery point '${run.recovery_point}'`);
        const before = run.recovery_point;
        await step(run);
        assert(
          run.response || run.provisional || run.recovery_point !== before,
          `step '${before}' advanced the recovery point`,
        );
      }
      if (run.response) return run.response;
      if (run.provisional) return run.provisional;
      throw new Error(
        `operation ${run.operation.name} did not finish within ${MAX_STEPS_PER_EXECUTION} steps`,
      );
    } catch (err) {
      if (err instanceof KeyConflict) throw err;
      if (err instanceof LockLost) throw idempotencyKeyInUse('(taken over by a newer attempt)');
      if (run.binding.mode === 'ephemeral') throw err;
      return this.finishWithError(run, err);
    }
  }

  /**
   * Once work has started, the first response is stored even when it is an error, so a
   * retry gets the same answer (Stripe semantics). An unexpected error becomes a 500.
   */
  private async finishWithError<P>(run: Run<P>, err: unknown): Promise<StoredResponse> {
    const error = err instanceof MonetaError ? err : internalError();
    if (!(err instanceof MonetaError)) {
      this.opts.log.error({ err, operation: run.operation.name }, 'idempotent operation failed');
    }
    const response = { status: error.status_code, body: JSON.stringify(error.toBody()) };
    try {
      await this.commitPhase(run, async () => ({ response }));
    } catch (storeErr) {
      if (storeErr instanceof KeyConflict) throw storeErr;
      // Could not store (database gone?): the lock expires and a retry or the completer resumes.
      this.opts.log.error(
        { err: storeErr, operation: run.operation.name },
        'could not store idempotent response',
      );
    }
    return response;
  }

  /**
   * One atomic phase: `fn`'s writes and the key row's new state commit together. The
   * phase's declared `writes`, the key row's statement and the COMMIT leave in one write
   * (see Tx), so a fresh key is inserted without ON CONFLICT: a duplicate must fail the
   * whole transaction, never commit the phase's writes without it.
   */
  async commitPhase<P>(run: Run<P>, fn: (tx: Tx) => Promise<PhaseOutcome>): Promise<PhaseOutcome> {
    const binding = run.binding;
    let result: PhaseOutcome;
    try {
      result = await withTransaction(this.pool, async (tx) => {
        const { writes = [], ...outcome } = await fn(tx);
        if (binding.mode === 'ephemeral') {
          await tx.commit(writes);
          this.opts.onCommit?.(writes);
          return outcome;
        }
        const key_result = await tx.commit([...writes, this.keyStatement(run, outcome)!]);
        assert(key_result?.rowCount === 1, 'the key row statement wrote its row');
        this.opts.onCommit?.(writes);
        return outcome;
      });
    } catch (err) {
      if (binding.mode === 'fresh' && isUniqueViolation(err) && isKeyConstraint(err)) throw new KeyConflict();
      if (binding.mode === 'locked' && (err as { code?: string }).code === LOCK_LOST_SQLSTATE)
        throw new LockLost();
      throw err;
    }
    this.committed(run, result);
    return result;
  }

  /**
   * A phase that may share its transaction with others of its kind (see GroupCommit). A
   * fresh key's insert fails the whole batch when the key exists (a request repeated at
   * once); the phase then runs alone, where that failure is told apart (KeyConflict).
   */
  commitBatched<P>(
    run: Run<P>,
    fn: (tx: Tx) => Promise<PhaseOutcome>,
    object: string,
  ): Promise<PhaseOutcome> {
    return this.batcher.submit({ run: run as Run<unknown>, fn, object });
  }

  /**
   * Phases together in one transaction (see runTogether). A failure rolls the batch back and
   * tells the batcher what it calls for (see GroupCommit.run): phases that failed by
   * themselves (JobsFailed), a commit of unknown outcome (BatchOutcomeUnknown), or anything
   * else; each phase that runs again alone is answered there.
   */
  private async commitTogether(jobs: BatchJob[]): Promise<PhaseOutcome[]> {
    let decided: PhaseOutcome[];
    try {
      decided = await withTransaction(this.pool, (tx) => this.runTogether(tx, jobs));
    } catch (err) {
      this.opts.log.debug({ err, phases: jobs.length }, 'phase batch rolled back; its phases run again');
      this.opts.onBatch?.(jobs.length, false);
      throw err;
    }
    // Committed: from here nothing may throw, or the batcher would run the phases again.
    this.quietly(() => this.opts.onBatch?.(jobs.length, true));
    return decided.map(({ writes = [], ...outcome }, i) => {
      this.committed(jobs[i]!.run, outcome);
      this.quietly(() => this.opts.onCommit?.(writes));
      return outcome;
    });
  }

  /** Runs a listener whose failure must not undo what it is told of (logged instead). */
  private quietly(listener: () => void): void {
    try {
      listener();
    } catch (err) {
      this.opts.log.error({ err }, 'a commit listener failed');
    }
  }

  /**
   * One try of a batch (withTransaction tries again after a deadlock, in a new transaction):
   * the phases run at once on its connection; the work they deferred runs once; their writes
   * go out, single-row INSERTs of one kind merged (`mergeInserts`: the phases' events, say),
   * the rest one statement per phase with its key row; one COMMIT ends them all.
   */
  private async runTogether(tx: Tx, jobs: BatchJob[]): Promise<PhaseOutcome[]> {
    const batch = new PhaseBatch();
    bindPhaseBatch(tx, batch);
    const decided = outcomesOrFailure(await Promise.allSettled(jobs.map((job) => job.fn(tx))));
    // The deferred work first (the ledger booking locks its accounts), then the phases'
    // writes: the order in which a phase alone takes its locks (intent, accounts, the rest),
    // so a batch and a phase alone cannot wait for each other in a cycle.
    await batch.finish(tx);
    // Every check is made before the COMMIT, by the statements themselves: a key row update
    // raises when its lock was taken over (moneta_assert_rows), a fresh key's plain INSERT
    // (merged) fails on a duplicate.
    const inserts: Statement[] = [];
    decided.forEach(({ writes = [], ...outcome }, i) => {
      const key = this.keyStatement(jobs[i]!.run, outcome);
      const others: Statement[] = [];
      for (const w of key ? [...writes, key] : writes) (isMergeableInsert(w) ? inserts : others).push(w);
      if (others.length > 0) tx.queue(combineWrites(others));
    });
    // Kinds in the order each first appears; none of these tables refers to another by a
    // foreign key, which would need its referent's statement first.
    for (const insert of mergeInserts(inserts)) tx.queue(insert);
    try {
      await tx.commit();
    } catch (err) {
      // The database answered (a statement failed, the COMMIT rolled back): nothing committed.
      // Otherwise the connection broke with the COMMIT sent, and the batch may have committed.
      if (err instanceof pg.DatabaseError || isRolledBack(err)) throw err;
      throw new BatchOutcomeUnknown(err);
    }
    return decided;
  }

  /** The key row's statement for a phase's outcome: insert (fresh key), update (locked), none. */
  private keyStatement<P>(run: Run<P>, outcome: PhaseOutcome): Statement | null {
    const binding = run.binding;
    if (binding.mode === 'ephemeral') return null;
    return binding.mode === 'fresh'
      ? this.insertKeyRow(run, binding, outcome)
      : this.updateKeyRow(run, binding, outcome);
  }

  /** After a phase committed: a fresh key's row now exists, and this run holds its lock. */
  private committed<P>(run: Run<P>, outcome: PhaseOutcome): void {
    const binding = run.binding;
    if (binding.mode === 'fresh' && !('response' in outcome)) {
      run.binding = { mode: 'locked', key: binding.identity.key, token: binding.token };
    }
  }

  private insertKeyRow<P>(
    run: Run<P>,
    binding: Extract<Binding, { mode: 'fresh' }>,
    outcome: PhaseOutcome,
  ): Statement {
    const finished = 'response' in outcome;
    const { identity, token } = binding;
    return {
      name: 'moneta_idempotency_insert',
      text: `INSERT INTO idempotency_keys
         (merchant_id, livemode, idempotency_key, operation, request_method, request_path, request_fingerprint,
          request_params, request_id, api_key_id, locked_at, locked_by, recovery_point, phase_state,
          response_status, response_body, completed_at)
       VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10,
               CASE WHEN $15::int IS NULL AND NOT $16::boolean THEN now() END,
               CASE WHEN $15::int IS NULL AND NOT $16::boolean THEN $11::uuid END,
               $12, $13, $15, $14, CASE WHEN $15::int IS NULL THEN NULL ELSE now() END)`,
      values: [
        run.scope.merchant_id,
        run.scope.livemode,
        identity.key,
        run.operation.name,
        identity.request.method,
        identity.request.path,
        identity.fingerprint,
        // Params are kept only for the completer, which resumes unfinished requests: a request
        // finished in its first phase never needs them.
        run.operation.persist_params && !finished ? JSON.stringify(run.params) : null,
        run.scope.request_id,
        run.scope.api_key_id,
        token,
        finished ? FINISHED : outcome.recovery_point,
        JSON.stringify(finished ? run.state : { ...run.state, ...outcome.state }),
        finished ? outcome.response.body : null,
        finished ? outcome.response.status : null,
        !finished && outcome.provisional !== undefined,
      ],
    };
  }

  /**
   * Each phase also refreshes locked_at: a request that keeps making progress keeps its
   * lock. Losing the lock must undo the phase, and the statement rides with the COMMIT, so
   * the check is in the statement: no row updated raises (MN001) and the COMMIT rolls back.
   */
  private updateKeyRow<P>(
    run: Run<P>,
    binding: Extract<Binding, { mode: 'locked' }>,
    outcome: PhaseOutcome,
  ): Statement {
    const finished = 'response' in outcome;
    return {
      name: 'moneta_idempotency_update',
      text: `WITH updated AS (
         UPDATE idempotency_keys
            SET recovery_point = $5,
                phase_state = phase_state || $6::jsonb,
                response_status = $7, response_body = $8,
                locked_at = CASE WHEN $7::int IS NULL AND NOT $10::boolean THEN now() END,
                locked_by = CASE WHEN $7::int IS NULL AND NOT $10::boolean THEN locked_by END,
                completed_at = CASE WHEN $7::int IS NULL THEN NULL ELSE now() END,
                last_run_at = now()
          WHERE merchant_id = $1 AND livemode = $2 AND idempotency_key = $3 AND locked_by = $4
          RETURNING 1)
       SELECT moneta_assert_rows((SELECT count(*) FROM updated), 1, $9) AS ok`,
      values: [
        run.scope.merchant_id,
        run.scope.livemode,
        binding.key,
        binding.token,
        finished ? FINISHED : outcome.recovery_point,
        JSON.stringify(finished ? {} : (outcome.state ?? {})),
        finished ? outcome.response.status : null,
        finished ? outcome.response.body : null,
        LOCK_LOST_SQLSTATE,
        !finished && outcome.provisional !== undefined,
      ],
    };
  }

  /**
   * The key row exists. Decide, under the row lock: a parameter mismatch (400), a stored
   * response (replay), a live lock (409), or an abandoned request we take over and resume.
   */
  private async acquireExisting<P>(
    operation: IdempotentOperation<P>,
    params: P,
    scope: RequestScope,
    identity: KeyIdentity,
  ): Promise<'vanished' | { replay: ExecutionResult } | { run: Run<P> }> {
    const token = randomUUID();
    return withTransaction(this.pool, async (tx) => {
      const { rows } = await tx.query(
        `SELECT request_fingerprint, response_status, response_body, request_id, recovery_point, phase_state,
                locked_at IS NOT NULL AND locked_at > now() - make_interval(secs => $4) AS lock_live
           FROM idempotency_keys WHERE merchant_id = $1 AND livemode = $2 AND idempotency_key = $3 FOR UPDATE`,
        [scope.merchant_id, scope.livemode, identity.key, this.opts.lock_timeout_s],
      );
      const row = rows[0];
      if (!row) return 'vanished' as const;
      if (!identity.fingerprint.equals(row.request_fingerprint)) throw idempotencyMismatch(identity.key);
      if (row.response_status !== null) {
        return {
          replay: {
            status: row.response_status,
            body: row.response_body,
            replayed: true,
            original_request_id: row.request_id,
          },
        };
      }
      if (row.lock_live) throw idempotencyKeyInUse(identity.key);
      await tx.query(
        `UPDATE idempotency_keys SET locked_at = now(), locked_by = $4, last_run_at = now()
          WHERE merchant_id = $1 AND livemode = $2 AND idempotency_key = $3`,
        [scope.merchant_id, scope.livemode, identity.key, token],
      );
      this.opts.log.info(
        { operation: operation.name, recovery_point: row.recovery_point },
        'resuming idempotent request',
      );
      const binding: Binding = { mode: 'locked', key: identity.key, token };
      return { run: new Run(this, operation, params, scope, binding, row.recovery_point, row.phase_state) };
    });
  }

  /**
   * The completer: finishes requests whose process died between phases (lock expired,
   * no response) by resuming them from their recovery point with their stored params.
   * Bounded per call; returns how many it finished.
   */
  async completeAbandoned(max_requests: number): Promise<number> {
    const { rows } = await this.pool.query(
      `SELECT merchant_id, livemode, idempotency_key FROM idempotency_keys
        WHERE response_status IS NULL AND request_params IS NOT NULL
          AND (locked_at IS NULL OR locked_at < now() - make_interval(secs => $1))
        ORDER BY created_at LIMIT $2`,
      [this.opts.lock_timeout_s, max_requests],
    );
    let completed = 0;
    for (const row of rows) {
      const ref: KeyRef = { merchant_id: row.merchant_id, livemode: row.livemode, key: row.idempotency_key };
      // One request that cannot be finished must not keep the others waiting.
      try {
        const run = await this.takeOverAbandoned(ref);
        if (!run) continue;
        await this.drive(run);
        completed += 1;
      } catch (err) {
        this.opts.log.error(
          { err, merchant_id: ref.merchant_id, idempotency_key: ref.key },
          'completer could not finish a request',
        );
      }
    }
    return completed;
  }

  private async takeOverAbandoned(ref: KeyRef): Promise<Run<unknown> | null> {
    const token = randomUUID();
    const { rows } = await this.pool.query(
      `UPDATE idempotency_keys SET locked_at = now(), locked_by = $4, last_run_at = now()
        WHERE merchant_id = $1 AND livemode = $2 AND idempotency_key = $3 AND response_status IS NULL
          AND (locked_at IS NULL OR locked_at < now() - make_interval(secs => $5))
        RETURNING operation, request_params, api_key_id, request_id, recovery_point, phase_state`,
      [ref.merchant_id, ref.livemode, ref.key, token, this.opts.lock_timeout_s],
    );
    const row = rows[0];
    if (!row) return null; // a client retry took it over first
    const operation = this.operations.get(row.operation);
    if (!operation) {
      this.opts.log.error({ operation: row.operation }, 'completer found a request of an unknown operation');
      return null;
    }
    this.opts.log.warn(
      { operation: row.operation, recovery_point: row.recovery_point },
      'completing abandoned request',
    );
    const scope: RequestScope = {
      merchant_id: ref.merchant_id,
      livemode: ref.livemode,
      api_key_id: row.api_key_id,
      request_id: row.request_id,
    };
    const binding: Binding = { mode: 'locked', key: ref.key, token };
    return new Run(this, operation, row.request_params, scope, binding, row.recovery_point, row.phase_state);
  }

  /** Deletes keys older than the retention, in bounded batches. Returns how many went. */
  async reap(retention_hours: number, batch_size = 5_000, max_batches = 200): Promise<number> {
    assert(retention_hours >= 0, 'retention is not negative');
    return deleteInBatches(
      this.pool,
      `DELETE FROM idempotency_keys WHERE (merchant_id, livemode, idempotency_key) IN (
         SELECT merchant_id, livemode, idempotency_key FROM idempotency_keys
          WHERE created_at < now() - make_interval(hours => $1) LIMIT $2)`,
      [retention_hours],
      batch_size,
      max_batches,
    );
  }
}

/**
 * The phases' outcomes, or what their failure calls for: a conflict the database asks to
 * retry (deadlock, serialization) as it is, for withTransaction to run the batch again;
 * otherwise the phases that failed by themselves, not those that only found the transaction
 * aborted by another's error (25P02).
 */
function outcomesOrFailure(settled: PromiseSettledResult<PhaseOutcome>[]): PhaseOutcome[] {
  const failures = settled.flatMap((r, i) =>
    r.status === 'rejected' ? [{ i, err: r.reason as unknown }] : [],
  );
  if (failures.length === 0) return settled.map((r) => (r as PromiseFulfilledResult<PhaseOutcome>).value);
  const retryable = failures.find((f) => isRetryableConflict(f.err));
  if (retryable) throw retryable.err;
  const own = failures.filter((f) => (f.err as { code?: string }).code !== IN_FAILED_TRANSACTION);
  throw new JobsFailed((own.length > 0 ? own : failures).map((f) => f.i));
}

const IN_FAILED_TRANSACTION = '25P02';

const KEY_CONSTRAINT = 'idempotency_keys_pkey';
/** Raised by moneta_assert_rows (migration 0002) when the lock holder changed under us. */
const LOCK_LOST_SQLSTATE = 'MN001';

function isKeyConstraint(err: unknown): boolean {
  return (err as { constraint?: string }).constraint === KEY_CONSTRAINT;
}

function fingerprintOf(request: RequestInfo, params: unknown, key: Buffer | undefined): Buffer {
  const text = canonicalJson({ method: request.method, path: request.path, params });
  return (key ? createHmac('sha256', key) : createHash('sha256')).update(text).digest();
}
