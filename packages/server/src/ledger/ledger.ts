import {
  combineWrites,
  isRetryableConflict,
  isUniqueViolation,
  OrderedConnection,
  type Pool,
  type Statement,
  type Tx,
  withTransaction,
} from '../db/pool.ts';
import { assert } from '../lib/errors.ts';
import { NextTurn } from '../lib/waker.ts';
import {
  applyAccounts,
  applyExpiry,
  applyTransfers,
  balancesOf,
  type TransferBatchOutcome,
  type TransferBatchState,
} from './engine.ts';
import {
  anyTransferExists,
  COPY_TRANSFERS,
  cachedTransferBatch,
  findExpiredPending,
  insertAccounts,
  loadLedgerState,
  loadTransferBatch,
  lookupAccounts,
  lookupTransfers,
  STALE_SQLSTATE,
  transferBatchWrites,
  transfersCopyData,
} from './store.ts';
import {
  type Account,
  type AccountInput,
  AMOUNT_MAX,
  type Balances,
  type CreateAccountResult,
  type CreateTransferResult,
  CreateTransferResults,
  MAX_BATCH,
  type Transfer,
  TransferFlags,
  type TransferInput,
  ZERO_ID,
} from './types.ts';

export interface LedgerOptions {
  /** Most transfers in one database transaction. */
  max_batch: number;
  /**
   * Batches committing at once. Beyond the first, only *pipelined* batches go out: those
   * whose accounts are all in this process's cache. Small ones are one statement each, sent
   * on one connection, so the database runs them in order while the next is computed; COPY
   * ones stream on connections of their own and each commits after the one before.
   */
  max_in_flight: number;
  /** Transfers waiting for a batch; beyond this, createTransfers refuses (back-pressure). */
  max_queued: number;
  /**
   * A pool created with `pipeline: false`, for COPY: batches of at least `copy_threshold`
   * transfers stream their rows with COPY, about 3× faster than an `unnest` insert. Without
   * it every batch uses the insert.
   */
  copy_pool?: Pool | undefined;
  copy_threshold?: number;
}

// Two: while one pipelined batch runs in the database the next is computed (the process and
// the database each keep a core busy); more measured no faster (see docs/ledger.md).
export const DEFAULT_LEDGER_OPTIONS: LedgerOptions = {
  max_batch: MAX_BATCH,
  max_in_flight: 2,
  max_queued: 100_000,
};

/** A duplicate id raced us from another batch; the retry sees it stored and answers `exists`. */
const MAX_BATCH_ATTEMPTS = 3;
/** Accounts whose committed balances a process keeps, so hot ones are never read again. */
const MAX_KNOWN_ACCOUNTS = 100_000;
/** Below this many transfers the one-statement insert wins: COPY costs extra round trips. */
const DEFAULT_COPY_THRESHOLD = 256;

interface Waiting {
  inputs: readonly TransferInput[];
  resolve: (results: CreateTransferResult[]) => void;
  reject: (err: unknown) => void;
}

/** Strictly increasing nanosecond timestamps, so every event of this process has its own. */
function nanoClock(): () => bigint {
  let last = 0n;
  return () => {
    const now = BigInt(Date.now()) * 1_000_000n;
    last = now > last ? now : last + 1n;
    return last;
  };
}

/**
 * The ledger as a library. `createTransfers` calls from any number of callers are queued
 * and grouped into batches: while one batch commits, the next gathers whatever arrives, so
 * the batch size follows the load with no timer (the wait is bounded by one batch's
 * commit). Each caller's transfers stay together and in order, so linked chains are never
 * split, and each caller gets its results only once its batch is durable.
 */
