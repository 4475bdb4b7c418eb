/**
 * Card data validation for `POST /v1/payment_methods` with `type=card`, answering the way Stripe
 * does. Pure functions: no I/O, no fastify, no logging.
 *
 * Error shapes (type, code, param, message) follow Stripe:
 *  - Card-data problems are `type: "card_error"` with HTTP 402. Stripe's API reference
 *    (https://docs.stripe.com/api/errors, "HTTP status code summary") defines 402 "Request Failed:
 *    the parameters were valid but the request failed", and card_error as the type for "a card that
 *    can't be charged". Observed responses agree: an invalid expiry year answered 402 card_error
 *    "Your card's expiration year is invalid." (stripe/stripe-php#158), and Stripe's own page
 *    https://docs.stripe.com/declines#invalid-api-calls shows an invalid number as
 *    `{"type": "card_error", "code": "invalid_number", "param": "card[number]"}`.
 *    Stripe has at times answered PaymentMethod-creation card problems with 400
 *    invalid_request_error; its staff called that an API bug (stripe/stripe-php#762), so we follow
 *    the documented card_error / 402.
 *  - `param` uses the request's bracket name (`card[number]`, `card[exp_month]`, ...), as in the
 *    declines page above and in Stripe's PaymentMethod "requires the parameter: card[exp_year]"
 *    response (fixture in stripe/stripe-ios).
 *  - A missing required field is 400 invalid_request_error, code `parameter_missing`, message
 *    "The payment method `card` requires the parameter: card[number]." (same stripe-ios fixture).
 *  - Messages are Stripe's card-error messages (https://docs.stripe.com/error-codes):
 *    "Your card number is incorrect." (incorrect_number), "Your card number is invalid."
 *    (invalid_number), "Your card's expiration month is invalid." (invalid_expiry_month, also
 *    for a month already past in the current year, as Stripe answers — seen passed through in
 *    ProtonVPN/proton-vpn-settings#139), "Your card's expiration year is invalid."
 *    (invalid_expiry_year, also for a year in the past — stripe/stripe-node#219),
 *    "Your card's security code is invalid." (invalid_cvc).
 *
 * Messages are constants: they never contain the card number or the CVC, whatever the input.
 */
import cardValidator from 'card-validator';
import { MonetaError } from '../lib/errors.ts';
import { luhnValid } from '../ops/redact.ts';
import { testCardInfo } from './test-cards.ts';

export type CardBrand =
  | 'visa'
  | 'mastercard'
  | 'amex'
  | 'discover'
  | 'diners'
  | 'jcb'
  | 'unionpay'
  | 'unknown';
export type CardFunding = 'credit' | 'debit' | 'prepaid' | 'unknown';

export interface CheckedCard {
  /** Digits only. Sensitive: never log, never return in API responses. */
  number: string;
  brand: CardBrand;
  last4: string;
  /** First 6 digits (PCI DSS 3.4 allows BIN + last 4 to be displayed). */
  bin: string;
  exp_month: number;
  /** Four-digit year. */
  exp_year: number;
  /** Sensitive: must not be kept after authorization (PCI DSS 3.3). */
  cvc: string | null;
  funding: CardFunding;
  country: string | null;
}

export interface CardInput {
  number?: unknown;
  exp_month?: unknown;
  exp_year?: unknown;
  cvc?: unknown;
}

// ---------------------------------------------------------------------------------------------
// Errors

export const CARD_PARAMS = {
  number: 'card[number]',
  exp_month: 'card[exp_month]',
  exp_year: 'card[exp_year]',
  cvc: 'card[cvc]',
} as const;

export const CARD_ERROR_MESSAGES = {
  incorrect_number: 'Your card number is incorrect.',
  invalid_number: 'Your card number is invalid.',
  invalid_expiry_month: "Your card's expiration month is invalid.",
  invalid_expiry_year: "Your card's expiration year is invalid.",
  invalid_cvc: "Your card's security code is invalid.",
} as const;

export type CardValidationCode = keyof typeof CARD_ERROR_MESSAGES;

/** A `card_error` (HTTP 402) in Stripe's shape. */
export function cardError(message: string, code: string, param?: string): MonetaError {
  const opts: { code: string; param?: string } = { code };
  if (param !== undefined) opts.param = param;
  return new MonetaError(402, 'card_error', message, opts);
}

function cardValidationError(code: CardValidationCode, param: string): MonetaError {
  return cardError(CARD_ERROR_MESSAGES[code], code, param);
}

