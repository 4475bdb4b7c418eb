import { assert, invalidRequest } from '../lib/errors.ts';

/**
 * Currencies Moneta takes, with their ISO 4217 numeric code (the ledger number: one ledger
 * per currency) and exponent (minor units per major unit = 10^exponent).
 */
export const CURRENCIES: Readonly<Record<string, { ledger: number; exponent: number }>> = {
  aud: { ledger: 36, exponent: 2 },
  bhd: { ledger: 48, exponent: 3 },
  brl: { ledger: 986, exponent: 2 },
  cad: { ledger: 124, exponent: 2 },
  chf: { ledger: 756, exponent: 2 },
  czk: { ledger: 203, exponent: 2 },
  dkk: { ledger: 208, exponent: 2 },
  eur: { ledger: 978, exponent: 2 },
  gbp: { ledger: 826, exponent: 2 },
  hkd: { ledger: 344, exponent: 2 },
  inr: { ledger: 356, exponent: 2 },
  jpy: { ledger: 392, exponent: 0 },
  krw: { ledger: 410, exponent: 0 },
  kwd: { ledger: 414, exponent: 3 },
  mxn: { ledger: 484, exponent: 2 },
  nok: { ledger: 578, exponent: 2 },
  nzd: { ledger: 554, exponent: 2 },
  pln: { ledger: 985, exponent: 2 },
  sek: { ledger: 752, exponent: 2 },
  sgd: { ledger: 702, exponent: 2 },
  usd: { ledger: 840, exponent: 2 },
};

/** Stripe's ceiling: eight digits of minor units. */
export const MAX_AMOUNT_MINOR = 99_999_999;

export function checkCurrency(currency: string, param = 'currency'): void {
  if (!Object.hasOwn(CURRENCIES, currency)) {
    throw invalidRequest(
      `Invalid currency: ${currency}. Use a lowercase ISO 4217 code Moneta supports (${Object.keys(CURRENCIES).join(', ')}).`,
      param,
      'invalid_currency',
    );
  }
}

export function checkAmount(amount_minor: number, param = 'amount'): void {
  if (!Number.isSafeInteger(amount_minor) || amount_minor < 1 || amount_minor > MAX_AMOUNT_MINOR) {
    throw invalidRequest(
      `Invalid ${param}: must be an integer number of minor units from 1 to ${MAX_AMOUNT_MINOR}.`,
      param,
      'amount_invalid',
    );
  }
}

/** Moneta's fee on a capture: 2.9 % (rounded down) + 30 minor units, never more than the capture. */
export function captureFee(captured_minor: number): number {
  assert(
    Number.isSafeInteger(captured_minor) && captured_minor >= 0,
    'a captured amount is whole minor units',
  );
  // Integer division on bigints: no floating point between an amount and its fee.
  return Math.min(captured_minor, Number((BigInt(captured_minor) * 29n) / 1000n) + 30);
}
