/**
 * What the acquirer does, without HTTP: authorize, capture, void, refund, and the reads.
 *
 * Writes are idempotent by key. A request is decided and applied to memory synchronously
 * (so concurrent requests are serialized by the event loop and can never authorize twice),
 * appended to the journal together with the response it produced, and answered only once
 * that journal line is on disk. Retries with the same key and the same request get the stored
 * response, byte for byte; the same key with another request gets 409.
 *
 * Stored with the key: 200s and the business refusals (409 duplicate_reference, 422), i.e. every
 * answer given after the request was valid and its target existed. Not stored (a retry is
 * decided afresh): 400, 401, 404, 409 idempotency_key_reused and every 5xx.
 *
 * Reads are answered from a snapshot of memory taken first, after waiting for the journal to
 * hold everything appended so far, so no answer reports a state a crash could take back.
 */
import { randomBytes, randomInt } from 'node:crypto';
import { decideCard } from './cards.ts';
import { ApiError, assert } from './errors.ts';
import { cardForFingerprint, type FingerprintKey, fingerprint } from './fingerprint.ts';
import type { Journal } from './journal.ts';
import { MAX_AUTHORIZATIONS, MAX_REFUNDS_PER_AUTHORIZATION, MAX_STORED_RESPONSES } from './limits.ts';
import { settlementCsv } from './settlement.ts';
import type { AuthorizationRecord, Change, JournalEvent, State } from './state.ts';
import type { AcquirerRecords, Refund } from './types.ts';
import type { AuthorizeInput, CaptureInput, RefundInput, VoidInput } from './validate.ts';

export interface Reply {
  status: number;
  body: string;
  content_type?: string;
  /** A stored response answered again (sent as the `Idempotent-Replayed: true` header). */
  replayed?: boolean;
}

interface Decided {
  change: Change;
  /** Renders the answer from the state after the change. */
  body: () => string;
}

const STORED_ERROR_STATUSES: ReadonlySet<number> = new Set([409, 422]);
/** Inquiries wait for writes carrying their reference; this bounds how often they re-check. */
const MAX_INQUIRY_WAITS = 1_000;
const AUTH_CODE_ALPHABET = 'ABCDEFGHJKLMNPQRSTUVWXYZ0123456789';

const notFound = (what: string) => new ApiError(404, 'not_found', `No such ${what}.`);
const invalidState = (message: string) => new ApiError(422, 'invalid_state', message);
const duplicateReference = () =>
  new ApiError(409, 'duplicate_reference', 'Another operation already carries this reference.');

export class Simulator {
  private fatal: Error | null = null;
  /** References of write requests received but not yet processed (e.g. in injected latency). */
  private readonly pending = new Map<string, Set<Promise<void>>>();

  constructor(
    private readonly state: State,
    private readonly journal: Journal,
    private readonly key: FingerprintKey,
    private readonly now: () => number,
    private readonly sales = true,
  ) {}

  /** The journal failed: memory may hold changes the disk lacks, so stop answering. */
  fail(err: Error): void {
    this.fatal ??= err;
  }

  ensureHealthy(): void {
    if (this.fatal !== null) {
      throw new ApiError(
        500,
        'journal_failed',
        'The acquirer cannot record transactions; it must be restarted.',
      );
    }
  }

  /**
   * Marks a write carrying `reference` as received. Until the returned function is called, an
   * inquiry for that reference waits instead of answering 404, which must prove absence.
   */
  track(reference: string | null): () => void {
    if (reference === null) return () => undefined;
    let finish: () => void = () => undefined;
    const done = new Promise<void>((resolve) => {
      finish = resolve;
    });
    let set = this.pending.get(reference);
    if (set === undefined) {
      set = new Set();
      this.pending.set(reference, set);
    }
    set.add(done);
    return () => {
      finish();
      set.delete(done);
      if (set.size === 0 && this.pending.get(reference) === set) this.pending.delete(reference);
    };
  }

  // -------------------------------------------------------------------------------------------
  // Writes

