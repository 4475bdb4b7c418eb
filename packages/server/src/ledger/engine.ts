import { assert } from '../lib/errors.ts';
import {
  type Account,
  AccountFlags,
  type AccountInput,
  AMOUNT_MAX,
  type Balances,
  type CreateAccountResult,
  type CreateTransferResult,
  hasUnknownAccountFlags,
  hasUnknownTransferFlags,
  MAX_BATCH,
  MAX_ID,
  MAX_TIMEOUT_S,
  type PendingRecord,
  type Transfer,
  TransferFlags,
  type TransferInput,
  ZERO_ID,
} from './types.ts';

/**
 * The ledger's rules, in memory and free of I/O: given the accounts a batch touches (locked
 * by the caller), the transfers already stored under the batch's ids and pending ids, and a
 * clock, decide each transfer's result in order and compute the batch's effects. The store
 * then writes those effects with set-based statements. Keeping the rules here means the
 * same code decides every batch, and the property tests can run it against a reference.
 */
export interface TransferBatchState {
  /** Every account a transfer of the batch names (and the accounts of referenced pending transfers). */
  accounts: Map<string, Account>;
  /** Stored transfers whose id is an id or a pending id of the batch. */
  transfers: Map<string, Transfer>;
  /** Stored pending transfers referenced by the batch, with their state. */
  pending: Map<string, PendingRecord>;
}

export interface HistoryEntry extends Balances {
  account_id: string;
  transfer_id: string;
  timestamp: bigint;
}

export interface TransferBatchOutcome {
  results: CreateTransferResult[];
  /** Transfers to insert, in order. */
  created: Transfer[];
  /** Pending records created or resolved by the batch, in their final state. */
  pending_changes: Map<string, PendingRecord>;
  /** Accounts whose balances changed (their final balances are in the state's map). */
  touched: Set<string>;
  /** Balances after each transfer, for accounts with the `history` flag. */
  history: HistoryEntry[];
}

const has = (flags: number, flag: number) => (flags & flag) !== 0;

/** What a failed chain must restore. */
interface Undo {
  balances: Map<string, Balances>;
  pending: Map<string, PendingRecord | undefined>;
  /** The batch's pending changes as they were before the chain (a chain may touch one made earlier). */
  pending_changes: Map<string, PendingRecord | undefined>;
  transfers: string[];
  created_length: number;
  history_length: number;
}

export function applyTransfers(
  inputs: readonly TransferInput[],
  state: TransferBatchState,
  clock: () => bigint,
): TransferBatchOutcome {
  assert(inputs.length <= MAX_BATCH, 'a batch holds at most MAX_BATCH transfers');
  const out: TransferBatchOutcome = {
    results: [],
    created: [],
    pending_changes: new Map(),
    touched: new Set(),
    history: [],
  };
  out.results = applyChained<TransferInput, CreateTransferResult, Undo>(inputs, TransferFlags.linked, {
    begin: () => newUndo(out),
    apply: (t, undo) => applyOne(t, state, out, clock(), undo),
    rollBack: (undo) => rollBack(undo, state, out),
  });
  return out;
}

type ChainResult = 'ok' | 'linked_event_failed' | 'linked_event_chain_open';

/**
 * TigerBeetle's linked chains, for accounts and transfers alike: an event with the `linked`
 * flag continues a chain into the next one. If any event of a chain fails, `rollBack`
 * undoes the chain's effects (recorded since `begin`); the failing event keeps its result and
 * the chain's other events answer `linked_event_failed` (those after the failure are not
 * evaluated). A chain still open at the end of the call fails with `linked_event_chain_open`
 * on its last event, which TigerBeetle checks before anything else.
 */