export class Ledger {
  private readonly queue: Waiting[] = [];
  private queued = 0;
  private in_flight = 0;
  /** Of those, batches formed from the cache (sent on the ordered connection, or COPY ones). */
  private pipelined_in_flight = 0;
  /** Of those, COPY batches (see commitCopyPipelined): never in flight beside small ones. */
  private copy_in_flight = 0;
  /** Settles when the last COPY batch formed from the cache has committed or failed. */
  private copy_tail: Promise<void> = Promise.resolve();
  /**
   * Batches start on the next turn of the event loop, never inline: callers just answered
   * send their next transfers from their continuations, and starting at once would cut a
   * batch of one and leave the rest for the batch after (under 20 callers, batches
   * alternated between 19 transfers and 1).
   */
  private readonly next_turn = new NextTurn(() => this.pump());
  /** Transfer ids of the batches committing now (see pump). */
  private readonly in_flight_ids = new Set<string>();
  private readonly clock = nanoClock();
  /** Accounts as this process's latest batch leaves them (bounded; see commitBatch). */
  private readonly known = new Map<string, Account>();
  private readonly ordered: OrderedConnection;

  constructor(
    readonly pool: Pool,
    private readonly opts: LedgerOptions = DEFAULT_LEDGER_OPTIONS,
  ) {
    assert(opts.max_batch >= 1 && opts.max_batch <= MAX_BATCH, 'batch size within 1..MAX_BATCH');
    assert(opts.max_in_flight >= 1, 'at least one batch in flight');
    // Each COPY batch in flight holds a connection while it waits for the one before.
    assert(
      !opts.copy_pool || (opts.copy_pool.options.max ?? 0) >= opts.max_in_flight,
      'the COPY pool has a connection for every batch in flight',
    );
    this.ordered = new OrderedConnection(pool);
  }

  async createAccounts(inputs: readonly AccountInput[]): Promise<CreateAccountResult[]> {
    assert(inputs.length <= MAX_BATCH, 'at most MAX_BATCH accounts per call');
    if (inputs.length === 0) return [];
    for (let attempt = 1; ; attempt += 1) {
      try {
        return await withTransaction(this.pool, async (tx) => {
          const found = await lookupAccounts(
            tx,
            inputs.map((a) => a.id),
          );
          const existing = new Map(found.map((a) => [a.id, a]));
          const outcome = applyAccounts(inputs, existing, this.clock);
          const insert = insertAccounts(outcome);
          await tx.commit(insert ? [insert] : []);
          return outcome.results;
        });
      } catch (err) {
        if (attempt < MAX_BATCH_ATTEMPTS && isUniqueViolation(err)) continue;
        throw err;
      }
    }
  }

  /** Results in the order of `inputs`, once the batch holding them has committed. */
  createTransfers(inputs: readonly TransferInput[]): Promise<CreateTransferResult[]> {
    assert(inputs.length <= this.opts.max_batch, 'at most max_batch transfers per call');
    if (inputs.length === 0) return Promise.resolve([]);
    if (this.queued + inputs.length > this.opts.max_queued) {
      return Promise.reject(new LedgerOverloaded(this.queued));
    }
    return new Promise((resolve, reject) => {
      this.queue.push({ inputs, resolve, reject });
      this.queued += inputs.length;
      this.next_turn.request();
    });
  }

  lookupAccounts(ids: readonly string[]): Promise<Account[]> {
    return lookupAccounts(this.pool, ids);
  }

  lookupTransfers(ids: readonly string[]): Promise<Transfer[]> {
    return lookupTransfers(this.pool, ids);
  }

  /**
   * Releases up to `max` pending transfers whose timeout has passed, in one transaction.
   * Returns how many expired (fewer than asked means none are left).
   */
  async expirePending(max: number): Promise<number> {
    assert(max >= 1 && max <= MAX_BATCH, 'expiry batch within 1..MAX_BATCH');
    const now = this.clock();
    const ids = await findExpiredPending(this.pool, now, max);
    if (ids.length === 0) return 0;
    return withTransaction(this.pool, async (tx) => {
      const state = await loadLedgerState(tx, ids, new Set(ids), new Set());
      const original = balancesByAccount(state);
      const outcome = applyExpiry(ids, state, now);
      assertBatchInvariants(original, state, outcome);
      await tx.commit(transferBatchWrites(outcome, state, original, now));
      this.remember(outcome, state);
      return outcome.pending_changes.size;
    });
  }