  authorize(key: string, input: AuthorizeInput): Promise<Reply> {
    const request = {
      op: 'authorize',
      reference: input.reference,
      amount: input.amount,
      currency: input.currency,
      card: cardForFingerprint(this.key, input.card),
      statement_descriptor: input.statement_descriptor,
      // Only a sale says so: an authorization's fingerprint stays what earlier versions stored.
      ...(input.capture ? { capture: true } : {}),
    };
    return this.write(key, request, () => {
      if (this.state.authorizationCount >= MAX_AUTHORIZATIONS) throw capacityExceeded();
      if (this.state.hasReference(input.reference)) throw duplicateReference();
      const nowMs = this.now();
      const card = decideCard(input.card, nowMs);
      const approved = card.status === 'approved';
      const record: AuthorizationRecord = {
        id: this.newId('auth_'),
        reference: input.reference,
        status: card.status,
        amount: input.amount,
        currency: input.currency,
        approved_amount: approved ? input.amount : 0,
        decline_code: card.decline_code,
        network_status: card.network_status,
        cvc_check: card.cvc_check,
        auth_code: approved ? authCode() : null,
        card_last4: card.card_last4,
        card_brand: card.card_brand,
        created: unixSeconds(nowMs),
      };
      const capture =
        approved && input.capture && this.sales
          ? { reference: input.reference, amount: input.amount, created: record.created }
          : null;
      return {
        change: { type: 'authorization', authorization: record, capture },
        body: () => this.transactionBody(record.id),
      };
    });
  }

  capture(key: string, id: string, input: CaptureInput): Promise<Reply> {
    const request = { op: 'capture', authorization_id: id, reference: input.reference, amount: input.amount };
    return this.write(key, request, () => {
      const auth = this.state.authorization(id);
      if (auth === undefined) throw notFound('authorization');
      if (this.state.hasReference(input.reference)) throw duplicateReference();
      if (auth.record.status !== 'approved')
        throw invalidState('Only an approved authorization can be captured.');
      if (auth.voided !== null) throw invalidState('The authorization was voided.');
      if (auth.capture !== null) throw invalidState('The authorization was already captured.');
      const amount = input.amount ?? auth.record.approved_amount;
      if (amount > auth.record.approved_amount) {
        throw new ApiError(422, 'amount_too_large', 'The capture exceeds the approved amount.');
      }
      // Capturing less than approved releases the rest: one capture per authorization.
      const capture = { reference: input.reference, amount, created: unixSeconds(this.now()) };
      return {
        change: { type: 'capture', authorization_id: id, capture },
        body: () => this.transactionBody(id),
      };
    });
  }

  void(key: string, id: string, input: VoidInput): Promise<Reply> {
    const request = { op: 'void', authorization_id: id, reference: input.reference };
    return this.write(key, request, () => {
      const auth = this.state.authorization(id);
      if (auth === undefined) throw notFound('authorization');
      if (this.state.hasReference(input.reference)) throw duplicateReference();
      if (auth.record.status !== 'approved')
        throw invalidState('Only an approved authorization can be voided.');
      if (auth.capture !== null) throw invalidState('A captured authorization cannot be voided; refund it.');
      if (auth.voided !== null) throw invalidState('The authorization was already voided.');
      const change: Change = {
        type: 'void',
        authorization_id: id,
        reference: input.reference,
        created: unixSeconds(this.now()),
      };
      return { change, body: () => this.transactionBody(id) };
    });
  }

  refund(key: string, id: string, input: RefundInput): Promise<Reply> {
    const request = { op: 'refund', authorization_id: id, reference: input.reference, amount: input.amount };
    return this.write(key, request, () => {
      const auth = this.state.authorization(id);
      if (auth === undefined) throw notFound('authorization');
      if (this.state.hasReference(input.reference)) throw duplicateReference();
      if (auth.capture === null) throw invalidState('Nothing was captured on this authorization.');
      if (auth.refunds.length >= MAX_REFUNDS_PER_AUTHORIZATION) {
        throw new ApiError(
          422,
          'too_many_refunds',
          `At most ${MAX_REFUNDS_PER_AUTHORIZATION} refunds per capture.`,
        );
      }
      if (auth.refunded + input.amount > auth.capture.amount) {
        throw new ApiError(422, 'amount_too_large', 'Refunds would exceed the captured amount.');
      }
      const refund: Refund = {
        id: this.newId('rfd_'),
        authorization_id: id,
        reference: input.reference,
        amount: input.amount,
        status: 'succeeded',
        created: unixSeconds(this.now()),
      };
      return { change: { type: 'refund', refund }, body: () => JSON.stringify(refund) };
    });
  }

