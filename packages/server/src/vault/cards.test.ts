import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { MonetaError } from '../lib/errors.ts';
import { luhnValid } from '../ops/redact.ts';
import { CARD_ERROR_MESSAGES, type CardInput, checkCard, normalizeCardNumber } from './cards.ts';
import { TEST_CARD_SHORTCUTS, TEST_CARDS } from './test-cards.ts';

/** Fixed clock: 15 June 2026, so "past" and "future" do not depend on when the suite runs. */
const NOW = new Date('2026-06-15T12:00:00Z');
const GOOD = { exp_month: 12, exp_year: 2030, cvc: '123' } as const;

function thrown(fn: () => unknown): MonetaError {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(MonetaError);
    return err as MonetaError;
  }
  throw new Error('expected a MonetaError, nothing was thrown');
}

function expectCardError(input: CardInput, code: string, param: string, now = NOW): MonetaError {
  const err = thrown(() => checkCard(input, now));
  expect({ status: err.status_code, type: err.type, code: err.code, param: err.param }).toEqual({
    status: 402,
    type: 'card_error',
    code,
    param,
  });
  expect(err.message).toBe(CARD_ERROR_MESSAGES[code as keyof typeof CARD_ERROR_MESSAGES]);
  return err;
}

/** Appends the Luhn check digit to `body`. */
function withCheckDigit(body: string): string {
  for (let d = 0; d <= 9; d += 1) {
    if (luhnValid(body + d)) return body + d;
  }
  throw new Error('unreachable');
}

describe('Stripe test cards', () => {
  it('every test card passes with the right brand, last4, bin, funding and country', () => {
    for (const card of TEST_CARDS) {
      const cvc = card.brand === 'amex' ? '1234' : '123';
      const checked = checkCard({ number: card.number, exp_month: 12, exp_year: 2030, cvc }, NOW);
      expect(checked, card.number).toEqual({
        number: card.number,
        brand: card.brand,
        last4: card.number.slice(-4),
        bin: card.number.slice(0, 6),
        exp_month: 12,
        exp_year: 2030,
        cvc,
        funding: card.funding,
        country: card.country,
      });
    }
  });

  it('in live mode no test-card table is consulted: funding and country stay unknown', () => {
    const live = checkCard({ number: '4242424242424242', ...GOOD, cvc: undefined }, NOW, true);
    expect([live.brand, live.funding, live.country]).toEqual(['visa', 'unknown', null]);
  });

  it('knows the funding of the brief’s cards', () => {
    const funding = (n: string) => checkCard({ number: n, ...GOOD, cvc: undefined }, NOW).funding;
    expect(funding('4242424242424242')).toBe('credit');
    expect(funding('4000056655665556')).toBe('debit');
    expect(funding('5555555555554444')).toBe('credit');
    expect(funding('5200828282828210')).toBe('debit');
    expect(funding('5105105105105100')).toBe('prepaid');
    expect(funding('378282246310005')).toBe('credit');
    for (const n of [
      '4000000000000002',
      '4000000000009995',
      '4000000000000069',
      '4000000000000127',
      '4000000000000119',
      '4000002500003155',
    ]) {
      const c = checkCard({ number: n, ...GOOD }, NOW);
      expect([c.brand, c.funding, c.country], n).toEqual(['visa', 'credit', 'US']);
    }
  });

  it('lists the decline and 3-D Secure outcomes', () => {
    const outcome = (n: string) => TEST_CARDS.find((c) => c.number === n)?.outcome;
    expect(outcome('4242424242424242')).toEqual({ kind: 'succeeded' });
    expect(outcome('4000000000000002')).toEqual({
      kind: 'declined',
      code: 'card_declined',
      decline_code: 'generic_decline',
    });
    expect(outcome('4000000000009995')).toMatchObject({ decline_code: 'insufficient_funds' });
    expect(outcome('4000000000000069')).toMatchObject({ code: 'expired_card' });
    expect(outcome('4000000000000127')).toMatchObject({ code: 'incorrect_cvc' });
    expect(outcome('4000000000000119')).toMatchObject({ code: 'processing_error' });
    expect(outcome('4000002500003155')).toEqual({ kind: 'requires_action' });
    expect(new Set(TEST_CARDS.map((c) => c.number)).size).toBe(TEST_CARDS.length);
  });

  it('unknown cards get funding unknown and no country', () => {
    const number = withCheckDigit('424242424242420');
    const c = checkCard({ number, ...GOOD }, NOW);
    expect([c.brand, c.funding, c.country]).toEqual(['visa', 'unknown', null]);
  });

  it('shortcuts resolve to valid cards expiring in the future, CVC 123 / 1234 for amex', () => {
    const expected: Record<string, string> = {
      pm_card_visa: '4242424242424242',
      pm_card_visa_debit: '4000056655665556',
      pm_card_mastercard: '5555555555554444',
      pm_card_amex: '378282246310005',
      pm_card_chargeDeclined: '4000000000000002',
      pm_card_chargeDeclinedInsufficientFunds: '4000000000009995',
      pm_card_chargeDeclinedExpiredCard: '4000000000000069',
      pm_card_chargeDeclinedIncorrectCvc: '4000000000000127',
      pm_card_chargeDeclinedProcessingError: '4000000000000119',
      pm_card_threeDSecure2Required: '4000000000003220',
      pm_card_authenticationRequiredOnSetup: '4000002500003155',
    };
    for (const [id, number] of Object.entries(expected)) {
      expect(TEST_CARD_SHORTCUTS[id]?.number, id).toBe(number);
    }
    const now = new Date();
    for (const [id, s] of Object.entries(TEST_CARD_SHORTCUTS)) {
      expect(s.exp_year, id).toBeGreaterThan(now.getUTCFullYear());
      const checked = checkCard(s, now);
      expect(checked.cvc, id).toBe(checked.brand === 'amex' ? '1234' : '123');
      expect(
        TEST_CARDS.some((c) => c.number === s.number),
        id,
      ).toBe(true);
    }
  });
});

