import { v7 } from 'uuid';

export { applyAccounts, applyTransfers } from './engine.ts';
export { DEFAULT_LEDGER_OPTIONS, Ledger, type LedgerOptions, LedgerOverloaded } from './ledger.ts';
export * from './types.ts';
export { IncrementalVerifier, LEDGER_CHECKS, type Violation, verifyLedger } from './verify.ts';

/** A new time-sortable 128-bit id (UUIDv7) for an account or a transfer. */
export function ledgerId(): string {
  return v7();
}
export {
  type AccountJson,
  accountFromJson,
  accountToJson,
  type TransferJson,
  transferFromJson,
  transferToJson,
} from './json.ts';
export { type LedgerOperations, makeLedgerOperations } from './operations.ts';
export { accountsByUserData, balancesAt, listAccountTransfers, transfersByUserData } from './store.ts';
