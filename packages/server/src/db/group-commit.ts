import { assert } from '../lib/errors.ts';
import { NextTurn } from '../lib/waker.ts';

/**
 * Group commit: jobs that arrive while a batch commits wait and go together in the next
 * one, so a batch's size follows the load with no timer (alone, a job goes at the next turn
 * of the event loop). Atomic phases use it (idempotency/phase-batch.ts), and so do the
 * vault's card reads. Every limit is explicit: jobs per batch, batches in flight, jobs queued.
 */

export interface GroupCommitOptions {
  /** Most jobs in one batch. */
  max_batch: number;
  /** Batches at once (each holds a connection). */
  max_in_flight: number;
  /** Jobs waiting for a batch; beyond this a job commits alone at once (or see `refuse`). */
  max_queued: number;
  /**
   * Beyond `max_queued`, refuse the job with this error instead of committing it alone: for
   * work whose lone commits would only queue up again further down (a 503 tells the client
   * to come back).
   */
  refuse?: () => Error;
}

export const DEFAULT_GROUP_COMMIT_OPTIONS: GroupCommitOptions = {
  max_batch: 64,
  max_in_flight: 2,
  max_queued: 10_000,
};

interface Waiting<J, R> {
  job: J;
  resolve: (result: R) => void;
  reject: (err: unknown) => void;
}

/** The queue in front of the batches. */
export class GroupCommit<J, R> {
  private readonly queue: Waiting<J, R>[] = [];
  private in_flight = 0;
  /** On the next turn: the callers woken by the last batch send their next jobs first. */
  private readonly next_turn = new NextTurn(() => this.pump());

  constructor(
    private readonly opts: GroupCommitOptions,
    /** Commits the jobs together; their results in order. Throws if the batch failed. */
    private readonly commitTogether: (jobs: J[]) => Promise<R[]>,
    /** Commits one job on its own (the way without batching). */
    private readonly commitAlone: (job: J) => Promise<R>,
    /** The object a job changes (see `take`). */
    private readonly objectOf: (job: J) => string,
  ) {
    assert(opts.max_batch >= 1 && opts.max_in_flight >= 1, 'a batch holds a job and one may be in flight');
  }

  /** Jobs waiting for a batch. */
  get queued(): number {
    return this.queue.length;
  }

  submit(job: J): Promise<R> {
    if (this.queue.length >= this.opts.max_queued) {
      return this.opts.refuse ? Promise.reject(this.opts.refuse()) : this.commitAlone(job);
    }
    return new Promise((resolve, reject) => {
      this.queue.push({ job, resolve, reject });
      this.next_turn.request();
    });
  }

  private pump(): void {
    while (this.in_flight < this.opts.max_in_flight && this.queue.length > 0) {
      const batch = this.take();
      this.in_flight += 1;
      // `run` answers every job; should it throw all the same (a broken invariant), no caller is
      // left waiting: rejecting a job already answered does nothing.
      void this.run(batch)
        .catch((err) => {
          for (const w of batch) w.reject(err);
        })
        .finally(() => {
          this.in_flight -= 1;
          this.next_turn.request();
        });
    }
  }

  /**
   * Jobs from the head of the queue, at most one per object: jobs of one batch do not see
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
   * A batch, then what its failure calls for: the jobs that failed run alone and the rest
   * together once more (a client's mistake in one job must not cost the others their
   * batch); any other failure runs every job alone; a commit whose outcome is unknown is
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
      const failed = err instanceof JobsFailed && retries_left > 0 ? new Set(err.indices) : null;
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

/** Jobs of a batch that failed (by their index), the batch rolled back: the others may go together again. */
export class JobsFailed extends Error {
  constructor(readonly indices: readonly number[]) {
    super(`${indices.length} job(s) of the batch failed`);
  }
}

/**
 * The batch's COMMIT was sent and its answer lost (the connection broke): it may have
 * committed, so its jobs must not run again; each answers with `cause`, as a job alone
 * would.
 */
export class BatchOutcomeUnknown extends Error {
  constructor(override readonly cause: unknown) {
    super('the outcome of a batch commit is unknown');
  }
}
