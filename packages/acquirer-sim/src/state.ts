/**
 * The simulator's state in memory and the journal events that change it. Live requests and
 * the replay at start go through the same `applyChange` / `storeResponse`, so what a restart
 * rebuilds is exactly what was answered. Every change asserts the invariants it relies on
 * (captured ≤ approved, refunded ≤ captured, references unique): a journal that breaks them is
 * refused at start instead of producing a state no acquirer could be in.
 */
import { assert } from './errors.ts';
import { MAX_REFUNDS_PER_AUTHORIZATION } from './limits.ts';
import type { SettlementItem } from './settlement.ts';
import type { Capture, Inquiry, Refund, Transaction } from './types.ts';

/** An authorization as created; what changes later (capture, void, refunds) is kept apart. */
export type AuthorizationRecord = Omit<
  Transaction,
  'captured_amount' | 'refunded_amount' | 'voided' | 'captures' | 'refunds'
>;

/** The first answer to an idempotency key, replayed byte for byte to every retry. */
export interface StoredResponse {
  key: string;
  /** SHA-256 of the canonical request (card data only as keyed hashes). */
  fingerprint: string;
  status: number;
  body: string;
}

export type Change =
  | {
      type: 'authorization';
      authorization: AuthorizationRecord;
      /** A sale: the approval captured at once, under the authorization's own reference. */
      capture?: Capture | null;
    }
  | { type: 'capture'; authorization_id: string; capture: Capture }
  | { type: 'void'; authorization_id: string; reference: string; created: number }
  | { type: 'refund'; refund: Refund };

/** One journal line: a change and the response stored with it, or a stored response alone. */
export type JournalEvent =
  | ({ v: 1 } & Change & { response: StoredResponse })
  | {
      v: 1;
      type: 'response';
      response: StoredResponse;
    };

interface AuthorizationState {
  record: AuthorizationRecord;
  capture: Capture | null;
  voided: { reference: string; created: number } | null;
  refunds: Refund[];
  refunded: number;
}

type ReferenceTarget =
  | { kind: 'authorization' | 'capture' | 'void'; authorization_id: string }
  | { kind: 'refund'; authorization_id: string; refund_id: string };

interface StoredRecord {
  fingerprint: string;
  status: number;
  body: string;
  /** Journal sequence number: a retry waits until it is durable before replaying. */
  seq: number;
}

const DAY_SECONDS = 86_400;

export function utcDay(unixSeconds: number): string {
  return new Date(Math.floor(unixSeconds / DAY_SECONDS) * DAY_SECONDS * 1000).toISOString().slice(0, 10);
}

export class State {
  /** Insertion order is creation order (GET /admin/records relies on it). */
  private readonly authorizations = new Map<string, AuthorizationState>();
  /** Every reference we were given, whatever operation carried it (for inquiries). */
  private readonly references = new Map<string, ReferenceTarget>();
  private readonly responses = new Map<string, StoredRecord>();
  private readonly settlement = new Map<string, SettlementItem[]>();
  private readonly refundIds = new Set<string>();

  get authorizationCount(): number {
    return this.authorizations.size;
  }

  get storedResponseCount(): number {
    return this.responses.size;
  }

  hasId(id: string): boolean {
    return this.authorizations.has(id) || this.refundIds.has(id);
  }

  hasReference(reference: string): boolean {
    return this.references.has(reference);
  }

  storedResponse(key: string): StoredRecord | undefined {
    return this.responses.get(key);
  }

  authorization(id: string): Readonly<AuthorizationState> | undefined {
    return this.authorizations.get(id);
  }

  /** Replays one journal line. */
  apply(event: JournalEvent, seq: number): void {
    assert(event.v === 1, `unknown journal event version ${String(event.v)}`);
    if (event.type !== 'response') this.applyChange(event);
    this.storeResponse(event.response, seq);
  }

  applyChange(change: Change): void {
    switch (change.type) {
      case 'authorization':
        this.createAuthorization(change.authorization);
        if (change.capture) this.capture(change.authorization.id, change.capture, false);
        break;
      case 'capture':
        this.capture(change.authorization_id, change.capture);
        break;
      case 'void':
        this.void(change.authorization_id, change.reference, change.created);
        break;
      case 'refund':
        this.refund(change.refund);
        break;
      default:
        assert(false, `unknown journal event type ${String((change as { type: unknown }).type)}`);
    }
  }

  storeResponse(response: StoredResponse, seq: number): void {
    assert(!this.responses.has(response.key), 'one stored response per idempotency key');
    assert(typeof response.body === 'string' && Number.isInteger(response.status), 'stored response shape');
    this.responses.set(response.key, {
      fingerprint: response.fingerprint,
      status: response.status,
      body: response.body,
      seq,
    });
  }

  private claimReference(reference: string, target: ReferenceTarget): void {
    assert(typeof reference === 'string' && !this.references.has(reference), 'references are unique');
    this.references.set(reference, target);
  }

