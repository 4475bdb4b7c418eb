/**
 * The simulator's public shapes: what its HTTP API answers and what `startAcquirer` accepts.
 * Amounts are integers in the currency's minor unit; currencies are lowercase ISO 4217 codes.
 */

export type CardBrand = 'visa' | 'mastercard' | 'amex' | 'discover' | 'unknown';
export type AuthorizationStatus = 'approved' | 'declined' | 'authentication_required';
export type NetworkStatus = 'approved_by_network' | 'declined_by_network' | 'not_sent_to_network';
export type CvcCheck = 'pass' | 'fail' | 'unavailable' | 'unchecked';

export interface Capture {
  reference: string;
  amount: number;
  /** Unix seconds. */
  created: number;
}

export interface Refund {
  id: string;
  authorization_id: string;
  reference: string;
  amount: number;
  status: 'succeeded';
  /** Unix seconds. */
  created: number;
}

export interface Transaction {
  id: string;
  reference: string;
  status: AuthorizationStatus;
  amount: number;
  currency: string;
  approved_amount: number;
  captured_amount: number;
  refunded_amount: number;
  voided: boolean;
  decline_code: string | null;
  network_status: NetworkStatus;
  cvc_check: CvcCheck;
  auth_code: string | null;
  card_last4: string;
  card_brand: CardBrand;
  /** Unix seconds. */
  created: number;
  captures: Capture[];
  refunds: Refund[];
}

export interface Inquiry {
  kind: 'authorization' | 'capture' | 'void' | 'refund';
  transaction: Transaction;
  refund?: Refund;
}

export interface AcquirerRecords {
  authorizations: Transaction[];
}

/** Operations that faults can be set for; GET /v1/authorizations/:id counts as `inquire`. */
export const OPERATIONS = ['authorize', 'capture', 'void', 'refund', 'inquire', 'report'] as const;
export type Operation = (typeof OPERATIONS)[number];

export interface OperationFaults {
  /** Uniform extra delay before the request is processed. */
  latency_ms?: { min: number; max: number };
  /** 0..1: answer 500 or 503 without processing. */
  error_rate?: number;
  /** 0..1: process the request, then wait `hang_ms` before answering. */
  timeout_rate?: number;
  /** 0..1: process and journal the request, then destroy the socket without answering. */
  lost_response_rate?: number;
  /** Default 30 000. */
  hang_ms?: number;
}

export interface Faults {
  /** ISO time; until then every /v1 request gets 503 without processing. */
  outage_until?: string | null;
  operations?: Partial<Record<Operation, OperationFaults>>;
}

export interface AcquirerOptions {
  name: string;
  /** 0 or absent: any free port. */
  port?: number;
  /** Default 127.0.0.1. */
  host?: string;
  data_dir: string;
  /** Default 'sim_test_key'; '' turns authentication off. */
  api_key?: string;
  faults?: Faults;
  /**
   * Default true. False plays an acquirer without sales: an authorization's `capture: true`
   * is accepted and ignored, and the approval comes back uncaptured.
   */
  sales?: boolean;
  /** Clock in epoch milliseconds (tests); default Date.now. */
  now?: () => number;
  /** Lifecycle lines (never request data); default silent. */
  log?: (line: string) => void;
  /**
   * Called once when the journal can no longer be written: memory may then hold changes the
   * journal lacks, so from then on every request answers 500 and the CLI exits to replay.
   */
  onFatal?: (err: Error) => void;
}

export interface Acquirer {
  url: string;
  close(): Promise<void>;
  setFaults(f: Faults): void;
  records(): AcquirerRecords;
}
