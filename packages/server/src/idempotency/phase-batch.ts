import type { Tx } from '../db/pool.ts';
import { assert } from '../lib/errors.ts';

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
 * once more (see GroupCommit.run). A phase must therefore not act outside its transaction
 * (which atomic phases never do); a failure costs one more try.
 */

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