  /**
   * Transfers that must commit together with other rows (a payment's state, its events):
   * the rules run inside `tx` with the accounts locked in id order, as in the careful pass,
   * and the caller commits the returned writes with its own, so the ledger and the payment
   * can never disagree. The accounts are forgotten from the batch writer's cache, whose
   * balances this transaction makes stale.
   */
  async prepareInTransaction(
    tx: Tx,
    inputs: readonly TransferInput[],
  ): Promise<{ results: CreateTransferResult[]; writes: Statement[] }> {
    assert(inputs.length >= 1 && inputs.length <= MAX_BATCH, 'a prepared batch within 1..MAX_BATCH');
    const state = await loadTransferBatch(tx, inputs, true);
    const original = balancesByAccount(state);
    const outcome = applyTransfers(inputs, state, this.clock);
    assertBatchInvariants(original, state, outcome);
    for (const id of state.accounts.keys()) this.known.delete(id);
    return { results: outcome.results, writes: transferBatchWrites(outcome, state, original, this.clock()) };
  }

  /** Whether a batch of `n` transfers streams them with COPY. */
  private copies(n: number): boolean {
    return this.opts.copy_pool !== undefined && n >= (this.opts.copy_threshold ?? DEFAULT_COPY_THRESHOLD);
  }

  /**
   * Balances of the accounts a batch touched, as that batch leaves them: the next batch need
   * not read them. Set just before the batch commits; forgotten if it fails.
   */
  private remember(outcome: TransferBatchOutcome, state: TransferBatchState): void {
    for (const id of outcome.touched) {
      if (!this.known.has(id) && this.known.size >= MAX_KNOWN_ACCOUNTS) {
        this.known.delete(this.known.keys().next().value!); // the oldest entry
      }
      this.known.set(id, { ...state.accounts.get(id)! });
    }
  }

  private forget(t: TransferInput): void {
    this.known.delete(t.debit_account_id);
    this.known.delete(t.credit_account_id);
  }

  private pump(): void {
    while (this.in_flight < this.opts.max_in_flight && this.queue.length > 0) {
      // A call big enough to stream starts a COPY batch; smaller ones form one-statement batches.
      const copy = this.copies(this.queue[0]!.inputs.length);
      const pipelined = this.canPipeline(this.queue[0]!.inputs, 0, copy);
      // Beside a batch in flight only pipelined batches of the same kind go: batches on
      // separate connections that touch the same accounts would fail each other's checked
      // update unless each waits for the one before (see commitCopyPipelined).
      if (
        this.in_flight > 0 &&
        (!pipelined || this.pipelined_in_flight < this.in_flight || copy !== this.copy_in_flight > 0)
      ) {
        return;
      }
      const batch = this.takeBatch(pipelined, copy);
      if (batch.length === 0) return; // the head of the queue waits for a batch in flight
      const ids = batch.flatMap((w) => w.inputs.map((t) => t.id));
      const copied = pipelined && copy;
      this.queued -= ids.length;
      this.in_flight += 1;
      if (pipelined) this.pipelined_in_flight += 1;
      if (copied) this.copy_in_flight += 1;
      for (const id of ids) this.in_flight_ids.add(id);
      void this.runBatch(batch, pipelined).finally(() => {
        for (const id of ids) this.in_flight_ids.delete(id);
        this.in_flight -= 1;
        if (pipelined) this.pipelined_in_flight -= 1;
        if (copied) this.copy_in_flight -= 1;
        this.next_turn.request();
      });
    }
  }