function cardParameterMissing(param: string): MonetaError {
  return new MonetaError(
    400,
    'invalid_request_error',
    `The payment method \`card\` requires the parameter: ${param}.`,
    {
      code: 'parameter_missing',
      param,
    },
  );
}

function cardParameterEmpty(param: string): MonetaError {
  // Stripe's wording for an empty string given to a required parameter.
  return new MonetaError(
    400,
    'invalid_request_error',
    `You passed an empty string for '${param}'. We assume empty values are an attempt to unset a parameter; ` +
      `however '${param}' cannot be unset. You should remove '${param}' from your request or supply a non-empty value.`,
    { code: 'parameter_invalid_empty', param },
  );
}

// ---------------------------------------------------------------------------------------------
// Number

/** Longest raw input we look at; a real PAN with separators is far shorter. */
const MAX_RAW_NUMBER_LENGTH = 64;

/**
 * Digits of a card number with spaces and dashes removed (`"4242 4242-4242 4242"` → digits).
 * Numbers from JSON are accepted when they are safe integers. Anything else that is not digits
 * (letters, dots, other separators), an empty result, or a non-string/number gives `null`.
 * Does not check length or Luhn.
 */
export function normalizeCardNumber(raw: unknown): string | null {
  let text: string;
  if (typeof raw === 'number') {
    if (!Number.isSafeInteger(raw) || raw < 0) return null;
    text = String(raw);
  } else if (typeof raw === 'string') {
    if (raw.length > MAX_RAW_NUMBER_LENGTH) return null;
    text = raw.trim().replace(/[ -]/g, '');
  } else {
    return null;
  }
  return /^\d+$/.test(text) ? text : null;
}

/** card-validator's type names → Stripe's `card.brand` values. Other networks are 'unknown'. */
const BRAND_BY_VALIDATOR_TYPE: Record<string, CardBrand> = {
  visa: 'visa',
  mastercard: 'mastercard',
  'american-express': 'amex',
  discover: 'discover',
  'diners-club': 'diners',
  jcb: 'jcb',
  unionpay: 'unionpay',
};

interface BrandInfo {
  brand: CardBrand;
  /** Valid lengths for the detected network (12–19 when unknown). */
  lengths: readonly number[];
  /** CVC lengths accepted for the network. */
  cvcLengths: readonly number[];
  /** UnionPay does not always use the Luhn check digit (card-validator skips it too). */
  luhn: boolean;
}

const ANY_LENGTH = [12, 13, 14, 15, 16, 17, 18, 19] as const;

/**
 * Brands by the first 8 digits and the length, which is all card-validator looks at; it
 * clones its network table on every call, which showed up in tokenization profiles. BINs
 * may be kept and shown (PCI DSS 3.4.1); bounded, and cleared when full.
 */
const BRAND_CACHE = new Map<string, BrandInfo>();
const MAX_CACHED_BINS = 10_000;

function detectBrand(digits: string): BrandInfo {
  const key = `${digits.slice(0, 8)}:${digits.length}`;
  let info = BRAND_CACHE.get(key);
  if (info === undefined) {
    if (BRAND_CACHE.size >= MAX_CACHED_BINS) BRAND_CACHE.clear();
    info = detectBrandUncached(digits);
    BRAND_CACHE.set(key, info);
  }
  return info;
}

function detectBrandUncached(digits: string): BrandInfo {
  const { card } = cardValidator.number(digits, { skipLuhnValidation: true });
  if (card === null) {
    // No network, or several networks could match: Stripe reports brand 'unknown'.
    return { brand: 'unknown', lengths: ANY_LENGTH, cvcLengths: [3, 4], luhn: true };
  }
  return {
    brand: BRAND_BY_VALIDATOR_TYPE[card.type] ?? 'unknown',
    lengths: card.lengths,
    cvcLengths: [card.code.size],
    luhn: card.type !== 'unionpay',
  };
}

// ---------------------------------------------------------------------------------------------
// Expiry

/** Latest expiry year accepted, relative to the current year (our bound; issuers use ≤ 20). */
const MAX_YEARS_AHEAD = 50;

function parseSmallInt(value: unknown, pattern: RegExp): number | null {
  if (typeof value === 'number') return Number.isSafeInteger(value) && value >= 0 ? value : null;
  if (typeof value === 'string') {
    const text = value.trim();
    return pattern.test(text) ? Number.parseInt(text, 10) : null;
  }
  return null;
}

