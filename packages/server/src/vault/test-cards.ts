/**
 * Stripe's public test card numbers (https://docs.stripe.com/testing): their funding and
 * country in test mode, their intended outcomes (for tests and the acquirer simulator), and
 * the `pm_card_*` test ids. These are published numbers no issuer has given to a cardholder;
 * no customer's card number is ever written in code. Live mode never consults this module's
 * tables (checkCard with livemode), and the shortcuts work in test mode only.
 */
import type { CardBrand, CardFunding } from './cards.ts';

/**
 * Funding and issuing country for Stripe's documented test cards
 * (https://docs.stripe.com/testing: "Cards by brand" — credit unless labelled debit/prepaid —
 * and "Each basic test card's billing country is set to U.S.").
 * A real deployment would look the BIN up in a licensed BIN table (issuer, funding, country,
 * product); without one, other cards are 'unknown' / null.
 */
const KNOWN_CARDS: ReadonlyMap<string, { funding: CardFunding; country: string }> = new Map([
  ['4242424242424242', { funding: 'credit', country: 'US' }],
  ['4000056655665556', { funding: 'debit', country: 'US' }],
  ['5555555555554444', { funding: 'credit', country: 'US' }],
  ['2223003122003222', { funding: 'credit', country: 'US' }],
  ['5200828282828210', { funding: 'debit', country: 'US' }],
  ['5105105105105100', { funding: 'prepaid', country: 'US' }],
  ['378282246310005', { funding: 'credit', country: 'US' }],
  ['371449635398431', { funding: 'credit', country: 'US' }],
  ['6011111111111117', { funding: 'credit', country: 'US' }],
  ['6011000990139424', { funding: 'credit', country: 'US' }],
  ['6011981111111113', { funding: 'debit', country: 'US' }],
  ['3056930009020004', { funding: 'credit', country: 'US' }],
  ['36227206271667', { funding: 'credit', country: 'US' }],
  ['3566002020360505', { funding: 'credit', country: 'US' }],
  ['6200000000000005', { funding: 'credit', country: 'US' }],
  // Declines and authentication (all Visa credit, US).
  ['4000000000000002', { funding: 'credit', country: 'US' }],
  ['4000000000009995', { funding: 'credit', country: 'US' }],
  ['4000000000009987', { funding: 'credit', country: 'US' }],
  ['4000000000009979', { funding: 'credit', country: 'US' }],
  ['4000000000000069', { funding: 'credit', country: 'US' }],
  ['4000000000000127', { funding: 'credit', country: 'US' }],
  ['4000000000000119', { funding: 'credit', country: 'US' }],
  ['4000000000006975', { funding: 'credit', country: 'US' }],
  ['4000002500003155', { funding: 'credit', country: 'US' }],
  ['4000002760003184', { funding: 'credit', country: 'US' }],
  ['4000000000003220', { funding: 'credit', country: 'US' }],
]);

/** Funding and country of a Stripe test number, or undefined for any other card. */
export function testCardInfo(number: string): { funding: CardFunding; country: string } | undefined {
  return KNOWN_CARDS.get(number);
}

export type TestCardOutcome =
  | { kind: 'succeeded' }
  /** Declined at authorization: `code` and `decline_code` as Stripe reports them. */
  | { kind: 'declined'; code: string; decline_code: string }
  /** Needs 3-D Secure: the PaymentIntent goes to `requires_action`. */
  | { kind: 'requires_action' };

export interface TestCard {
  number: string;
  brand: CardBrand;
  funding: CardFunding;
  country: string;
  outcome: TestCardOutcome;
  description: string;
}

const ok: TestCardOutcome = { kind: 'succeeded' };
const declined = (code: string, decline_code: string): TestCardOutcome => ({
  kind: 'declined',
  code,
  decline_code,
});
const threeDS: TestCardOutcome = { kind: 'requires_action' };

function testCard(number: string, brand: CardBrand, outcome: TestCardOutcome, description: string): TestCard {
  const known = KNOWN_CARDS.get(number);
  return {
    number,
    brand,
    funding: known?.funding ?? 'unknown',
    country: known?.country ?? 'US',
    outcome,
    description,
  };
}

/**
 * Stripe's test card numbers (https://docs.stripe.com/testing) with their intended outcome, for
 * the acquirer simulator and tests. Any future expiry and any CVC of the right length work.
 */