  private async write(key: string, request: Record<string, unknown>, decide: () => Decided): Promise<Reply> {
    this.ensureHealthy();
    const print = fingerprint(request);
    const stored = this.state.storedResponse(key);
    if (stored !== undefined) {
      if (stored.fingerprint !== print) {
        throw new ApiError(
          409,
          'idempotency_key_reused',
          'This Idempotency-Key was used with a different request.',
        );
      }
      // The first request may still be waiting for its fsync: never replay ahead of the disk.
      await this.durable(stored.seq);
      return { status: stored.status, body: stored.body, replayed: true };
    }
    this.ensureWritable();
    let change: Change | null = null;
    let status = 200;
    let body: string;
    try {
      const decided = decide();
      this.state.applyChange(decided.change);
      change = decided.change;
      body = decided.body();
    } catch (err) {
      if (!(err instanceof ApiError) || !STORED_ERROR_STATUSES.has(err.status)) throw err;
      status = err.status;
      body = err.body();
    }
    const response = { key, fingerprint: print, status, body };
    const event: JournalEvent =
      change === null ? { v: 1, type: 'response', response } : { v: 1, ...change, response };
    const seq = this.journal.append(event);
    this.state.storeResponse(response, seq);
    await this.durable(seq);
    return { status, body };
  }

  private ensureWritable(): void {
    this.ensureHealthy();
    if (this.journal.isClosed) throw new ApiError(503, 'shutting_down', 'The acquirer is shutting down.');
    if (!this.journal.accepting()) {
      throw new ApiError(503, 'overloaded', 'The journal is behind; retry shortly.');
    }
    if (this.state.storedResponseCount >= MAX_STORED_RESPONSES) throw capacityExceeded();
  }

  private async durable(seq: number): Promise<void> {
    try {
      await this.journal.durable(seq);
    } catch {
      // The outcome is unknown to us as much as to the caller: a 5xx says exactly that.
      throw new ApiError(500, 'journal_failed', 'The acquirer could not record the transaction.');
    }
  }

  private async barrier(): Promise<void> {
    this.ensureHealthy();
    try {
      await this.journal.barrier();
    } catch {
      throw new ApiError(500, 'journal_failed', 'The acquirer cannot read a durable state.');
    }
  }

  // -------------------------------------------------------------------------------------------
  // Reads

  async transaction(id: string): Promise<Reply> {
    this.ensureHealthy();
    const transaction = this.state.transaction(id);
    if (transaction === undefined) throw notFound('authorization');
    const body = JSON.stringify(transaction);
    await this.barrier();
    return { status: 200, body };
  }

  /** 404 only when no operation ever carried the reference (and none is being processed). */
  async inquire(reference: string): Promise<Reply> {
    this.ensureHealthy();
    await this.settled(reference);
    const inquiry = this.state.inquiry(reference);
    if (inquiry === undefined) throw new ApiError(404, 'not_found', 'No operation carries this reference.');
    const body = JSON.stringify(inquiry);
    await this.barrier();
    return { status: 200, body };
  }

  async report(day: string): Promise<Reply> {
    this.ensureHealthy();
    const body = settlementCsv(this.state.settlementItems(day));
    await this.barrier();
    return { status: 200, body, content_type: 'text/csv; charset=utf-8' };
  }

  records(): AcquirerRecords {
    return { authorizations: this.state.transactions() };
  }

  async durableRecords(): Promise<Reply> {
    const body = JSON.stringify(this.records());
    await this.barrier();
    return { status: 200, body };
  }

  private async settled(reference: string): Promise<void> {
    for (let waits = 0; waits < MAX_INQUIRY_WAITS; waits++) {
      const pending = this.pending.get(reference);
      if (pending === undefined) return;
      await Promise.all(pending);
    }
    throw new ApiError(503, 'reference_busy', 'Requests with this reference keep arriving; retry shortly.');
  }

  private transactionBody(id: string): string {
    const transaction = this.state.transaction(id);
    assert(transaction !== undefined, 'a changed authorization exists');
    return JSON.stringify(transaction);
  }

  private newId(prefix: string): string {
    // 96 random bits: a collision is not expected, but checking costs nothing.
    for (let attempt = 0; attempt < 3; attempt++) {
      const id = prefix + randomBytes(12).toString('hex');
      if (!this.state.hasId(id)) return id;
    }
    assert(false, 'random ids keep colliding');
  }
}

function capacityExceeded(): ApiError {
  return new ApiError(
    503,
    'capacity_exceeded',
    'The simulator holds as many records as it may; use a new data dir.',
  );
}

function unixSeconds(ms: number): number {
  return Math.floor(ms / 1000);
}

function authCode(): string {
  let code = '';
  for (let i = 0; i < 6; i++) code += AUTH_CODE_ALPHABET[randomInt(AUTH_CODE_ALPHABET.length)];
  return code;
}
