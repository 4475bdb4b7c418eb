export { DEFAULT_API_KEY, JOURNAL_FILE, startAcquirer } from './acquirer.ts';
export { parseFaults } from './faults.ts';
export { captureFee, SETTLEMENT_HEADER } from './settlement.ts';
export type {
  Acquirer,
  AcquirerOptions,
  AcquirerRecords,
  AuthorizationStatus,
  Capture,
  CardBrand,
  CvcCheck,
  Faults,
  Inquiry,
  NetworkStatus,
  Operation,
  OperationFaults,
  Refund,
  Transaction,
} from './types.ts';