  /** Whole calls from the head of the queue, in order, up to the batch's limit. */
  private takeBatch(pipelined: boolean, copy: boolean): Waiting[] {
    // With nothing in flight and room for more, a pipelined batch takes half of what waits,
    // so the other half is computed and sent while this one runs: a closed loop of callers
    // would otherwise stay in one batch, and the process and the database take turns idling.
    const split = pipelined && this.in_flight === 0 && this.opts.max_in_flight > 1;
    const limit = split ? Math.min(this.opts.max_batch, Math.ceil(this.queued / 2)) : this.opts.max_batch;
    const batch: Waiting[] = [];
    let size = 0;
    while (this.queue.length > 0) {
      const head = this.queue[0]!.inputs;
      if (size + head.length > (batch.length === 0 ? this.opts.max_batch : limit)) break;
      if (pipelined && !this.canPipeline(head, size, copy)) break;
      // A call naming a transfer of a batch still committing waits for that batch: it could
      // not see the transfer yet, and its answer would mix states before and after it.
      if (this.in_flight > 0 && this.dependsOnInFlight(head)) break;
      batch.push(this.queue.shift()!);
      size += head.length;
    }
    return batch;
  }

  /**
   * Whether these transfers (joining `size` others) can be decided from the cache: no posts
   * or voids (their pending transfers must be read) and every account cached. Unless the
   * batch is a COPY one, they must also be too few to stream, to go out as one statement on
   * the ordered connection.
   */
  private canPipeline(inputs: readonly TransferInput[], size = 0, copy = false): boolean {
    if (!copy && this.copies(size + inputs.length)) return false;
    return inputs.every(
      (t) =>
        (t.flags & POST_OR_VOID) === 0 &&
        (t.debit_account_id === ZERO_ID || this.known.has(t.debit_account_id)) &&
        (t.credit_account_id === ZERO_ID || this.known.has(t.credit_account_id)),
    );
  }

  private dependsOnInFlight(inputs: readonly TransferInput[]): boolean {
    return inputs.some(
      (t) => this.in_flight_ids.has(t.id) || (t.pending_id !== null && this.in_flight_ids.has(t.pending_id)),
    );
  }

  private async runBatch(batch: Waiting[], pipelined: boolean): Promise<void> {
    const inputs = batch.flatMap((w) => w.inputs);
    try {
      const results = await this.commitBatch(inputs, pipelined);
      let offset = 0;
      for (const w of batch) {
        w.resolve(results.slice(offset, offset + w.inputs.length));
        offset += w.inputs.length;
      }
    } catch (err) {
      for (const w of batch) w.reject(err);
    }
  }

  /**
   * Optimistic first: a batch's ids are almost always new (retries are rare), so it skips
   * reading them and proves the assumption instead. An `ok` transfer whose id exists fails the
   * insert (unique violation); a failed one whose result could have been `exists*` is looked
   * up. Either way the batch is redone carefully, reading every id first.
   *
   * The optimistic pass also takes the balances of accounts this process wrote last from its
   * cache instead of reading them: the checked update (see transferBatchWrites) proves they
   * are still current, so a batch that touches only cached accounts and names no pending
   * transfer is a single statement — one round trip and one commit. If another process
   * changed one of them, nothing is written and the careful pass reads and locks them.
   */
  private async commitBatch(
    inputs: readonly TransferInput[],
    pipelined: boolean,
  ): Promise<CreateTransferResult[]> {
    let careful = false;
    for (let attempt = 1; ; attempt += 1) {
      try {
        const first = attempt === 1 && pipelined;
        const results = !first
          ? null
          : this.copies(inputs.length)
            ? await this.commitCopyPipelined(inputs)
            : await this.commitPipelined(inputs);
        return results ?? (await this.commitInTransaction(inputs, careful));
      } catch (err) {
        const stale = (err as { code?: string }).code === STALE_SQLSTATE;
        for (const t of inputs) this.forget(t);
        // A deadlock can only meet a pipelined batch (a transaction's are retried inside
        // withTransaction); the careful pass takes its locks in id order.
        const retry =
          err instanceof RetryCarefully || isUniqueViolation(err) || stale || isRetryableConflict(err);
        if (retry && attempt < MAX_BATCH_ATTEMPTS) {
          careful = true;
          continue;
        }
        throw err;
      }
    }
  }