export const TEST_CARDS: readonly TestCard[] = [
  testCard('4242424242424242', 'visa', ok, 'Visa'),
  testCard('4000056655665556', 'visa', ok, 'Visa (debit)'),
  testCard('5555555555554444', 'mastercard', ok, 'Mastercard'),
  testCard('2223003122003222', 'mastercard', ok, 'Mastercard (2-series)'),
  testCard('5200828282828210', 'mastercard', ok, 'Mastercard (debit)'),
  testCard('5105105105105100', 'mastercard', ok, 'Mastercard (prepaid)'),
  testCard('378282246310005', 'amex', ok, 'American Express'),
  testCard('371449635398431', 'amex', ok, 'American Express'),
  testCard('6011111111111117', 'discover', ok, 'Discover'),
  testCard('6011000990139424', 'discover', ok, 'Discover'),
  testCard('6011981111111113', 'discover', ok, 'Discover (debit)'),
  testCard('3056930009020004', 'diners', ok, 'Diners Club'),
  testCard('36227206271667', 'diners', ok, 'Diners Club (14-digit card)'),
  testCard('3566002020360505', 'jcb', ok, 'JCB'),
  testCard('6200000000000005', 'unionpay', ok, 'UnionPay'),
  testCard('4000000000000002', 'visa', declined('card_declined', 'generic_decline'), 'Generic decline'),
  testCard('4000000000009995', 'visa', declined('card_declined', 'insufficient_funds'), 'Insufficient funds'),
  testCard('4000000000009987', 'visa', declined('card_declined', 'lost_card'), 'Lost card'),
  testCard('4000000000009979', 'visa', declined('card_declined', 'stolen_card'), 'Stolen card'),
  testCard('4000000000000069', 'visa', declined('expired_card', 'expired_card'), 'Expired card'),
  testCard('4000000000000127', 'visa', declined('incorrect_cvc', 'incorrect_cvc'), 'Incorrect CVC'),
  testCard('4000000000000119', 'visa', declined('processing_error', 'processing_error'), 'Processing error'),
  testCard(
    '4000000000006975',
    'visa',
    declined('card_declined', 'card_velocity_exceeded'),
    'Exceeding velocity limit',
  ),
  testCard('4000002500003155', 'visa', threeDS, '3-D Secure required unless set up for off-session use'),
  testCard('4000002760003184', 'visa', threeDS, '3-D Secure required on every payment'),
  testCard('4000000000003220', 'visa', threeDS, '3-D Secure 2 required'),
];

export interface TestCardShortcut {
  number: string;
  exp_month: number;
  exp_year: number;
  cvc: string;
}

function shortcut(number: string, brand: CardBrand, now: Date): TestCardShortcut {
  return {
    number,
    exp_month: 12,
    exp_year: now.getUTCFullYear() + 3,
    cvc: brand === 'amex' ? '1234' : '123',
  };
}

/** Stripe's `pm_card_*` test PaymentMethod ids → card data (https://docs.stripe.com/testing). */
const SHORTCUT_NUMBERS: Readonly<Record<string, string>> = {
  pm_card_visa: '4242424242424242',
  pm_card_visa_debit: '4000056655665556',
  pm_card_mastercard: '5555555555554444',
  pm_card_mastercard_debit: '5200828282828210',
  pm_card_mastercard_prepaid: '5105105105105100',
  pm_card_amex: '378282246310005',
  pm_card_discover: '6011111111111117',
  pm_card_diners: '3056930009020004',
  pm_card_jcb: '3566002020360505',
  pm_card_unionpay: '6200000000000005',
  pm_card_chargeDeclined: '4000000000000002',
  pm_card_visa_chargeDeclined: '4000000000000002',
  pm_card_chargeDeclinedInsufficientFunds: '4000000000009995',
  pm_card_visa_chargeDeclinedInsufficientFunds: '4000000000009995',
  pm_card_visa_chargeDeclinedLostCard: '4000000000009987',
  pm_card_visa_chargeDeclinedStolenCard: '4000000000009979',
  pm_card_chargeDeclinedExpiredCard: '4000000000000069',
  pm_card_visa_chargeDeclinedExpiredCard: '4000000000000069',
  pm_card_chargeDeclinedIncorrectCvc: '4000000000000127',
  pm_card_visa_chargeDeclinedIncorrectCvc: '4000000000000127',
  pm_card_chargeDeclinedProcessingError: '4000000000000119',
  pm_card_visa_chargeDeclinedProcessingError: '4000000000000119',
  pm_card_visa_chargeDeclinedVelocityLimitExceeded: '4000000000006975',
  // 3-D Secure. Stripe's ids: threeDSecure2Required is 4000000000003220; 4000002500003155 is
  // authenticationRequiredOnSetup and 4000002760003184 authenticationRequired.
  pm_card_threeDSecure2Required: '4000000000003220',
  pm_card_authenticationRequiredOnSetup: '4000002500003155',
  pm_card_authenticationRequired: '4000002760003184',
};

function buildShortcuts(now: Date): Record<string, TestCardShortcut> {
  const out: Record<string, TestCardShortcut> = {};
  for (const [id, number] of Object.entries(SHORTCUT_NUMBERS)) {
    const card = TEST_CARDS.find((c) => c.number === number);
    out[id] = Object.freeze(shortcut(number, card?.brand ?? 'unknown', now));
  }
  return out;
}

/**
 * Card data behind Stripe's `pm_card_*` test ids. Expiry is December, three years after the
 * year this module was loaded; CVC is '123' ('1234' for American Express).
 */
export const TEST_CARD_SHORTCUTS: Readonly<Record<string, TestCardShortcut>> = Object.freeze(
  buildShortcuts(new Date()),
);
