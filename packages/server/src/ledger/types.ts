/**
 * The ledger's model, after TigerBeetle: accounts with four balances, immutable transfers
 * between two accounts of one ledger (one ledger per currency), two-phase transfers, linked
 * chains, and a result per transfer named as TigerBeetle names it.
 *
 * Amounts and balances are integers in minor units held as bigint. PostgreSQL stores them
 * as `bigint` (63 bits) rather than TigerBeetle's u128 because `numeric` arithmetic would
 * cost most of the throughput; a sum that would pass 2^63 − 1 is refused with an
 * `overflows_*` result instead of wrapping.
 */

export const AMOUNT_MAX = 2n ** 63n - 1n;

export const AccountFlags = {
  linked: 1 << 0,
  debits_must_not_exceed_credits: 1 << 1,
  credits_must_not_exceed_debits: 1 << 2,
  history: 1 << 3,
  closed: 1 << 4,
} as const;

export const TransferFlags = {
  linked: 1 << 0,
  pending: 1 << 1,
  post_pending_transfer: 1 << 2,
  void_pending_transfer: 1 << 3,
  balancing_debit: 1 << 4,
  balancing_credit: 1 << 5,
} as const;

export type AccountFlagName = keyof typeof AccountFlags;
export type TransferFlagName = keyof typeof TransferFlags;

const ACCOUNT_FLAGS_KNOWN = Object.values(AccountFlags).reduce((a, b) => a | b, 0);
const TRANSFER_FLAGS_KNOWN = Object.values(TransferFlags).reduce((a, b) => a | b, 0);

export function hasUnknownAccountFlags(flags: number): boolean {
  return (flags & ~ACCOUNT_FLAGS_KNOWN) !== 0;
}

export function hasUnknownTransferFlags(flags: number): boolean {
  return (flags & ~TRANSFER_FLAGS_KNOWN) !== 0;
}

/** Ids are 128-bit, chosen by the caller (time-sortable: UUIDv7), written as UUIDs. */
export type LedgerId = string;

export interface AccountInput {
  id: LedgerId;
  /** Test (false, the default) or live money; a transfer only sees accounts of its own mode. */
  livemode?: boolean;
  ledger: number;
  code: number;
  flags: number;
  user_data_128: LedgerId | null;
  user_data_64: bigint | null;
  user_data_32: number | null;
}

export interface Balances {
  debits_pending: bigint;
  debits_posted: bigint;
  credits_pending: bigint;
  credits_posted: bigint;
}

export interface Account extends AccountInput, Balances {
  livemode: boolean;
  /** Nanoseconds since the epoch, assigned by the ledger when the account was created. */
  timestamp: bigint;
}

export interface TransferInput {
  id: LedgerId;
  /** Test (false, the default) or live; accounts and pending transfers of the other mode do not exist for it. */
  livemode?: boolean;
  debit_account_id: LedgerId;
  credit_account_id: LedgerId;
  /**
   * For a post: the amount to post (at most the pending amount); null posts it all.
   * For a void: null or the pending amount. For balancing transfers: the most to move.
   */
  amount: bigint | null;
  pending_id: LedgerId | null;
  ledger: number;
  code: number;
  flags: number;
  /** Pending transfers only: seconds until the pending amount is released; 0 = never. */
  timeout_s: number;
  user_data_128: LedgerId | null;
  user_data_64: bigint | null;
  user_data_32: number | null;
}

export interface Transfer extends Omit<TransferInput, 'amount' | 'livemode'> {
  livemode: boolean;
  /** What actually moved (a balancing transfer or a full post may differ from the input). */
  amount: bigint;
  timestamp: bigint;
}

/** How a pending transfer ended; absent while it is still pending. */
export type PendingState = 'pending' | 'posted' | 'voided' | 'expired';

export interface PendingRecord {
  transfer: Transfer;
  state: PendingState;
  /** Nanoseconds since the epoch at which it expires, or null for no timeout. */
  expires_at: bigint | null;
}

export const CreateAccountResults = [
  'ok',
  'linked_event_failed',
  'linked_event_chain_open',
  'reserved_flag',
  'id_must_not_be_zero',
  'id_must_not_be_int_max',
  'flags_are_mutually_exclusive',
  'ledger_must_not_be_zero',
  'code_must_not_be_zero',
  'exists_with_different_flags',
  'exists_with_different_user_data_128',
  'exists_with_different_user_data_64',
  'exists_with_different_user_data_32',
  'exists_with_different_ledger',
  'exists_with_different_code',
  'exists',
] as const;
export type CreateAccountResult = (typeof CreateAccountResults)[number];

export const CreateTransferResults = [
  'ok',
  'linked_event_failed',
  'linked_event_chain_open',
  'reserved_flag',
  'id_must_not_be_zero',
  'id_must_not_be_int_max',
  'flags_are_mutually_exclusive',
  'debit_account_id_must_not_be_zero',
  'debit_account_id_must_not_be_int_max',
  'credit_account_id_must_not_be_zero',
  'credit_account_id_must_not_be_int_max',
  'accounts_must_be_different',
  'pending_id_must_be_zero',
  'pending_id_must_not_be_zero',
  'pending_id_must_not_be_int_max',
  'pending_id_must_be_different',
  'timeout_reserved_for_pending_transfer',
  'amount_must_not_be_zero',
  'ledger_must_not_be_zero',
  'code_must_not_be_zero',
  'debit_account_not_found',
  'credit_account_not_found',
  'accounts_must_have_the_same_ledger',
  'transfer_must_have_the_same_ledger_as_accounts',
  'pending_transfer_not_found',
  'pending_transfer_not_pending',
  'pending_transfer_has_different_debit_account_id',
  'pending_transfer_has_different_credit_account_id',
  'pending_transfer_has_different_ledger',
  'pending_transfer_has_different_code',
  'exceeds_pending_transfer_amount',
  'pending_transfer_has_different_amount',
  'pending_transfer_already_posted',
  'pending_transfer_already_voided',
  'pending_transfer_expired',
  'exists_with_different_flags',
  'exists_with_different_debit_account_id',
  'exists_with_different_credit_account_id',
  'exists_with_different_amount',
  'exists_with_different_pending_id',
  'exists_with_different_user_data_128',
  'exists_with_different_user_data_64',
  'exists_with_different_user_data_32',
  'exists_with_different_timeout',
  'exists_with_different_code',
  'exists',
  'overflows_debits_pending',
  'overflows_credits_pending',
  'overflows_debits_posted',
  'overflows_credits_posted',
  'overflows_debits',
  'overflows_credits',
  'overflows_timeout',
  'exceeds_credits',
  'exceeds_debits',
  'debit_account_already_closed',
  'credit_account_already_closed',
] as const;
export type CreateTransferResult = (typeof CreateTransferResults)[number];

export const ZERO_ID = '00000000-0000-0000-0000-000000000000';
export const MAX_ID = 'ffffffff-ffff-ffff-ffff-ffffffffffff';
/** TigerBeetle's batch size: the most events one call may carry. */
export const MAX_BATCH = 8_189;
/** Longest timeout a pending transfer may ask for (TigerBeetle's u32 seconds). */
export const MAX_TIMEOUT_S = 2 ** 32 - 1;