describe('input forms', () => {
  it('accepts form strings, JSON numbers and 2-digit years', () => {
    const c = checkCard({ number: '4242 4242-4242 4242', exp_month: '07', exp_year: '31', cvc: '042' }, NOW);
    expect(c).toMatchObject({ number: '4242424242424242', exp_month: 7, exp_year: 2031, cvc: '042' });
    const j = checkCard({ number: 4242424242424242, exp_month: 1, exp_year: 2027, cvc: 999 }, NOW);
    expect(j).toMatchObject({ number: '4242424242424242', exp_month: 1, exp_year: 2027, cvc: '999' });
    expect(checkCard({ number: '4242424242424242', exp_month: 6, exp_year: 26 }, NOW).exp_year).toBe(2026);
  });

  it('CVC is optional (absent, null or an empty form value)', () => {
    for (const cvc of [undefined, null, '']) {
      expect(
        checkCard({ number: '4242424242424242', exp_month: 12, exp_year: 2030, cvc }, NOW).cvc,
      ).toBeNull();
    }
  });

  it('the current month is still valid; months are compared in UTC', () => {
    expect(checkCard({ number: '4242424242424242', exp_month: 6, exp_year: 2026 }, NOW).exp_month).toBe(6);
    const lastMomentOfJune = new Date('2026-06-30T23:59:59Z');
    expect(() =>
      checkCard({ number: '4242424242424242', exp_month: 6, exp_year: 2026 }, lastMomentOfJune),
    ).not.toThrow();
    const firstOfJuly = new Date('2026-07-01T00:00:00Z');
    expectCardError(
      { number: '4242424242424242', exp_month: 6, exp_year: 2026 },
      'invalid_expiry_month',
      'card[exp_month]',
      firstOfJuly,
    );
  });

  it('normalizeCardNumber strips spaces and dashes and refuses everything else', () => {
    expect(normalizeCardNumber('4242 4242 4242 4242')).toBe('4242424242424242');
    expect(normalizeCardNumber(' 4242-4242-4242-4242 ')).toBe('4242424242424242');
    expect(normalizeCardNumber(378282246310005)).toBe('378282246310005');
    for (const bad of [
      '4242 4242 abcd 4242',
      '4242.4242.4242.4242',
      '',
      '  ',
      '-',
      '4242_4242',
      null,
      {},
      [],
      1.5,
      -4,
    ]) {
      expect(normalizeCardNumber(bad), String(bad)).toBeNull();
    }
    expect(normalizeCardNumber('4'.repeat(65))).toBeNull();
  });
});

