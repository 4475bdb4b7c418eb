/**
 * How the simulated network answers a card: Stripe's test card numbers, so merchants' existing
 * tests behave the same here. The simulator is a separate party and keeps its own table; it
 * never imports Moneta's. Pure functions: the card number goes in, only last4 and brand come
 * out, so nothing downstream (journal, responses, logs) can leak it.
 */
import type { AuthorizationStatus, CardBrand, CvcCheck, NetworkStatus } from './types.ts';

export interface CardData {
  /** Digits only. Sensitive: never stored, logged or answered. */
  number: string;
  exp_month: number;
  exp_year: number;
  /** Sensitive: never stored, logged or answered. */
  cvc: string | null;
}

export interface CardDecision {
  status: AuthorizationStatus;
  decline_code: string | null;
  network_status: NetworkStatus;
  cvc_check: CvcCheck;
  card_last4: string;
  card_brand: CardBrand;
}

type Outcome = Pick<CardDecision, 'status' | 'decline_code' | 'network_status'>;

const declined = (code: string): Outcome => ({
  status: 'declined',
  decline_code: code,
  network_status: 'declined_by_network',
});
const AUTHENTICATION_REQUIRED: Outcome = {
  status: 'authentication_required',
  decline_code: null,
  network_status: 'not_sent_to_network',
};
const APPROVED: Outcome = { status: 'approved', decline_code: null, network_status: 'approved_by_network' };

/** Stripe's test numbers (https://docs.stripe.com/testing) with a fixed answer. */
const TEST_CARDS: ReadonlyMap<string, Outcome> = new Map([
  ['4000000000000002', declined('generic_decline')],
  ['4000000000009995', declined('insufficient_funds')],
  ['4000000000009987', declined('lost_card')],
  ['4000000000009979', declined('stolen_card')],
  ['4000000000000069', declined('expired_card')],
  ['4000000000000127', declined('incorrect_cvc')],
  // A processing error happens at the acquirer, before the card network sees the request.
  [
    '4000000000000119',
    { status: 'declined', decline_code: 'processing_error', network_status: 'not_sent_to_network' },
  ],
  ['4000000000006975', declined('card_velocity_exceeded')],
  ['4000002500003155', AUTHENTICATION_REQUIRED],
  ['4000002760003184', AUTHENTICATION_REQUIRED],
  ['4000000000003220', AUTHENTICATION_REQUIRED],
]);

/** Brand by leading digits; enough for a simulator (BIN tables are the real acquirer's job). */
export function cardBrand(number: string): CardBrand {
  if (number.startsWith('34') || number.startsWith('37')) return 'amex';
  switch (number[0]) {
    case '4':
      return 'visa';
    case '5':
    case '2':
      return 'mastercard';
    case '6':
      return 'discover';
    default:
      return 'unknown';
  }
}

/** A card is valid through the last day of its expiry month (UTC). */
export function isExpired(card: Pick<CardData, 'exp_month' | 'exp_year'>, nowMs: number): boolean {
  const now = new Date(nowMs);
  const year = now.getUTCFullYear();
  const month = now.getUTCMonth() + 1;
  return card.exp_year < year || (card.exp_year === year && card.exp_month < month);
}

function cvcCheck(card: CardData, outcome: Outcome): CvcCheck {
  if (card.cvc === null) return 'unavailable';
  if (outcome.network_status === 'not_sent_to_network') return 'unchecked';
  return outcome.decline_code === 'incorrect_cvc' ? 'fail' : 'pass';
}

/** The network's answer to an authorization of this card. */
export function decideCard(card: CardData, nowMs: number): CardDecision {
  let outcome = TEST_CARDS.get(card.number);
  if (outcome === undefined) outcome = isExpired(card, nowMs) ? declined('expired_card') : APPROVED;
  return {
    ...outcome,
    cvc_check: cvcCheck(card, outcome),
    card_last4: card.number.slice(-4),
    card_brand: cardBrand(card.number),
  };
}