  private commitInTransaction(
    inputs: readonly TransferInput[],
    careful: boolean,
  ): Promise<CreateTransferResult[]> {
    const copying = this.copies(inputs.length);
    // Posts and voids take no balances from the cache: their rules assert that an account's
    // pending balance holds the pending amount, which a stale cached balance (another process
    // wrote the account) would fail before the checked update could tell it was stale. They
    // read their pending transfers anyway, and the accounts come in the same round trip.
    const known = inputs.some((t) => (t.flags & POST_OR_VOID) !== 0) ? NOTHING_KNOWN : this.known;
    return withTransaction(copying ? this.opts.copy_pool! : this.pool, async (tx) => {
      const state = await loadTransferBatch(tx, inputs, careful, known);
      const original = balancesByAccount(state);
      const outcome = applyTransfers(inputs, state, this.clock);
      assertBatchInvariants(original, state, outcome);
      if (!careful) {
        const suspects = inputs
          .filter((_t, i) => !DECIDED_BEFORE_EXISTS.has(outcome.results[i]!))
          .map((t) => t.id);
        if (suspects.length > 0 && (await anyTransferExists(tx, suspects))) throw new RetryCarefully();
      }
      // Remembered before the commit, so a batch started meanwhile builds on this one; if
      // this one fails, every account it touched is forgotten (those a post or void names
      // through its pending transfer too) and that batch's checked update fails.
      this.remember(outcome, state);
      try {
        const copy = copying && outcome.created.length > 0;
        if (copy) await tx.copyIn(COPY_TRANSFERS, transfersCopyData(outcome.created));
        await tx.commit(transferBatchWrites(outcome, state, original, this.clock(), copy));
      } catch (err) {
        for (const id of outcome.touched) this.known.delete(id);
        throw err;
      }
      return outcome.results;
    });
  }

  /**
   * A batch whose accounts are all cached, as one statement on the ordered connection, sent
   * without waiting for the batch before it: PostgreSQL runs them in the order sent, so this
   * one's checked update sees the balances the previous one left (if that one failed, this
   * one's check fails too and it is redone carefully). Null when the cache changed since the
   * batch was formed.
   */
  private async commitPipelined(inputs: readonly TransferInput[]): Promise<CreateTransferResult[] | null> {
    const client = await this.ordered.acquire();
    try {
      // From here to the send nothing awaits: batches formed together interleave at their
      // awaits, and one that read the cache before the other remembered would be stale.
      if (!this.canPipeline(inputs)) return null;
      const { state, original, outcome } = this.decideFromCache(inputs);
      await client.query(combineWrites(transferBatchWrites(outcome, state, original, this.clock())));
      return outcome.results;
    } finally {
      this.ordered.release();
    }
  }

  /**
   * Runs the rules on cached balances and remembers the result, synchronously. Whether an id
   * exists cannot be read here: a result that might have been `exists*` sends the batch the
   * careful way.
   */
  private decideFromCache(inputs: readonly TransferInput[]) {
    const state = cachedTransferBatch(inputs, this.known);
    const original = balancesByAccount(state);
    const outcome = applyTransfers(inputs, state, this.clock);
    assertBatchInvariants(original, state, outcome);
    if (outcome.results.some((r) => !DECIDED_BEFORE_EXISTS.has(r))) throw new RetryCarefully();
    this.remember(outcome, state);
    return { state, original, outcome };
  }