describe('Stripe errors', () => {
  it('missing number → 400 invalid_request_error parameter_missing card[number]', () => {
    for (const number of [undefined, null]) {
      const err = thrown(() => checkCard({ number, ...GOOD }, NOW));
      expect(err.toBody()).toEqual({
        error: {
          type: 'invalid_request_error',
          code: 'parameter_missing',
          param: 'card[number]',
          message: 'The payment method `card` requires the parameter: card[number].',
        },
      });
      expect(err.status_code).toBe(400);
    }
    const empty = thrown(() => checkCard({ number: '', ...GOOD }, NOW));
    expect([empty.status_code, empty.code, empty.param]).toEqual([
      400,
      'parameter_invalid_empty',
      'card[number]',
    ]);
  });

  it('missing exp_month / exp_year → parameter_missing with their param', () => {
    const m = thrown(() => checkCard({ number: '4242424242424242', exp_year: 2030 }, NOW));
    expect([m.status_code, m.type, m.code, m.param]).toEqual([
      400,
      'invalid_request_error',
      'parameter_missing',
      'card[exp_month]',
    ]);
    const y = thrown(() => checkCard({ number: '4242424242424242', exp_month: 1 }, NOW));
    expect([y.code, y.param]).toEqual(['parameter_missing', 'card[exp_year]']);
  });

  it('non-digits → invalid_number', () => {
    for (const number of [
      '4242 4242 4242 424x',
      'four two',
      '4242/4242/4242/4242',
      true,
      { a: 1 },
      ['4242'],
      4.2,
    ]) {
      expectCardError({ number, ...GOOD }, 'invalid_number', 'card[number]');
    }
  });

  it('wrong length → invalid_number (overall 12–19, and per brand)', () => {
    for (const number of [
      withCheckDigit('4242424242'), // 11 digits
      withCheckDigit('4'.repeat(19)), // 20 digits
      withCheckDigit('42424242424242'), // 15-digit Visa (Visa is 16, 18 or 19)
      withCheckDigit('555555555555444'.slice(0, 14)), // 15-digit Mastercard
      withCheckDigit('3782822463100'), // 14-digit Amex
      withCheckDigit('37828224631000'.padEnd(15, '0')), // 16-digit Amex
    ]) {
      expectCardError({ number, ...GOOD }, 'invalid_number', 'card[number]');
    }
  });

  it('Luhn failure → incorrect_number', () => {
    for (const number of ['4242424242424241', '5555555555554445', '378282246310006', '1234567812345678']) {
      expectCardError({ number, ...GOOD }, 'incorrect_number', 'card[number]');
    }
  });

  it('unknown brand is accepted when Luhn and length 12–19 are fine', () => {
    for (const body of ['99999999999', '123456781234567', '900000000000000000']) {
      const number = withCheckDigit(body);
      const c = checkCard({ number, exp_month: 3, exp_year: 2029, cvc: '1234' }, NOW);
      expect([c.brand, c.number]).toEqual(['unknown', number]);
    }
    expectCardError(
      { number: withCheckDigit('99999999999'), ...GOOD, cvc: '12' },
      'invalid_cvc',
      'card[cvc]',
    );
  });

  it('exp_month not 1–12 → invalid_expiry_month', () => {
    for (const exp_month of [0, 13, -1, 1.5, '13', '00', 'ab', '1a', '123', true, {}, []]) {
      expectCardError(
        { number: '4242424242424242', exp_month, exp_year: 2030 },
        'invalid_expiry_month',
        'card[exp_month]',
      );
    }
  });

  it('exp_year not a 2- or 4-digit year, in the past, or absurdly far → invalid_expiry_year', () => {
    for (const exp_year of [
      2025,
      25,
      '25',
      '2025',
      '202',
      '20300',
      20300,
      2030.5,
      'abcd',
      1999,
      2077,
      false,
      {},
    ]) {
      expectCardError(
        { number: '4242424242424242', exp_month: 12, exp_year },
        'invalid_expiry_year',
        'card[exp_year]',
      );
    }
  });

  it('month in the past of the current year → invalid_expiry_month', () => {
    expectCardError(
      { number: '4242424242424242', exp_month: 5, exp_year: 2026 },
      'invalid_expiry_month',
      'card[exp_month]',
    );
    expectCardError(
      { number: '4242424242424242', exp_month: '01', exp_year: '26' },
      'invalid_expiry_month',
      'card[exp_month]',
    );
  });

  it('CVC wrong length for the brand or non-digits → invalid_cvc', () => {
    const cases: [string, unknown][] = [
      ['4242424242424242', '12'],
      ['4242424242424242', '1234'],
      ['4242424242424242', '12a'],
      ['4242424242424242', 12],
      ['4242424242424242', -123],
      ['4242424242424242', { x: 1 }],
      ['378282246310005', '123'],
      ['378282246310005', '12345'],
      ['5555555555554444', '1 23'],
    ];
    for (const [number, cvc] of cases) {
      expectCardError({ number, exp_month: 12, exp_year: 2030, cvc }, 'invalid_cvc', 'card[cvc]');
    }
  });

  it('checks run in order: number, exp_month, exp_year, cvc', () => {
    expectCardError(
      { number: '4242424242424241', exp_month: 13, exp_year: 1990, cvc: 'x' },
      'incorrect_number',
      'card[number]',
    );
    expectCardError(
      { number: '4242424242424242', exp_month: 13, exp_year: 1990, cvc: 'x' },
      'invalid_expiry_month',
      'card[exp_month]',
    );
    expectCardError(
      { number: '4242424242424242', exp_month: 12, exp_year: 1990, cvc: 'x' },
      'invalid_expiry_year',
      'card[exp_year]',
    );
  });

  it('error messages and bodies never contain the number or the CVC', () => {
    const cvc = '987';
    const inputs: CardInput[] = [
      { number: '4242424242424241', ...GOOD, cvc },
      { number: '4242424242424242x', ...GOOD, cvc },
      { number: '424242424242424', ...GOOD, cvc },
      { number: '4242424242424242', exp_month: 13, exp_year: 2030, cvc },
      { number: '4242424242424242', exp_month: 12, exp_year: 1990, cvc },
      { number: '4242424242424242', exp_month: 12, exp_year: 2030, cvc: '98' },
      { number: '4242424242424242', exp_month: '4242424242424242', exp_year: 2030, cvc },
      { number: '4242424242424242', exp_month: 12, exp_year: '4242424242424242', cvc },
      { number: '4242424242424242', exp_month: 12, exp_year: 2030, cvc: '4242424242424242' },
    ];
    for (const input of inputs) {
      const err = thrown(() => checkCard(input, NOW));
      const body = JSON.stringify(err.toBody());
      for (const secret of ['4242424242', '2424242424', '424242424242424', cvc, '98']) {
        expect(body, body).not.toContain(secret);
        expect(err.message).not.toContain(secret);
      }
    }
  });
});