function applyChained<E extends { flags: number }, R extends string, U>(
  events: readonly E[],
  linked_flag: number,
  chain: { begin: () => U; apply: (event: E, undo: U | null) => R; rollBack: (undo: U) => void },
): R[] {
  const results = new Array<R>(events.length);
  let chain_start: number | null = null;
  let chain_failed = false;
  let undo: U | null = null;
  for (let i = 0; i < events.length; i += 1) {
    const linked = has(events[i]!.flags, linked_flag);
    if (chain_start === null && linked) {
      chain_start = i;
      undo = chain.begin();
    }
    if (linked && i === events.length - 1) {
      results[i] = 'linked_event_chain_open' satisfies ChainResult as R;
      chain_failed = true;
    } else if (chain_failed) {
      results[i] = 'linked_event_failed' satisfies ChainResult as R;
    } else {
      results[i] = chain.apply(events[i]!, undo);
      if (results[i] !== 'ok' && chain_start !== null) chain_failed = true;
    }
    if (chain_start !== null && (!linked || i === events.length - 1)) {
      if (chain_failed) {
        chain.rollBack(undo!);
        for (let j = chain_start; j <= i; j += 1) {
          if (results[j] === 'ok') results[j] = 'linked_event_failed' satisfies ChainResult as R;
        }
      }
      chain_start = null;
      chain_failed = false;
      undo = null;
    }
  }
  return results;
}

function newUndo(out: TransferBatchOutcome): Undo {
  return {
    balances: new Map(),
    pending: new Map(),
    pending_changes: new Map(),
    transfers: [],
    created_length: out.created.length,
    history_length: out.history.length,
  };
}

function rollBack(undo: Undo, state: TransferBatchState, out: TransferBatchOutcome): void {
  for (const [id, balances] of undo.balances) Object.assign(state.accounts.get(id)!, balances);
  for (const [id, record] of undo.pending) {
    if (record) state.pending.set(id, record);
    else state.pending.delete(id);
  }
  for (const [id, change] of undo.pending_changes) {
    if (change) out.pending_changes.set(id, change);
    else out.pending_changes.delete(id);
  }
  for (const id of undo.transfers) state.transfers.delete(id);
  out.created.length = undo.created_length;
  out.history.length = undo.history_length;
}

function remember(undo: Undo | null, account: Account): void {
  if (undo && !undo.balances.has(account.id)) undo.balances.set(account.id, balancesOf(account));
}

/** Checks that need nothing but the transfer itself. */
function checkShape(t: TransferInput): CreateTransferResult | null {
  if (hasUnknownTransferFlags(t.flags)) return 'reserved_flag';
  if (t.id === ZERO_ID) return 'id_must_not_be_zero';
  if (t.id === MAX_ID) return 'id_must_not_be_int_max';
  const pending = has(t.flags, TransferFlags.pending);
  const post = has(t.flags, TransferFlags.post_pending_transfer);
  const void_ = has(t.flags, TransferFlags.void_pending_transfer);
  const balancing = has(t.flags, TransferFlags.balancing_debit | TransferFlags.balancing_credit);
  if (Number(pending) + Number(post) + Number(void_) > 1 || ((post || void_) && balancing)) {
    return 'flags_are_mutually_exclusive';
  }
  if (post || void_) {
    if (t.pending_id === null || t.pending_id === ZERO_ID) return 'pending_id_must_not_be_zero';
    if (t.pending_id === MAX_ID) return 'pending_id_must_not_be_int_max';
    if (t.pending_id === t.id) return 'pending_id_must_be_different';
  } else {
    if (t.pending_id !== null && t.pending_id !== ZERO_ID) return 'pending_id_must_be_zero';
    if (t.debit_account_id === ZERO_ID) return 'debit_account_id_must_not_be_zero';
    if (t.debit_account_id === MAX_ID) return 'debit_account_id_must_not_be_int_max';
    if (t.credit_account_id === ZERO_ID) return 'credit_account_id_must_not_be_zero';
    if (t.credit_account_id === MAX_ID) return 'credit_account_id_must_not_be_int_max';
    if (t.debit_account_id === t.credit_account_id) return 'accounts_must_be_different';
  }
  if (t.timeout_s !== 0 && !pending) return 'timeout_reserved_for_pending_transfer';
  if (!(post || void_) && (t.amount === null || t.amount === 0n)) return 'amount_must_not_be_zero';
  if (!(post || void_) && t.ledger === 0) return 'ledger_must_not_be_zero';
  if (!(post || void_) && t.code === 0) return 'code_must_not_be_zero';
  return null;
}

