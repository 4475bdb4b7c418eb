/**
 * A deliberately simple in-memory reference model of the ledger's `create_accounts` /
 * `create_transfers` semantics, written from the specification (TigerBeetle's model with our
 * specifics), not from engine.ts. It exists only to be compared against the real ledger in
 * reference.test.ts, so it favours being obviously correct over being fast: every check is
 * spelled out in order, and a linked chain deep-copies the whole state before it starts and
 * restores the copy when any of its events fails.
 */
import {
  AccountFlags,
  type AccountInput,
  AMOUNT_MAX,
  type Balances,
  type CreateAccountResult,
  type CreateTransferResult,
  hasUnknownAccountFlags,
  hasUnknownTransferFlags,
  MAX_ID,
  TransferFlags,
  type TransferInput,
  ZERO_ID,
} from './types.ts';

export interface RefAccount extends AccountInput, Balances {}

/** A stored transfer: the input with the amount that actually moved (and, for post/void, the pending's fields). */
export interface RefTransfer extends Omit<TransferInput, 'amount'> {
  amount: bigint;
}

export type RefPendingState = 'pending' | 'posted' | 'voided';

interface RefState {
  accounts: Map<string, RefAccount>;
  transfers: Map<string, RefTransfer>;
  /** For each transfer created with the `pending` flag: whether it was posted or voided since. */
  pending: Map<string, RefPendingState>;
}

const has = (flags: number, flag: number): boolean => (flags & flag) !== 0;
const isZeroId = (id: string | null): boolean => id === null || id === ZERO_ID;
const minBig = (a: bigint, b: bigint): bigint => (a < b ? a : b);
const maxBig = (a: bigint, b: bigint): bigint => (a > b ? a : b);

/**
 * Runs `events` in order through `evaluate`, honouring linked chains: a chain runs from an
 * event with `linkedFlag` through the next event without it. If any event of a chain is not
 * `ok`, the state is restored to what it was before the chain, the chain's `ok` events become
 * `linked_event_failed`, the failing event keeps its result, and the chain's later events are
 * not evaluated (`linked_event_failed`). A chain still open at the end of the call fails with
 * `linked_event_chain_open` on its last event.
 */
function runChains<E extends { flags: number }, R extends string>(
  events: readonly E[],
  linkedFlag: number,
  save: () => RefState,
  restore: (s: RefState) => void,
  evaluate: (e: E) => R | 'ok',
): (R | 'ok' | 'linked_event_failed' | 'linked_event_chain_open')[] {
  const results: (R | 'ok' | 'linked_event_failed' | 'linked_event_chain_open')[] = [];
  let start = 0;
  while (start < events.length) {
    let end = start;
    while (end < events.length - 1 && has(events[end]!.flags, linkedFlag)) end += 1;
    const open = has(events[end]!.flags, linkedFlag);
    const saved = save();
    let failed = false;
    for (let i = start; i <= end; i += 1) {
      if (open && i === end) {
        results[i] = 'linked_event_chain_open';
        failed = true;
      } else if (failed) {
        results[i] = 'linked_event_failed';
      } else {
        const r = evaluate(events[i]!);
        results[i] = r;
        if (r !== 'ok') failed = true;
      }
    }
    if (failed) {
      restore(saved);
      for (let i = start; i <= end; i += 1) if (results[i] === 'ok') results[i] = 'linked_event_failed';
    }
    start = end + 1;
  }
  return results;
}

export class ReferenceLedger {
  private state: RefState = { accounts: new Map(), transfers: new Map(), pending: new Map() };

  account(id: string): RefAccount | undefined {
    return this.state.accounts.get(id);
  }

  transfer(id: string): RefTransfer | undefined {
    return this.state.transfers.get(id);
  }

  pendingState(id: string): RefPendingState | undefined {
    return this.state.pending.get(id);
  }

  private save = (): RefState => structuredClone(this.state);
  private restore = (s: RefState): void => {
    this.state = s;
  };

  createAccounts(inputs: readonly AccountInput[]): CreateAccountResult[] {
    return runChains(inputs, AccountFlags.linked, this.save, this.restore, (a) => this.createAccount(a));
  }

  createTransfers(inputs: readonly TransferInput[]): CreateTransferResult[] {
    return runChains(inputs, TransferFlags.linked, this.save, this.restore, (t) => this.createTransfer(t));
  }