function parseExpMonth(value: unknown): number | null {
  const month = parseSmallInt(value, /^\d{1,2}$/);
  return month !== null && month >= 1 && month <= 12 ? month : null;
}

/** Two-digit years mean 20yy; four-digit years are taken as they are. */
function parseExpYear(value: unknown): number | null {
  const year = parseSmallInt(value, /^(?:\d{2}|\d{4})$/);
  if (year === null) return null;
  if (year <= 99) return 2000 + year;
  return year >= 1000 && year <= 9999 ? year : null;
}

function isMissing(value: unknown): boolean {
  return value === undefined || value === null;
}

function isEmptyString(value: unknown): boolean {
  return typeof value === 'string' && value.trim() === '';
}

// ---------------------------------------------------------------------------------------------
// checkCard

/**
 * Validates card data for a PaymentMethod. Checks run in this order — number, exp_month,
 * exp_year, expiry not in the past, cvc — and the first failure is thrown as a MonetaError
 * (400 invalid_request_error for a missing or empty required field, 402 card_error otherwise).
 * Expiry is compared with `now` in UTC; a card is valid through the end of its expiry month.
 */
export function checkCard(input: CardInput, now: Date = new Date(), livemode = false): CheckedCard {
  // --- number
  if (isMissing(input.number)) throw cardParameterMissing(CARD_PARAMS.number);
  if (isEmptyString(input.number)) throw cardParameterEmpty(CARD_PARAMS.number);
  const number = normalizeCardNumber(input.number);
  if (number === null || number.length < 12 || number.length > 19) {
    throw cardValidationError('invalid_number', CARD_PARAMS.number);
  }
  const info = detectBrand(number);
  if (!info.lengths.includes(number.length)) throw cardValidationError('invalid_number', CARD_PARAMS.number);
  // A well-formed number whose check digit is wrong is `incorrect_number`, not `invalid_number`:
  // Stripe's testing docs list 4242424242424241 ("fails the Luhn check") under incorrect_number,
  // for tokens and PaymentMethods alike (https://docs.stripe.com/testing#invalid-data).
  if (info.luhn && !luhnValid(number)) throw cardValidationError('incorrect_number', CARD_PARAMS.number);

  // --- expiry
  if (isMissing(input.exp_month)) throw cardParameterMissing(CARD_PARAMS.exp_month);
  if (isEmptyString(input.exp_month)) throw cardParameterEmpty(CARD_PARAMS.exp_month);
  const exp_month = parseExpMonth(input.exp_month);
  if (exp_month === null) throw cardValidationError('invalid_expiry_month', CARD_PARAMS.exp_month);

  if (isMissing(input.exp_year)) throw cardParameterMissing(CARD_PARAMS.exp_year);
  if (isEmptyString(input.exp_year)) throw cardParameterEmpty(CARD_PARAMS.exp_year);
  const exp_year = parseExpYear(input.exp_year);
  const currentYear = now.getUTCFullYear();
  if (exp_year === null || exp_year < currentYear || exp_year > currentYear + MAX_YEARS_AHEAD) {
    throw cardValidationError('invalid_expiry_year', CARD_PARAMS.exp_year);
  }
  if (exp_year === currentYear && exp_month < now.getUTCMonth() + 1) {
    throw cardValidationError('invalid_expiry_month', CARD_PARAMS.exp_month);
  }

  // --- cvc (optional; an empty form value counts as not given)
  let cvc: string | null = null;
  if (!isMissing(input.cvc) && !isEmptyString(input.cvc)) {
    const raw = input.cvc;
    const text =
      typeof raw === 'string'
        ? raw.trim()
        : typeof raw === 'number' && Number.isSafeInteger(raw) && raw >= 0
          ? String(raw)
          : null;
    if (text === null || !/^\d+$/.test(text) || !info.cvcLengths.includes(text.length)) {
      throw cardValidationError('invalid_cvc', CARD_PARAMS.cvc);
    }
    cvc = text;
  }

  // Stripe's test numbers have a known funding and country in test mode; a real deployment
  // would look every BIN up in a licensed BIN table (not here: 'unknown' / null).
  const known = livemode ? undefined : testCardInfo(number);
  return {
    number,
    brand: info.brand,
    last4: number.slice(-4),
    bin: number.slice(0, 6),
    exp_month,
    exp_year,
    cvc,
    funding: known?.funding ?? 'unknown',
    country: known?.country ?? null,
  };
}
