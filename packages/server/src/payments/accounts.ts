import { v5 } from 'uuid';
import {
  AccountFlags,
  type AccountInput,
  type Ledger,
  TransferFlags,
  type TransferInput,
} from '../ledger/index.ts';
import { assert } from '../lib/errors.ts';
import { CURRENCIES } from './currency.ts';

/**
 * The payment accounts of the chart in docs/ledger.md. Their ids derive from what they are
 * for (code, owner, currency, mode), so payments find them without a lookup table; transfer
 * ids derive from the payment step, so a step redone after a crash finds its transfer
 * (`exists`) instead of booking it twice.
 */
const NAMESPACE = '0b5e6f38-8f2e-4d0e-9a55-2a1c3f4d7e10';

export const CODES = {
  acquirer_receivable: 110,
  merchant_pending: 200,
  fees_revenue: 400,
  // Transfer codes: the payment step.
  authorization: 1,
  fee: 3,
  refund: 4,
} as const;

/**
 * Each payment account is split into shards, and a payment books all its steps on the shard
 * its intent id picks: the acquirer's receivable, a merchant's pending balance and the fee
 * account are touched by every payment, and one row each would make payments book one at a
 * time (each holds the rows' locks for its booking transaction). With shards, concurrent
 * payments mostly lock different rows. A refund lands on the shard its payment credited, so
 * each shard's `debits_must_not_exceed_credits` still covers it. A logical account's balance
 * is the sum of its shards: they share `user_data_128` (the logical id) and number themselves
 * in `user_data_32`.
 */
export const SHARDS = 32;

export function shardOf(intent_id: string): number {
  let h = 0;
  for (let i = 0; i < intent_id.length; i += 1) h = (h * 31 + intent_id.charCodeAt(i)) >>> 0;
  return h % SHARDS;
}

export interface PaymentAccounts {
  ledger: number;
  livemode: boolean;
  shard: number;
  /** The logical accounts (user_data_128 of their shards). */
  logical: { receivable: string; merchant_pending: string; fees: string };
  receivable: string;
  merchant_pending: string;
  fees: string;
}

/** Account ids by owner and shard: each costs six v5 hashes, and every payment step asks. */
const derived = new Map<string, PaymentAccounts>();
const MAX_DERIVED = 50_000;

export function paymentAccounts(
  merchant_id: string,
  acquirer: string,
  currency: string,
  livemode: boolean,
  intent_id: string,
): PaymentAccounts {
  const shard = shardOf(intent_id);
  const key = `${merchant_id}:${acquirer}:${currency}:${livemode}:${shard}`;
  let accounts = derived.get(key);
  if (accounts === undefined) {
    // Frozen: every caller shares this object.
    accounts = Object.freeze(deriveAccounts(merchant_id, acquirer, currency, livemode, shard));
    Object.freeze(accounts.logical);
    if (derived.size >= MAX_DERIVED) derived.clear();
    derived.set(key, accounts);
  }
  return accounts;
}

function deriveAccounts(
  merchant_id: string,
  acquirer: string,
  currency: string,
  livemode: boolean,
  shard: number,
): PaymentAccounts {
  const entry = CURRENCIES[currency];
  assert(entry, 'the currency was validated');
  const mode = livemode ? 'live' : 'test';
  const logical = {
    receivable: v5(`account:${CODES.acquirer_receivable}:${acquirer}:${currency}:${mode}`, NAMESPACE),
    merchant_pending: v5(`account:${CODES.merchant_pending}:${merchant_id}:${currency}:${mode}`, NAMESPACE),
    fees: v5(`account:${CODES.fees_revenue}:platform:${currency}:${mode}`, NAMESPACE),
  };
  const sharded = (id: string) => v5(`${id}:shard:${shard}`, NAMESPACE);
  return {
    ledger: entry.ledger,
    livemode,
    shard,
    logical,
    receivable: sharded(logical.receivable),
    merchant_pending: sharded(logical.merchant_pending),
    fees: sharded(logical.fees),
  };
}

/** The transfer id of one step of one payment object (an intent, or a refund). */
export function transferId(object_id: string, step: string): string {
  return v5(`transfer:${object_id}:${step}`, NAMESPACE);
}

const ensured = new Set<string>();
const MAX_ENSURED = 100_000;