  private createAccount(a: AccountInput): CreateAccountResult {
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
    const e = this.state.accounts.get(a.id);
    if (e) {
      const withoutLinked = (f: number) => f & ~AccountFlags.linked;
      if (withoutLinked(a.flags) !== withoutLinked(e.flags)) return 'exists_with_different_flags';
      if (a.user_data_128 !== e.user_data_128) return 'exists_with_different_user_data_128';
      if (a.user_data_64 !== e.user_data_64) return 'exists_with_different_user_data_64';
      if (a.user_data_32 !== e.user_data_32) return 'exists_with_different_user_data_32';
      if (a.ledger !== e.ledger) return 'exists_with_different_ledger';
      if (a.code !== e.code) return 'exists_with_different_code';
      return 'exists';
    }
    this.state.accounts.set(a.id, {
      ...a,
      debits_pending: 0n,
      debits_posted: 0n,
      credits_pending: 0n,
      credits_posted: 0n,
    });
    return 'ok';
  }

  private createTransfer(t: TransferInput): CreateTransferResult {
    if (hasUnknownTransferFlags(t.flags)) return 'reserved_flag';
    if (t.id === ZERO_ID) return 'id_must_not_be_zero';
    if (t.id === MAX_ID) return 'id_must_not_be_int_max';
    const pending = has(t.flags, TransferFlags.pending);
    const post = has(t.flags, TransferFlags.post_pending_transfer);
    const void_ = has(t.flags, TransferFlags.void_pending_transfer);
    const balancing_debit = has(t.flags, TransferFlags.balancing_debit);
    const balancing_credit = has(t.flags, TransferFlags.balancing_credit);
    const phases = Number(pending) + Number(post) + Number(void_);
    if (phases > 1 || ((post || void_) && (balancing_debit || balancing_credit))) {
      return 'flags_are_mutually_exclusive';
    }
    if (post || void_) return this.postOrVoid(t, post);

    if (!isZeroId(t.pending_id)) return 'pending_id_must_be_zero';
    if (t.debit_account_id === ZERO_ID) return 'debit_account_id_must_not_be_zero';
    if (t.debit_account_id === MAX_ID) return 'debit_account_id_must_not_be_int_max';
    if (t.credit_account_id === ZERO_ID) return 'credit_account_id_must_not_be_zero';
    if (t.credit_account_id === MAX_ID) return 'credit_account_id_must_not_be_int_max';
    if (t.debit_account_id === t.credit_account_id) return 'accounts_must_be_different';
    if (t.timeout_s !== 0 && !pending) return 'timeout_reserved_for_pending_transfer';
    if (t.amount === null || t.amount === 0n) return 'amount_must_not_be_zero';
    if (t.ledger === 0) return 'ledger_must_not_be_zero';
    if (t.code === 0) return 'code_must_not_be_zero';
    const dr = this.state.accounts.get(t.debit_account_id);
    if (!dr) return 'debit_account_not_found';
    const cr = this.state.accounts.get(t.credit_account_id);
    if (!cr) return 'credit_account_not_found';
    if (dr.ledger !== cr.ledger) return 'accounts_must_have_the_same_ledger';
    if (t.ledger !== dr.ledger) return 'transfer_must_have_the_same_ledger_as_accounts';

    const e = this.state.transfers.get(t.id);
    if (e) {
      if (t.flags !== e.flags) return 'exists_with_different_flags';
      if (t.debit_account_id !== e.debit_account_id) return 'exists_with_different_debit_account_id';
      if (t.credit_account_id !== e.credit_account_id) return 'exists_with_different_credit_account_id';
      if (balancing_debit || balancing_credit) {
        if (t.amount < e.amount) return 'exists_with_different_amount';
      } else if (t.amount !== e.amount) {
        return 'exists_with_different_amount';
      }
      if (t.pending_id !== e.pending_id) return 'exists_with_different_pending_id';
      if (t.user_data_128 !== e.user_data_128) return 'exists_with_different_user_data_128';
      if (t.user_data_64 !== e.user_data_64) return 'exists_with_different_user_data_64';
      if (t.user_data_32 !== e.user_data_32) return 'exists_with_different_user_data_32';
      if (t.timeout_s !== e.timeout_s) return 'exists_with_different_timeout';
      if (t.code !== e.code) return 'exists_with_different_code';
      return 'exists';
    }

    if (has(dr.flags, AccountFlags.closed)) return 'debit_account_already_closed';
    if (has(cr.flags, AccountFlags.closed)) return 'credit_account_already_closed';

    let amount = t.amount;
    if (balancing_debit) {
      amount = minBig(amount, maxBig(0n, dr.credits_posted - dr.debits_posted - dr.debits_pending));
    }
    if (balancing_credit) {
      amount = minBig(amount, maxBig(0n, cr.debits_posted - cr.credits_posted - cr.credits_pending));
    }
    // A balancing transfer with no room at all moves nothing: refused, like a zero amount.
    if (amount === 0n) return balancing_debit ? 'exceeds_credits' : 'exceeds_debits';

    if (pending) {
      if (dr.debits_pending + amount > AMOUNT_MAX) return 'overflows_debits_pending';
      if (cr.credits_pending + amount > AMOUNT_MAX) return 'overflows_credits_pending';
    } else {
      if (dr.debits_posted + amount > AMOUNT_MAX) return 'overflows_debits_posted';
      if (cr.credits_posted + amount > AMOUNT_MAX) return 'overflows_credits_posted';
    }
    if (dr.debits_pending + dr.debits_posted + amount > AMOUNT_MAX) return 'overflows_debits';
    if (cr.credits_pending + cr.credits_posted + amount > AMOUNT_MAX) return 'overflows_credits';

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

    if (pending) {
      dr.debits_pending += amount;
      cr.credits_pending += amount;
      this.state.pending.set(t.id, 'pending');
    } else {
      dr.debits_posted += amount;
      cr.credits_posted += amount;
    }
    this.state.transfers.set(t.id, { ...t, amount });
    return 'ok';
  }

