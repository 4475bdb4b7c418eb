import type { Statement, Tx } from '../db/pool.ts';

/** Who is asking: every idempotent request and every object it touches is scoped by these. */
export interface RequestScope {
  merchant_id: string;
  livemode: boolean;
  api_key_id: string;
  request_id: string;
}

export interface StoredResponse {
  status: number;
  /** The exact bytes sent the first time; replays send these again. */
  body: string;
}

/**
 * What an atomic phase decides: move to the next recovery point, or finish with a response.
 * `writes` are statements the phase could describe instead of running: they are sent with
 * the key row and the COMMIT in one round trip, after anything the phase ran through `tx`.
 * A phase that only inserts rows it built itself costs one round trip in all.
 */
export type PhaseOutcome =
  | {
      recovery_point: string;
      state?: Record<string, unknown>;
      writes?: readonly Statement[];
      /**
       * Answer this execution with `provisional` and stop here, without storing it: the
       * request stays unfinished at `recovery_point` with its lock released, so a retry with
       * the same key (or the completer) resumes it and may reach the final answer. For
       * outcomes that only a later inquiry can settle (a payment whose answer was lost).
       */
      provisional?: StoredResponse;
    }
  | { response: StoredResponse; writes?: readonly Statement[] };

export interface PhaseContext<P> {
  readonly params: P;
  readonly scope: RequestScope;
  /** The recovery point reached so far; `started` for a new request. */
  readonly recovery_point: string;
  /** Values earlier phases saved for later ones (ids of rows they created, say). */
  readonly state: Readonly<Record<string, unknown>>;
  /**
   * Runs `fn` in one database transaction together with the update of the recovery point
   * (or the stored response). Never make a foreign call inside `fn`: foreign calls go
   * between phases, and each carries its own idempotency key derived from our records.
   */
  atomicPhase(fn: (tx: Tx) => Promise<PhaseOutcome>, opts?: PhaseOptions): Promise<void>;
}

export interface PhaseOptions {
  /**
   * Let the phase share its transaction with concurrent phases marked so (group commit; see
   * GroupCommit), naming the object it changes (a payment intent's id). Phases of a batch
   * run at once and none sees the `writes` the others return, so a batch holds one phase per
   * object. For phases that run many at a time and rarely fail: a phase that fails in a batch
   * rolls it back, runs again alone, and costs the others of its batch one more try.
   */
  batch?: string;
}

/**
 * A request that can be resumed. `steps` maps each recovery point to the code that runs
 * from there; every step ends by calling `atomicPhase` at least once, which either moves
 * the recovery point forward or stores the response. A crashed request resumes at the
 * step of the last committed recovery point.
 */
export interface IdempotentOperation<P> {
  readonly name: string;
  /** False when params hold data that must not be stored (card numbers): no completer then. */
  readonly persist_params: boolean;
  /**
   * When the params hold secrets, the key the request fingerprint (stored to detect a key
   * reused with other parameters) is computed under: HMAC-SHA256 instead of a plain hash,
   * which for a card number is reversed by trying every number.
   */
  readonly fingerprint_key?: () => Buffer;
  readonly steps: Readonly<Record<string, (ctx: PhaseContext<P>) => Promise<void>>>;
}

export interface ExecutionResult {
  status: number;
  body: string;
  replayed: boolean;
  /** Request-Id of the request whose response this is (differs from ours on replay). */
  original_request_id: string;
}

export const STARTED = 'started';
export const FINISHED = 'finished';

export function jsonResponse(status: number, body: unknown): { response: StoredResponse } {
  return { response: { status, body: JSON.stringify(body) } };
}

/**
 * An operation of one atomic phase that answers 200 with what `run` returns (an update, a
 * roll): its params are stored, so a retry with the same key replays the first answer.
 */
export function onePhaseOperation<P>(
  name: string,
  run: (tx: Tx, ctx: PhaseContext<P>) => Promise<unknown>,
): IdempotentOperation<P> {
  return {
    name,
    persist_params: true,
    steps: { started: (ctx) => ctx.atomicPhase(async (tx) => jsonResponse(200, await run(tx, ctx))) },
  };
}
