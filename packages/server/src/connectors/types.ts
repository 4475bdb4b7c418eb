/**
 * What Moneta asks of an acquirer, whoever it is. Every call carries our reference, which
 * is also the acquirer's idempotency key: a call repeated with the same reference (after a
 * timeout, a crash, a lost response) is never carried out twice, and `inquire(reference)`
 * tells what became of it.
 */
export interface CardForAcquirer {
  number: string;
  exp_month: number;
  exp_year: number;
  cvc: string | null;
}

export interface AuthorizeRequest {
  reference: string;
  amount: number;
  currency: string;
  card: CardForAcquirer;
  statement_descriptor: string | null;
  /**
   * Capture the whole amount with the approval (a sale), for automatic capture: one call
   * instead of two. An acquirer that cannot answers an approval with nothing captured, and
   * Moneta captures it with a call of its own.
   */
  capture: boolean;
}

/** The acquirer's record of one authorization, as far as Moneta needs it. */
export interface AcquirerTransaction {
  id: string;
  reference: string;
  status: 'approved' | 'declined' | 'authentication_required';
  amount: number;
  approved_amount: number;
  captured_amount: number;
  refunded_amount: number;
  voided: boolean;
  decline_code: string | null;
  network_status: 'approved_by_network' | 'declined_by_network' | 'not_sent_to_network';
  cvc_check: 'pass' | 'fail' | 'unavailable' | 'unchecked';
  auth_code: string | null;
}

export interface AcquirerRefund {
  id: string;
  authorization_id: string;
  reference: string;
  amount: number;
  status: 'succeeded';
}

export type Inquiry =
  | { kind: 'authorization' | 'capture' | 'void'; transaction: AcquirerTransaction }
  | { kind: 'refund'; transaction: AcquirerTransaction; refund: AcquirerRefund };

export interface Connector {
  readonly name: string;
  authorize(req: AuthorizeRequest): Promise<AcquirerTransaction>;
  capture(authorization_id: string, req: { reference: string; amount: number }): Promise<AcquirerTransaction>;
  void(authorization_id: string, req: { reference: string }): Promise<AcquirerTransaction>;
  refund(authorization_id: string, req: { reference: string; amount: number }): Promise<AcquirerRefund>;
  /** What became of the call with this reference; null when the acquirer proves it has none. */
  inquire(reference: string): Promise<Inquiry | null>;
  settlementReport(date: string): Promise<string>;
  close(): Promise<void>;
}

/**
 * A call that did not give an answer we can act on. `unknown`: the acquirer may have carried
 * it out (timeout, dropped connection, a 5xx after the request reached it): only an inquiry
 * may settle it, never a guess. `failed`: it certainly did not happen (refused before
 * reaching the acquirer, or a 4xx the acquirer answered), so it may be reported as failed.
 */
export class ConnectorError extends Error {
  constructor(
    readonly outcome: 'unknown' | 'failed',
    readonly acquirer: string,
    message: string,
    readonly code: string | null = null,
  ) {
    super(`${acquirer}: ${message}`);
    this.name = 'ConnectorError';
  }
}