function applyOne(
  t: TransferInput,
  state: TransferBatchState,
  out: TransferBatchOutcome,
  now: bigint,
  undo: Undo | null,
): CreateTransferResult {
  const shape = checkShape(t);
  if (shape) return shape;
  if (has(t.flags, TransferFlags.post_pending_transfer | TransferFlags.void_pending_transfer)) {
    return resolvePending(t, state, out, now, undo);
  }
  const mode = t.livemode ?? false;
  const dr = visible(state.accounts.get(t.debit_account_id), mode);
  const cr = visible(state.accounts.get(t.credit_account_id), mode);
  if (!dr) return 'debit_account_not_found';
  if (!cr) return 'credit_account_not_found';
  if (dr.ledger !== cr.ledger) return 'accounts_must_have_the_same_ledger';
  if (t.ledger !== dr.ledger) return 'transfer_must_have_the_same_ledger_as_accounts';
  const existing = state.transfers.get(t.id);
  if (existing) return compareExisting(t, existing, t.amount);
  if (has(dr.flags, AccountFlags.closed)) return 'debit_account_already_closed';
  if (has(cr.flags, AccountFlags.closed)) return 'credit_account_already_closed';
  const amount = balancedAmount(t, dr, cr);
  // No room at all: a balancing transfer that would move nothing is refused (a zero-amount
  // pending transfer could never be posted).
  if (amount === 0n)
    return has(t.flags, TransferFlags.balancing_debit) ? 'exceeds_credits' : 'exceeds_debits';
  const pending = has(t.flags, TransferFlags.pending);
  const overflow = checkOverflow(dr, cr, amount, pending, t.timeout_s, now);
  if (overflow) return overflow;
  if (
    has(dr.flags, AccountFlags.debits_must_not_exceed_credits) &&
    dr.debits_pending + dr.debits_posted + amount > dr.credits_posted
  ) {
    return 'exceeds_credits';
  }
  if (
    has(cr.flags, AccountFlags.credits_must_not_exceed_debits) &&
    cr.credits_pending + cr.credits_posted + amount > cr.debits_posted
  ) {
    return 'exceeds_debits';
  }
  remember(undo, dr);
  remember(undo, cr);
  if (pending) {
    dr.debits_pending += amount;
    cr.credits_pending += amount;
  } else {
    dr.debits_posted += amount;
    cr.credits_posted += amount;
  }
  const transfer = record(t, amount, now, t.debit_account_id, t.credit_account_id, t.ledger, t.code);
  created(state, out, undo, transfer, dr, cr);
  if (pending) {
    const expires_at = t.timeout_s > 0 ? now + BigInt(t.timeout_s) * 1_000_000_000n : null;
    setPending(state, out, undo, { transfer, state: 'pending', expires_at });
  }
  return 'ok';
}

/** An account or transfer of the other mode does not exist for this transfer. */
function visible<T extends { livemode: boolean }>(object: T | undefined, livemode: boolean): T | undefined {
  return object?.livemode === livemode ? object : undefined;
}

/** A balancing transfer moves at most what keeps its account within its limit. */
function balancedAmount(t: TransferInput, dr: Account, cr: Account): bigint {
  assert(t.amount !== null, 'a non-post transfer has an amount');
  let amount = t.amount;
  if (has(t.flags, TransferFlags.balancing_debit)) {
    const room = dr.credits_posted - dr.debits_posted - dr.debits_pending;
    amount = room < amount ? (room > 0n ? room : 0n) : amount;
  }
  if (has(t.flags, TransferFlags.balancing_credit)) {
    const room = cr.debits_posted - cr.credits_posted - cr.credits_pending;
    amount = room < amount ? (room > 0n ? room : 0n) : amount;
  }
  return amount;
}