  /**
   * A big batch whose accounts are all cached, decided from the cache the moment it is formed
   * (so it builds on every batch formed before it) and streamed with COPY on its own
   * connection while the batch before it is still committing: the process computes and
   * streams one batch while the database commits the other. The checked update keeps it
   * correct: a batch built on one that failed, or on balances another process changed,
   * writes nothing and is redone carefully. That last statement (with the COMMIT) also waits
   * for the batch before to end, so as not to reach an account ahead of it and fail for
   * nothing. Null when the cache changed since it was formed.
   */
  private async commitCopyPipelined(
    inputs: readonly TransferInput[],
  ): Promise<CreateTransferResult[] | null> {
    // Nothing awaits before the decision is remembered: the cache cannot change under it.
    if (!this.canPipeline(inputs, 0, true)) return null;
    const { state, original, outcome } = this.decideFromCache(inputs);
    const before = this.copy_tail;
    const copy = outcome.created.length > 0;
    const committed = withTransaction(this.opts.copy_pool!, async (tx) => {
      if (copy) await tx.copyIn(COPY_TRANSFERS, transfersCopyData(outcome.created));
      // Bounded: while this transaction waits here, another process's transaction may wait on
      // its rows (a duplicate transfer id) while holding an account the batch before needs, a
      // cycle PostgreSQL cannot see. Giving up rolls back, frees it, and redoes this carefully.
      await waitAtMost(before, COPY_WAIT_MS);
      await tx.commit(transferBatchWrites(outcome, state, original, this.clock(), copy));
    });
    // Settles when this batch and every one before it have ended, even if this one fails first.
    this.copy_tail = Promise.allSettled([before, committed]).then(() => undefined);
    await committed;
    return outcome.results;
  }
}

const NOTHING_KNOWN: ReadonlyMap<string, Account> = new Map();

/** How long a pipelined COPY batch waits for the one before it (which normally takes ms). */
const COPY_WAIT_MS = 5_000;

/** Resolves when `p` settles; rejects with RetryCarefully after `ms` (a stalled predecessor). */
async function waitAtMost(p: Promise<void>, ms: number): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new RetryCarefully()), ms);
  });
  try {
    await Promise.race([p, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/** The optimistic pass met an id that already exists: redo the batch reading every id. */
class RetryCarefully extends Error {}

/**
 * Results that do not depend on whether the transfer's id exists: `ok` (a duplicate fails
 * the insert instead) and the checks that come before the exists check.
 */
const POST_OR_VOID = TransferFlags.post_pending_transfer | TransferFlags.void_pending_transfer;

const DECIDED_BEFORE_EXISTS = new Set<CreateTransferResult>([
  'ok',
  'linked_event_chain_open',
  // CreateTransferResults lists the checks in the order they run; these all run before it.
  ...CreateTransferResults.slice(
    CreateTransferResults.indexOf('reserved_flag'),
    CreateTransferResults.indexOf('transfer_must_have_the_same_ledger_as_accounts') + 1,
  ),
]);

export class LedgerOverloaded extends Error {
  constructor(queued: number) {
    super(`ledger queue is full (${queued} transfers waiting); retry shortly`);
  }
}

/** Each account's balances as the batch read them, before its rules ran. */
function balancesByAccount(state: TransferBatchState): Map<string, Balances> {
  return new Map([...state.accounts.values()].map((a) => [a.id, balancesOf(a)]));
}

/**
 * Double entry, checked on every batch before it is written: per ledger, what the batch
 * added to debits equals what it added to credits, and no balance left its range.
 */
function assertBatchInvariants(
  before: ReadonlyMap<string, Balances>,
  state: TransferBatchState,
  outcome: TransferBatchOutcome,
): void {
  const net = new Map<number, bigint>();
  for (const id of outcome.touched) {
    const a = state.accounts.get(id)!;
    const b = before.get(id)!;
    for (const v of [a.debits_pending, a.debits_posted, a.credits_pending, a.credits_posted]) {
      assert(v >= 0n && v <= AMOUNT_MAX, 'balances stay within 0..AMOUNT_MAX');
    }
    const debited = a.debits_pending + a.debits_posted - b.debits_pending - b.debits_posted;
    const credited = a.credits_pending + a.credits_posted - b.credits_pending - b.credits_posted;
    net.set(a.ledger, (net.get(a.ledger) ?? 0n) + debited - credited);
  }
  for (const [ledger, d] of net) assert(d === 0n, `batch is balanced on ledger ${ledger}`);
}