  private createAuthorization(record: AuthorizationRecord): void {
    assert(!this.authorizations.has(record.id), 'authorization ids are unique');
    assert(Number.isSafeInteger(record.amount) && record.amount > 0, 'authorized amount is positive');
    assert(
      record.approved_amount === (record.status === 'approved' ? record.amount : 0),
      'approved_amount is the amount when approved, else 0',
    );
    this.claimReference(record.reference, { kind: 'authorization', authorization_id: record.id });
    this.authorizations.set(record.id, { record, capture: null, voided: null, refunds: [], refunded: 0 });
  }

  private existing(id: string): AuthorizationState {
    const auth = this.authorizations.get(id);
    assert(auth !== undefined, `authorization ${id} exists`);
    return auth;
  }

  /** `claim`: a capture of its own has its own reference; a sale's shares the authorization's. */
  private capture(id: string, capture: Capture, claim = true): void {
    const auth = this.existing(id);
    assert(auth.record.status === 'approved' && auth.voided === null, 'only a live approval is captured');
    assert(auth.capture === null, 'one capture per authorization');
    assert(
      Number.isSafeInteger(capture.amount) &&
        capture.amount > 0 &&
        capture.amount <= auth.record.approved_amount,
      'captured ≤ approved',
    );
    if (claim) this.claimReference(capture.reference, { kind: 'capture', authorization_id: id });
    else assert(capture.reference === auth.record.reference, "a sale's capture carries its reference");
    auth.capture = capture;
    this.settle({
      type: 'capture',
      authorization_id: id,
      reference: capture.reference,
      currency: auth.record.currency,
      amount: capture.amount,
      created: capture.created,
    });
  }

  private void(id: string, reference: string, created: number): void {
    const auth = this.existing(id);
    assert(auth.record.status === 'approved', 'only an approval is voided');
    assert(auth.capture === null && auth.voided === null, 'a captured or voided authorization is not voided');
    this.claimReference(reference, { kind: 'void', authorization_id: id });
    auth.voided = { reference, created };
  }

  private refund(refund: Refund): void {
    const auth = this.existing(refund.authorization_id);
    assert(auth.capture !== null, 'only a captured authorization is refunded');
    assert(Number.isSafeInteger(refund.amount) && refund.amount > 0, 'refund amount is positive');
    assert(auth.refunded + refund.amount <= auth.capture.amount, 'refunded ≤ captured');
    assert(auth.refunds.length < MAX_REFUNDS_PER_AUTHORIZATION, 'refunds per authorization are bounded');
    assert(!this.hasId(refund.id), 'refund ids are unique');
    this.claimReference(refund.reference, {
      kind: 'refund',
      authorization_id: refund.authorization_id,
      refund_id: refund.id,
    });
    auth.refunds.push(refund);
    auth.refunded += refund.amount;
    this.refundIds.add(refund.id);
    this.settle({
      type: 'refund',
      authorization_id: refund.authorization_id,
      reference: refund.reference,
      currency: auth.record.currency,
      amount: refund.amount,
      created: refund.created,
    });
  }

  private settle(item: SettlementItem): void {
    const day = utcDay(item.created);
    let items = this.settlement.get(day);
    if (items === undefined) {
      items = [];
      this.settlement.set(day, items);
    }
    items.push(item);
  }

  settlementItems(day: string): readonly SettlementItem[] {
    return this.settlement.get(day) ?? [];
  }

  /** The API's view of an authorization (key order fixed: stored bodies are compared as bytes). */
  transaction(id: string): Transaction | undefined {
    const auth = this.authorizations.get(id);
    return auth === undefined ? undefined : render(auth);
  }

  inquiry(reference: string): Inquiry | undefined {
    const target = this.references.get(reference);
    if (target === undefined) return undefined;
    const auth = this.existing(target.authorization_id);
    if (target.kind !== 'refund') return { kind: target.kind, transaction: render(auth) };
    const refund = auth.refunds.find((r) => r.id === target.refund_id);
    assert(refund !== undefined, 'a refund reference names a refund');
    return { kind: 'refund', transaction: render(auth), refund: { ...refund } };
  }

  transactions(): Transaction[] {
    return [...this.authorizations.values()].map(render);
  }
}

function render(auth: AuthorizationState): Transaction {
  const r = auth.record;
  const captured = auth.capture?.amount ?? 0;
  assert(captured <= r.approved_amount && auth.refunded <= captured, 'refunded ≤ captured ≤ approved');
  return {
    id: r.id,
    reference: r.reference,
    status: r.status,
    amount: r.amount,
    currency: r.currency,
    approved_amount: r.approved_amount,
    captured_amount: captured,
    refunded_amount: auth.refunded,
    voided: auth.voided !== null,
    decline_code: r.decline_code,
    network_status: r.network_status,
    cvc_check: r.cvc_check,
    auth_code: r.auth_code,
    card_last4: r.card_last4,
    card_brand: r.card_brand,
    created: r.created,
    captures: auth.capture === null ? [] : [{ ...auth.capture }],
    refunds: auth.refunds.map((refund) => ({ ...refund })),
  };
}