function checkOverflow(
  dr: Account,
  cr: Account,
  amount: bigint,
  pending: boolean,
  timeout_s: number,
  now: bigint,
): CreateTransferResult | null {
  if (pending && dr.debits_pending + amount > AMOUNT_MAX) return 'overflows_debits_pending';
  if (pending && cr.credits_pending + amount > AMOUNT_MAX) return 'overflows_credits_pending';
  if (!pending && dr.debits_posted + amount > AMOUNT_MAX) return 'overflows_debits_posted';
  if (!pending && cr.credits_posted + amount > AMOUNT_MAX) return 'overflows_credits_posted';
  if (dr.debits_pending + dr.debits_posted + amount > AMOUNT_MAX) return 'overflows_debits';
  if (cr.credits_pending + cr.credits_posted + amount > AMOUNT_MAX) return 'overflows_credits';
  if (timeout_s > MAX_TIMEOUT_S || now + BigInt(timeout_s) * 1_000_000_000n > AMOUNT_MAX) {
    return 'overflows_timeout';
  }
  return null;
}

function resolvePending(
  t: TransferInput,
  state: TransferBatchState,
  out: TransferBatchOutcome,
  now: bigint,
  undo: Undo | null,
): CreateTransferResult {
  const post = has(t.flags, TransferFlags.post_pending_transfer);
  const existing = state.transfers.get(t.id);
  if (existing) return compareExisting(t, existing, t.amount);
  const mode = t.livemode ?? false;
  const target = visible(state.transfers.get(t.pending_id!), mode);
  const p = target ? state.pending.get(t.pending_id!) : undefined;
  if (!target) return 'pending_transfer_not_found';
  if (!p) return 'pending_transfer_not_pending';
  const pt = p.transfer;
  if (t.debit_account_id !== ZERO_ID && t.debit_account_id !== pt.debit_account_id) {
    return 'pending_transfer_has_different_debit_account_id';
  }
  if (t.credit_account_id !== ZERO_ID && t.credit_account_id !== pt.credit_account_id) {
    return 'pending_transfer_has_different_credit_account_id';
  }
  if (t.ledger !== 0 && t.ledger !== pt.ledger) return 'pending_transfer_has_different_ledger';
  if (t.code !== 0 && t.code !== pt.code) return 'pending_transfer_has_different_code';
  const amount = t.amount ?? pt.amount;
  if (post && amount > pt.amount) return 'exceeds_pending_transfer_amount';
  if (post && amount === 0n) return 'amount_must_not_be_zero';
  if (!post && amount !== pt.amount) return 'pending_transfer_has_different_amount';
  if (p.state === 'posted') return 'pending_transfer_already_posted';
  if (p.state === 'voided') return 'pending_transfer_already_voided';
  if (p.state === 'expired' || (p.expires_at !== null && p.expires_at <= now))
    return 'pending_transfer_expired';
  const dr = state.accounts.get(pt.debit_account_id);
  const cr = state.accounts.get(pt.credit_account_id);
  assert(dr && cr, 'the accounts of a referenced pending transfer are loaded');
  if (has(dr.flags, AccountFlags.closed)) return 'debit_account_already_closed';
  if (has(cr.flags, AccountFlags.closed)) return 'credit_account_already_closed';
  if (post && dr.debits_posted + amount > AMOUNT_MAX) return 'overflows_debits_posted';
  if (post && cr.credits_posted + amount > AMOUNT_MAX) return 'overflows_credits_posted';
  remember(undo, dr);
  remember(undo, cr);
  assert(
    dr.debits_pending >= pt.amount && cr.credits_pending >= pt.amount,
    'pending balances hold the pending amount',
  );
  dr.debits_pending -= pt.amount;
  cr.credits_pending -= pt.amount;
  if (post) {
    dr.debits_posted += amount;
    cr.credits_posted += amount;
  }
  const transfer = record(t, amount, now, pt.debit_account_id, pt.credit_account_id, pt.ledger, pt.code);
  created(state, out, undo, transfer, dr, cr);
  setPending(state, out, undo, { ...p, state: post ? 'posted' : 'voided' });
  return 'ok';
}

