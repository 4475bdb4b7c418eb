import { invalidRequest } from '../lib/errors.ts';
import {
  type Account,
  type AccountFlagName,
  AccountFlags,
  type AccountInput,
  AMOUNT_MAX,
  type Transfer,
  type TransferFlagName,
  TransferFlags,
  type TransferInput,
  ZERO_ID,
} from './types.ts';

/**
 * The ledger's JSON shapes for the HTTP API. Ids are UUIDs; amounts, balances and
 * user_data_64 are decimal strings, because they may exceed what a JSON number carries
 * exactly (2^53); inputs may also give them as integers. Flags are lists of names.
 */

export interface AccountJson {
  id: string;
  ledger: number;
  code: number;
  flags?: AccountFlagName[];
  user_data_128?: string;
  user_data_64?: string | number;
  user_data_32?: number;
}

export interface TransferJson {
  id: string;
  debit_account_id?: string;
  credit_account_id?: string;
  amount?: string | number;
  pending_id?: string;
  ledger?: number;
  code?: number;
  flags?: TransferFlagName[];
  timeout?: number;
  user_data_128?: string;
  user_data_64?: string | number;
  user_data_32?: number;
}

const DIGITS = /^\d{1,19}$/;

/** A non-negative integer below 2^63, given as an integer or a decimal string. */
function integer63(value: string | number | undefined, param: string): bigint | null {
  if (value === undefined) return null;
  const text = typeof value === 'number' ? (Number.isSafeInteger(value) ? String(value) : '') : value;
  if (!DIGITS.test(text) || BigInt(text) > AMOUNT_MAX) {
    throw invalidRequest(
      `Invalid ${param}: must be a whole number from 0 to ${AMOUNT_MAX} (a decimal string beyond 2^53).`,
      param,
    );
  }
  return BigInt(text);
}

function flagBits<N extends string>(names: readonly N[] | undefined, table: Record<N, number>): number {
  let bits = 0;
  for (const name of names ?? []) bits |= table[name];
  return bits;
}

function flagNames<N extends string>(bits: number, table: Record<N, number>): N[] {
  return (Object.entries(table) as [N, number][]).filter(([, bit]) => (bits & bit) !== 0).map(([n]) => n);
}

export function accountFromJson(json: AccountJson, index: number, livemode: boolean): AccountInput {
  return {
    id: json.id,
    livemode,
    ledger: json.ledger,
    code: json.code,
    flags: flagBits(json.flags, AccountFlags),
    user_data_128: json.user_data_128 ?? null,
    user_data_64: integer63(json.user_data_64, `accounts[${index}][user_data_64]`),
    user_data_32: json.user_data_32 ?? null,
  };
}

export function transferFromJson(json: TransferJson, index: number, livemode: boolean): TransferInput {
  return {
    id: json.id,
    livemode,
    debit_account_id: json.debit_account_id ?? ZERO_ID,
    credit_account_id: json.credit_account_id ?? ZERO_ID,
    amount: integer63(json.amount, `transfers[${index}][amount]`),
    pending_id: json.pending_id ?? null,
    ledger: json.ledger ?? 0,
    code: json.code ?? 0,
    flags: flagBits(json.flags, TransferFlags),
    timeout_s: json.timeout ?? 0,
    user_data_128: json.user_data_128 ?? null,
    user_data_64: integer63(json.user_data_64, `transfers[${index}][user_data_64]`),
    user_data_32: json.user_data_32 ?? null,
  };
}

/** Nanoseconds since the epoch → Stripe's `created` (seconds). */
const seconds = (ns: bigint) => Number(ns / 1_000_000_000n);

export function accountToJson(a: Account): Record<string, unknown> {
  return {
    id: a.id,
    object: 'ledger.account',
    livemode: a.livemode,
    ledger: a.ledger,
    code: a.code,
    flags: flagNames(a.flags, AccountFlags),
    debits_pending: a.debits_pending.toString(),
    debits_posted: a.debits_posted.toString(),
    credits_pending: a.credits_pending.toString(),
    credits_posted: a.credits_posted.toString(),
    user_data_128: a.user_data_128,
    user_data_64: a.user_data_64?.toString() ?? null,
    user_data_32: a.user_data_32,
    timestamp: a.timestamp.toString(),
    created: seconds(a.timestamp),
  };
}

export function transferToJson(t: Transfer): Record<string, unknown> {
  return {
    id: t.id,
    object: 'ledger.transfer',
    livemode: t.livemode,
    debit_account_id: t.debit_account_id,
    credit_account_id: t.credit_account_id,
    amount: t.amount.toString(),
    pending_id: t.pending_id,
    ledger: t.ledger,
    code: t.code,
    flags: flagNames(t.flags, TransferFlags),
    timeout: t.timeout_s,
    user_data_128: t.user_data_128,
    user_data_64: t.user_data_64?.toString() ?? null,
    user_data_32: t.user_data_32,
    timestamp: t.timestamp.toString(),
    created: seconds(t.timestamp),
  };
}
