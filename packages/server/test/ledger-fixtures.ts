import { type AccountInput, ledgerId, type TransferInput } from '../src/ledger/index.ts';

/** Test and benchmark inputs for the ledger: USD unless told otherwise, every field explicit. */
export const USD = 840;

export function accountInput(flags = 0, over: Partial<AccountInput> = {}): AccountInput {
  return {
    id: ledgerId(),
    ledger: USD,
    code: 1,
    flags,
    user_data_128: null,
    user_data_64: null,
    user_data_32: null,
    ...over,
  };
}

export function transferInput(
  debit: string,
  credit: string,
  amount: bigint | null,
  over: Partial<TransferInput> = {},
): TransferInput {
  return {
    id: ledgerId(),
    debit_account_id: debit,
    credit_account_id: credit,
    amount,
    pending_id: null,
    ledger: USD,
    code: 1,
    flags: 0,
    timeout_s: 0,
    user_data_128: null,
    user_data_64: null,
    user_data_32: null,
    ...over,
  };
}