/** Same id again: `exists` when every field the caller gave matches; a null amount matches any. */
function compareExisting(t: TransferInput, e: Transfer, amount: bigint | null): CreateTransferResult {
  if (t.flags !== e.flags || (t.livemode ?? false) !== e.livemode) return 'exists_with_different_flags';
  const post_or_void = has(
    t.flags,
    TransferFlags.post_pending_transfer | TransferFlags.void_pending_transfer,
  );
  if (!(post_or_void && t.debit_account_id === ZERO_ID) && t.debit_account_id !== e.debit_account_id) {
    return 'exists_with_different_debit_account_id';
  }
  if (!(post_or_void && t.credit_account_id === ZERO_ID) && t.credit_account_id !== e.credit_account_id) {
    return 'exists_with_different_credit_account_id';
  }
  // A balancing transfer may have moved less than asked; the request is the same if it asked
  // for at least what moved.
  const balancing = has(t.flags, TransferFlags.balancing_debit | TransferFlags.balancing_credit);
  if (amount !== null && (balancing ? amount < e.amount : amount !== e.amount))
    return 'exists_with_different_amount';
  if ((t.pending_id ?? null) !== (e.pending_id ?? null)) return 'exists_with_different_pending_id';
  if (t.user_data_128 !== e.user_data_128) return 'exists_with_different_user_data_128';
  if (t.user_data_64 !== e.user_data_64) return 'exists_with_different_user_data_64';
  if (t.user_data_32 !== e.user_data_32) return 'exists_with_different_user_data_32';
  if (t.timeout_s !== e.timeout_s) return 'exists_with_different_timeout';
  if (!(post_or_void && t.code === 0) && t.code !== e.code) return 'exists_with_different_code';
  return 'exists';
}

function record(
  t: TransferInput,
  amount: bigint,
  timestamp: bigint,
  debit_account_id: string,
  credit_account_id: string,
  ledger: number,
  code: number,
): Transfer {
  return {
    id: t.id,
    livemode: t.livemode ?? false,
    debit_account_id,
    credit_account_id,
    amount,
    pending_id: t.pending_id === ZERO_ID ? null : t.pending_id,
    ledger,
    code,
    flags: t.flags,
    timeout_s: t.timeout_s,
    user_data_128: t.user_data_128,
    user_data_64: t.user_data_64,
    user_data_32: t.user_data_32,
    timestamp,
  };
}

function created(
  state: TransferBatchState,
  out: TransferBatchOutcome,
  undo: Undo | null,
  transfer: Transfer,
  dr: Account,
  cr: Account,
): void {
  state.transfers.set(transfer.id, transfer);
  undo?.transfers.push(transfer.id);
  out.created.push(transfer);
  out.touched.add(dr.id);
  out.touched.add(cr.id);
  recordHistory(out, [dr, cr], transfer.id, transfer.timestamp);
}

/** Balances after this event, for the accounts that keep history. */
function recordHistory(
  out: TransferBatchOutcome,
  accounts: Account[],
  transfer_id: string,
  timestamp: bigint,
): void {
  for (const account of accounts) {
    if (!has(account.flags, AccountFlags.history)) continue;
    out.history.push({ account_id: account.id, transfer_id, timestamp, ...balancesOf(account) });
  }
}

function setPending(
  state: TransferBatchState,
  out: TransferBatchOutcome,
  undo: Undo | null,
  next: PendingRecord,
): void {
  const id = next.transfer.id;
  if (undo && !undo.pending.has(id)) {
    undo.pending.set(id, state.pending.get(id));
    undo.pending_changes.set(id, out.pending_changes.get(id));
  }
  state.pending.set(id, next);
  out.pending_changes.set(id, next);
}

/**
 * Releases pending transfers whose timeout passed: both pending balances drop by the pending
 * amount and the record becomes `expired`. No transfer is written (TigerBeetle's rule); a
 * post or void arriving later answers `pending_transfer_expired`.
 */
