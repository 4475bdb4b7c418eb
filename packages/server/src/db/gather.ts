import { assert } from '../lib/errors.ts';
import type { Tx } from './pool.ts';

/**
 * Reads that the phases of one batch make at once, gathered into one statement. The phases
 * of a batch share a transaction and run side by side; each reads its own row (the intent
 * it records an answer for, say) with a statement of its own, which PostgreSQL parses,
 * plans and answers one by one. Requests of one kind made in the same burst of promise
 * callbacks (before the next tick, when the transaction's socket is uncorked too) are handed
 * to `read` together, and each caller gets its own result. The read leaves at the next tick,
 * behind statements sent directly in the same burst: a caller awaits it before it writes.
 */
export function gathered<I, R>(tx: Tx, kind: Gather<I, R>, item: I): Promise<R> {
  let kinds = pending.get(tx);
  if (!kinds) {
    kinds = new Map();
    pending.set(tx, kinds);
  }
  let group = kinds.get(kind) as Group<I, R> | undefined;
  if (!group) {
    const created: Group<I, R> = { items: [], waiters: [] };
    group = created;
    kinds.set(kind, created as unknown as Group<unknown, unknown>);
    process.nextTick(() => {
      kinds.delete(kind);
      void flush(tx, kind, created);
    });
  }
  assert(group.items.length < MAX_GATHERED, 'a gathered read takes a bounded number of items');
  group.items.push(item);
  return new Promise((resolve, reject) => group.waiters.push({ resolve, reject }));
}

/** A kind of gathered read: one statement (or a few, sent together) for many items. */
export interface Gather<I, R> {
  /** Each item's result, in the order of `items`. */
  read(tx: Tx, items: I[]): Promise<R[]>;
}

/** Far above a batch's phases (GroupCommitOptions.max_batch); a guard, not a tuning knob. */
const MAX_GATHERED = 1_000;

interface Group<I, R> {
  items: I[];
  waiters: { resolve: (r: R) => void; reject: (err: unknown) => void }[];
}

const pending = new WeakMap<Tx, Map<object, Group<unknown, unknown>>>();

async function flush<I, R>(tx: Tx, kind: Gather<I, R>, group: Group<I, R>): Promise<void> {
  try {
    const results = await kind.read(tx, group.items);
    assert(results.length === group.items.length, 'a gathered read answers every item');
    group.waiters.forEach((w, i) => {
      w.resolve(results[i]!);
    });
  } catch (err) {
    for (const w of group.waiters) w.reject(err);
  }
}