describe('properties', () => {
  const anything = fc.oneof(
    fc.string({ maxLength: 30 }),
    fc.stringMatching(/^[0-9 -]{0,25}$/),
    fc.integer(),
    fc.double(),
    fc.bigInt(),
    fc.boolean(),
    fc.constant(null),
    fc.constant(undefined),
    fc.constantFrom('4242424242424242', '378282246310005', '12', '2030', '123', '1234', ''),
    fc.array(fc.string({ maxLength: 5 }), { maxLength: 3 }),
    fc.dictionary(fc.string({ maxLength: 5 }), fc.string({ maxLength: 5 }), { maxKeys: 3 }),
    fc.object({ maxDepth: 2 }),
  );

  it('random input only ever throws a MonetaError below 500, with a constant message', () => {
    fc.assert(
      fc.property(
        fc.record(
          { number: anything, exp_month: anything, exp_year: anything, cvc: anything },
          { requiredKeys: [] },
        ),
        fc.date({ min: new Date('2000-01-01Z'), max: new Date('2090-12-31Z'), noInvalidDate: true }),
        (input, now) => {
          try {
            checkCard(input, now);
          } catch (err) {
            if (!(err instanceof MonetaError)) throw err;
            if (err.status_code >= 500) throw err;
            if (err.type === 'card_error') {
              expect(err.message).toBe(CARD_ERROR_MESSAGES[err.code as keyof typeof CARD_ERROR_MESSAGES]);
            }
          }
        },
      ),
      { numRuns: 2000 },
    );
  });

  it('any Luhn-valid 16-digit number starting with 4 and a future expiry is accepted', () => {
    fc.assert(
      fc.property(
        fc.stringMatching(/^4[0-9]{14}$/),
        fc.integer({ min: 0, max: 20 }),
        fc.integer({ min: 1, max: 12 }),
        fc.stringMatching(/^[0-9]{3}$/),
        (body, yearsAhead, month, cvc) => {
          const number = withCheckDigit(body);
          const exp_year = NOW.getUTCFullYear() + yearsAhead;
          fc.pre(yearsAhead > 0 || month >= NOW.getUTCMonth() + 1);
          const c = checkCard({ number, exp_month: String(month), exp_year: String(exp_year), cvc }, NOW);
          expect(c).toMatchObject({ number, last4: number.slice(-4), bin: number.slice(0, 6) });
          // A few BIN ranges starting with 4 belong to other networks (Elo's 401178, say),
          // which Stripe reports as `unknown`; everything else is Visa.
          expect(['visa', 'unknown']).toContain(c.brand);
          expect([c.exp_month, c.exp_year, c.cvc]).toEqual([month, exp_year, cvc]);
        },
      ),
      { numRuns: 1000 },
    );
  });
});