  private postOrVoid(t: TransferInput, post: boolean): CreateTransferResult {
    if (isZeroId(t.pending_id)) return 'pending_id_must_not_be_zero';
    const pending_id = t.pending_id!;
    if (pending_id === MAX_ID) return 'pending_id_must_not_be_int_max';
    if (pending_id === t.id) return 'pending_id_must_be_different';
    // Debit/credit account ids are not checked here: ZERO_ID means "as the pending transfer",
    // anything else must equal the pending transfer's (pending_transfer_has_different_*).
    if (t.timeout_s !== 0) return 'timeout_reserved_for_pending_transfer';

    const e = this.state.transfers.get(t.id);
    if (e) {
      if (t.flags !== e.flags) return 'exists_with_different_flags';
      if (t.debit_account_id !== ZERO_ID && t.debit_account_id !== e.debit_account_id) {
        return 'exists_with_different_debit_account_id';
      }
      if (t.credit_account_id !== ZERO_ID && t.credit_account_id !== e.credit_account_id) {
        return 'exists_with_different_credit_account_id';
      }
      if (t.amount !== null && t.amount !== e.amount) return 'exists_with_different_amount';
      if (t.pending_id !== e.pending_id) return 'exists_with_different_pending_id';
      if (t.user_data_128 !== e.user_data_128) return 'exists_with_different_user_data_128';
      if (t.user_data_64 !== e.user_data_64) return 'exists_with_different_user_data_64';
      if (t.user_data_32 !== e.user_data_32) return 'exists_with_different_user_data_32';
      if (t.timeout_s !== e.timeout_s) return 'exists_with_different_timeout';
      if (t.code !== 0 && t.code !== e.code) return 'exists_with_different_code';
      return 'exists';
    }

    const p = this.state.transfers.get(pending_id);
    if (!p) return 'pending_transfer_not_found';
    if (!has(p.flags, TransferFlags.pending)) return 'pending_transfer_not_pending';
    if (t.debit_account_id !== ZERO_ID && t.debit_account_id !== p.debit_account_id) {
      return 'pending_transfer_has_different_debit_account_id';
    }
    if (t.credit_account_id !== ZERO_ID && t.credit_account_id !== p.credit_account_id) {
      return 'pending_transfer_has_different_credit_account_id';
    }
    if (t.ledger !== 0 && t.ledger !== p.ledger) return 'pending_transfer_has_different_ledger';
    if (t.code !== 0 && t.code !== p.code) return 'pending_transfer_has_different_code';

    let amount: bigint;
    if (post) {
      amount = t.amount ?? p.amount;
      if (amount > p.amount) return 'exceeds_pending_transfer_amount';
      if (amount === 0n) return 'amount_must_not_be_zero';
    } else {
      if (t.amount !== null && t.amount !== p.amount) return 'pending_transfer_has_different_amount';
      amount = p.amount;
    }

    const state = this.state.pending.get(p.id);
    if (state === 'posted') return 'pending_transfer_already_posted';
    if (state === 'voided') return 'pending_transfer_already_voided';
    // Expiry is not modelled: the property test only uses timeouts far longer than a run.

    const dr = this.state.accounts.get(p.debit_account_id)!;
    const cr = this.state.accounts.get(p.credit_account_id)!;
    dr.debits_pending -= p.amount;
    cr.credits_pending -= p.amount;
    if (post) {
      dr.debits_posted += amount;
      cr.credits_posted += amount;
    }
    this.state.pending.set(p.id, post ? 'posted' : 'voided');
    this.state.transfers.set(t.id, {
      ...t,
      debit_account_id: p.debit_account_id,
      credit_account_id: p.credit_account_id,
      ledger: p.ledger,
      code: t.code === 0 ? p.code : t.code,
      amount,
    });
    return 'ok';
  }
}