export function applyExpiry(
  ids: readonly string[],
  state: TransferBatchState,
  now: bigint,
): TransferBatchOutcome {
  const out: TransferBatchOutcome = {
    results: [],
    created: [],
    pending_changes: new Map(),
    touched: new Set(),
    history: [],
  };
  for (const id of ids) {
    const p = state.pending.get(id);
    if (p?.state !== 'pending' || p.expires_at === null || p.expires_at > now) continue;
    const pt = p.transfer;
    const dr = state.accounts.get(pt.debit_account_id);
    const cr = state.accounts.get(pt.credit_account_id);
    assert(dr && cr, 'the accounts of an expiring pending transfer are loaded');
    assert(
      dr.debits_pending >= pt.amount && cr.credits_pending >= pt.amount,
      'pending balances hold the pending amount',
    );
    dr.debits_pending -= pt.amount;
    cr.credits_pending -= pt.amount;
    out.touched.add(dr.id);
    out.touched.add(cr.id);
    recordHistory(out, [dr, cr], pt.id, now);
    setPending(state, out, null, { ...p, state: 'expired' });
  }
  return out;
}

/** The four balances alone, copied. */
export function balancesOf(a: Balances): Balances {
  return {
    debits_pending: a.debits_pending,
    debits_posted: a.debits_posted,
    credits_pending: a.credits_pending,
    credits_posted: a.credits_posted,
  };
}

export interface AccountBatchOutcome {
  results: CreateAccountResult[];
  created: Account[];
}

/** Account creation: field checks, idempotency by id, linked chains. */
export function applyAccounts(
  inputs: readonly AccountInput[],
  existing: Map<string, Account>,
  clock: () => bigint,
): AccountBatchOutcome {
  assert(inputs.length <= MAX_BATCH, 'a batch holds at most MAX_BATCH accounts');
  const created: Account[] = [];
  const seen = new Map(existing);
  const results = applyChained<AccountInput, CreateAccountResult, number>(inputs, AccountFlags.linked, {
    begin: () => created.length,
    apply: (a) => {
      const result = checkAccount(a, seen.get(a.id));
      if (result !== 'ok') return result;
      const account: Account = {
        ...a,
        livemode: a.livemode ?? false,
        flags: a.flags & ~AccountFlags.linked,
        debits_pending: 0n,
        debits_posted: 0n,
        credits_pending: 0n,
        credits_posted: 0n,
        timestamp: clock(),
      };
      created.push(account);
      seen.set(a.id, account);
      return 'ok';
    },
    rollBack: (created_before) => {
      for (const dropped of created.splice(created_before)) seen.delete(dropped.id);
    },
  });
  return { results, created };
}

function checkAccount(a: AccountInput, existing: Account | undefined): CreateAccountResult {
  if (hasUnknownAccountFlags(a.flags)) return 'reserved_flag';
  if (a.id === ZERO_ID) return 'id_must_not_be_zero';
  if (a.id === MAX_ID) return 'id_must_not_be_int_max';
  if (
    has(a.flags, AccountFlags.debits_must_not_exceed_credits) &&
    has(a.flags, AccountFlags.credits_must_not_exceed_debits)
  ) {
    return 'flags_are_mutually_exclusive';
  }
  if (a.ledger === 0) return 'ledger_must_not_be_zero';
  if (a.code === 0) return 'code_must_not_be_zero';
  if (!existing) return 'ok';
  if ((a.flags & ~AccountFlags.linked) !== existing.flags || (a.livemode ?? false) !== existing.livemode) {
    return 'exists_with_different_flags';
  }
  if (a.user_data_128 !== existing.user_data_128) return 'exists_with_different_user_data_128';
  if (a.user_data_64 !== existing.user_data_64) return 'exists_with_different_user_data_64';
  if (a.user_data_32 !== existing.user_data_32) return 'exists_with_different_user_data_32';
  if (a.ledger !== existing.ledger) return 'exists_with_different_ledger';
  if (a.code !== existing.code) return 'exists_with_different_code';
  return 'exists';
}
