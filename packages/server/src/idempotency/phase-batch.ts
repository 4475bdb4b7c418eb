import type { Tx } from '../db/pool.ts';
import { assert } from '../lib/errors.ts';
import { NextTurn } from '../lib/waker.ts';

/**
 * Group commit for atomic phases. Under load, many requests reach the same kind of phase
 * at once (recording an acquirer's answer, say), and each paid for a transaction of its
 * own: BEGIN, its reads, the ledger's reads and writes, the COMMIT and its WAL flush, and
 * a wait on the hot ledger accounts that every other payment also holds until its commit.
 * Phases marked for batching are instead run together in one transaction: their reads go
 * out on one connection at once, work they defer (the ledger booking) is done once for all
 * of them, and one COMMIT makes them all durable. Each still commits all or nothing, since
 * the batch does; each caller hears only once the batch is durable.
 *
 * If anything in a batch fails, the whole transaction rolls back and phases run again:
 * those that failed by themselves alone, exactly as without batching, the others together
 * once more (see PhaseBatcher.run). A phase must therefore not act outside its transaction
 * (which atomic phases never do); a failure costs one more try.
 */

export interface PhaseBatchOptions {
  /** Most phases in one transaction. */
  max_batch: number;
  /** Batch transactions at once (each holds a connection). */
  max_in_flight: number;
  /** Phases waiting for a batch; beyond this a phase commits alone at once. */
  max_queued: number;
}

export const DEFAULT_PHASE_BATCH_OPTIONS: PhaseBatchOptions = {
  max_batch: 64,
  max_in_flight: 2,
  max_queued: 10_000,
};

/** Work that phases of one batch hand over, to be done once for all of them before the commit. */
interface Deferred {
  items: unknown[];
  finish: (tx: Tx, items: unknown[]) => Promise<void>;
}

/** The batch a transaction runs, as its phases see it (see `phaseBatchOf`). */
export class PhaseBatch {
  private readonly deferred = new Map<object, Deferred>();

  /**
   * Hands `items` to the batch: `finish` runs once, after every phase of the batch has run
   * and before the commit, with the items of all of them in the order handed over. `key`
   * tells kinds of work apart (the ledger, say); finishers run in the order first used.
   */
  defer<T>(key: object, items: readonly T[], finish: (tx: Tx, items: T[]) => Promise<void>): void {
    let entry = this.deferred.get(key);
    if (!entry) {
      entry = { items: [], finish: finish as Deferred['finish'] };
      this.deferred.set(key, entry);
    }
    entry.items.push(...items);
  }

  async finish(tx: Tx): Promise<void> {
    for (const { items, finish } of this.deferred.values()) await finish(tx, items);
  }
}

const batches = new WeakMap<Tx, PhaseBatch>();

/** The batch `tx` belongs to, when a phase runs batched; undefined for a phase on its own. */
export function phaseBatchOf(tx: Tx): PhaseBatch | undefined {
  return batches.get(tx);
}

export function bindPhaseBatch(tx: Tx, batch: PhaseBatch): void {
  assert(!batches.has(tx), 'a transaction runs one batch');
  batches.set(tx, batch);
}

interface Waiting<J, R> {
  job: J;
  resolve: (result: R) => void;
  reject: (err: unknown) => void;
}

/**
 * The queue in front of the batch transactions. While batches are in flight, arriving jobs
 * wait and go together in the next one, so a batch's size follows the load with no timer:
 * alone, a job goes at the next turn of the event loop.
 */
export class PhaseBatcher<J, R> {
  private readonly queue: Waiting<J, R>[] = [];
  private in_flight = 0;
  /** On the next turn: the callers woken by the last batch send their next jobs first. */
  private readonly next_turn = new NextTurn(() => this.pump());

  constructor(
    private readonly opts: PhaseBatchOptions,
    /** Commits the jobs together; their results in order. Throws if the batch failed. */
    private readonly commitTogether: (jobs: J[]) => Promise<R[]>,
    /** Commits one job on its own (the way without batching). */
    private readonly commitAlone: (job: J) => Promise<R>,
    /** The object a job's phase changes (see `take`). */
    private readonly objectOf: (job: J) => string,
  ) {
    assert(opts.max_batch >= 1 && opts.max_in_flight >= 1, 'a batch holds a job and one may be in flight');
  }

  submit(job: J): Promise<R> {
    if (this.queue.length >= this.opts.max_queued) return this.commitAlone(job);
    return new Promise((resolve, reject) => {
      this.queue.push({ job, resolve, reject });
      this.next_turn.request();
    });
  }

  private pump(): void {
    while (this.in_flight < this.opts.max_in_flight && this.queue.length > 0) {
      const batch = this.take();
      this.in_flight += 1;
      void this.run(batch).finally(() => {
        this.in_flight -= 1;
        this.next_turn.request();
      });
    }
  }

  /**
   * Jobs from the head of the queue, at most one per object: phases of one batch do not see
   * the writes the others return, so two that change the same object must not share one.
   * A job left behind keeps its place for the next batch.
   */
  private take(): Waiting<J, R>[] {
    const batch: Waiting<J, R>[] = [];
    const objects = new Set<string>();
    const rest: Waiting<J, R>[] = [];
    for (const w of this.queue) {
      const object = this.objectOf(w.job);
      if (batch.length < this.opts.max_batch && !objects.has(object)) {
        objects.add(object);
        batch.push(w);
      } else {
        rest.push(w);
      }
    }
    this.queue.splice(0, this.queue.length, ...rest);
    return batch;
  }

  /**
   * A batch, then what its failure calls for: the phases that failed run alone and the rest
   * together once more (a client's mistake in one phase must not cost the others their
   * batch); any other failure runs every phase alone; a commit whose outcome is unknown is
   * answered with its error, never run again.
   */
  private async run(batch: Waiting<J, R>[], retries_left = 1): Promise<void> {
    if (batch.length < 2) {
      await Promise.all(batch.map((w) => this.alone(w)));
      return;
    }
    let results: R[];
    try {
      results = await this.commitTogether(batch.map((w) => w.job));
    } catch (err) {
      if (err instanceof BatchOutcomeUnknown) {
        for (const w of batch) w.reject(err.cause);
        return;
      }
      const failed = err instanceof PhasesFailed && retries_left > 0 ? new Set(err.indices) : null;
      if (!failed) {
        await Promise.all(batch.map((w) => this.alone(w)));
        return;
      }
      const rest = batch.filter((_, i) => !failed.has(i));
      await Promise.all([
        ...batch.filter((_, i) => failed.has(i)).map((w) => this.alone(w)),
        this.run(rest, retries_left - 1),
      ]);
      return;
    }
    assert(results.length === batch.length, 'a batch answers every job');
    batch.forEach((w, i) => {
      w.resolve(results[i]!);
    });
  }

  private alone(w: Waiting<J, R>): Promise<void> {
    return this.commitAlone(w.job).then(w.resolve, w.reject);
  }
}

/** Phases of a batch that failed (by their index), the batch rolled back: the others may go together again. */
export class PhasesFailed extends Error {
  constructor(readonly indices: readonly number[]) {
    super(`${indices.length} phase(s) of the batch failed`);
  }
}

/**
 * The batch's COMMIT was sent and its answer lost (the connection broke): it may have
 * committed, so its phases must not run again; each answers with `cause`, as a phase alone
 * would.
 */
export class BatchOutcomeUnknown extends Error {
  constructor(override readonly cause: unknown) {
    super('the outcome of a batch commit is unknown');
  }
}