/** Creates the accounts if they do not exist yet (idempotent: `exists` is fine). */
export async function ensureAccounts(ledger: Ledger, a: PaymentAccounts): Promise<void> {
  const livemode = a.livemode;
  if (ensured.has(a.merchant_pending) && ensured.has(a.receivable)) return;
  const account = (id: string, logical: string, code: number, flags: number): AccountInput => ({
    id,
    livemode,
    ledger: a.ledger,
    code,
    flags,
    user_data_128: logical,
    user_data_64: null,
    user_data_32: a.shard,
  });
  const results = await ledger.createAccounts([
    account(a.receivable, a.logical.receivable, CODES.acquirer_receivable, 0),
    account(
      a.merchant_pending,
      a.logical.merchant_pending,
      CODES.merchant_pending,
      AccountFlags.debits_must_not_exceed_credits | AccountFlags.history,
    ),
    account(a.fees, a.logical.fees, CODES.fees_revenue, 0),
  ]);
  assert(
    results.every((r) => r === 'ok' || r === 'exists'),
    `payment accounts created (${results.join(', ')})`,
  );
  if (ensured.size >= MAX_ENSURED) ensured.clear();
  for (const id of [a.receivable, a.merchant_pending, a.fees]) ensured.add(id);
}

/** Seven days: how long a card authorization holds (then the pending transfer expires). */
const AUTHORIZATION_TIMEOUT_S = 7 * 24 * 3600;

function transfer(
  over: Partial<TransferInput> & Pick<TransferInput, 'id' | 'code' | 'ledger'>,
): TransferInput {
  return {
    debit_account_id: '00000000-0000-0000-0000-000000000000',
    credit_account_id: '00000000-0000-0000-0000-000000000000',
    amount: 0n,
    pending_id: null,
    flags: 0,
    timeout_s: 0,
    user_data_128: null,
    user_data_64: null,
    user_data_32: null,
    ...over,
  } as TransferInput;
}

/** Authorization of `amount`: a pending transfer from the acquirer's receivable to the merchant. */
export function authorizationTransfer(intent_id: string, a: PaymentAccounts, amount: number): TransferInput {
  return transfer({
    id: transferId(intent_id, 'authorization'),
    debit_account_id: a.receivable,
    credit_account_id: a.merchant_pending,
    amount: BigInt(amount),
    ledger: a.ledger,
    livemode: a.livemode,
    code: CODES.authorization,
    flags: TransferFlags.pending,
    timeout_s: AUTHORIZATION_TIMEOUT_S,
  });
}

/** Capture of `captured` (the rest is released) and Moneta's fee on it, linked: both or neither. */
export function captureTransfers(
  intent_id: string,
  a: PaymentAccounts,
  captured: number,
  fee: number,
): TransferInput[] {
  return [
    transfer({
      id: transferId(intent_id, 'capture'),
      pending_id: transferId(intent_id, 'authorization'),
      amount: BigInt(captured),
      ledger: a.ledger,
      livemode: a.livemode,
      // A post carries its pending transfer's code (0 = inherit, as in TigerBeetle).
      code: 0,
      flags: TransferFlags.post_pending_transfer | TransferFlags.linked,
    }),
    transfer({
      id: transferId(intent_id, 'fee'),
      debit_account_id: a.merchant_pending,
      credit_account_id: a.fees,
      amount: BigInt(fee),
      ledger: a.ledger,
      livemode: a.livemode,
      code: CODES.fee,
    }),
  ];
}

export function voidTransfer(intent_id: string, a: PaymentAccounts): TransferInput {
  return transfer({
    id: transferId(intent_id, 'void'),
    pending_id: transferId(intent_id, 'authorization'),
    amount: null,
    ledger: a.ledger,
    livemode: a.livemode,
    code: 0,
    flags: TransferFlags.void_pending_transfer,
  });
}

/** A refund of `amount`: back from the merchant to the acquirer's receivable. */
export function refundTransfer(refund_id: string, a: PaymentAccounts, amount: number): TransferInput {
  return transfer({
    id: transferId(refund_id, 'refund'),
    debit_account_id: a.merchant_pending,
    credit_account_id: a.receivable,
    amount: BigInt(amount),
    ledger: a.ledger,
    livemode: a.livemode,
    code: CODES.refund,
  });
}
