import { createHash, createHmac } from 'node:crypto';
import Stripe from 'stripe';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { call, countRows, startTestMoneta, type TestMoneta } from '../../test/helpers.ts';
import { canonicalJson } from '../lib/canonical-json.ts';
import { createMerchant } from '../merchants/index.ts';
import { checkCard } from '../vault/cards.ts';

let t: TestMoneta;
beforeAll(async () => {
  t = await startTestMoneta({ MONETA_RATE_LIMIT_PER_SECOND: '100000', MONETA_RATE_LIMIT_BURST: '100000' });
});
afterAll(async () => t?.close());

const post = (path: string, form: string, key = t.secret_key, headers: Record<string, string> = {}) =>
  call(t.url, 'POST', path, { key, form, headers });
const get = (path: string, key = t.secret_key) => call(t.url, 'GET', path, { key });
const VISA = 'type=card&card[number]=4242424242424242&card[exp_month]=12&card[exp_year]=2034&card[cvc]=123';

async function vaultRows(): Promise<number[]> {
  return Promise.all(
    ['vault_cards', 'vault_cvcs', 'payment_methods'].map((table) => countRows(t.pool, table)),
  );
}

describe('payment methods', () => {
  it('the idempotency fingerprint of a tokenization is an HMAC under the fingerprint key, never a plain hash', async () => {
    const created = await post('/v1/payment_methods', VISA, t.publishable_key, {
      'Idempotency-Key': 'keyed-fp',
    });
    expect(created.status).toBe(200);
    const { rows } = await t.pool.query(
      "SELECT request_fingerprint FROM idempotency_keys WHERE idempotency_key = 'keyed-fp'",
    );
    const card = checkCard({ number: '4242424242424242', exp_month: 12, exp_year: 2034, cvc: '123' });
    const text = canonicalJson({ method: 'POST', path: '/v1/payment_methods', params: { card } });
    const keyed = createHmac('sha256', t.moneta.vault.keys.fingerprintKey()).update(text).digest();
    expect(rows[0].request_fingerprint).toEqual(keyed);
    expect(rows[0].request_fingerprint).not.toEqual(createHash('sha256').update(text).digest());
  });

  it('a publishable key tokenizes a card; the response shows brand, last 4 and fingerprint, never the number', async () => {
    const created = await post(
      '/v1/payment_methods',
      `${VISA}&billing_details[name]=Jenny+Rosen`,
      t.publishable_key,
    );
    expect(created.status).toBe(200);
    expect(created.body).toMatchObject({
      object: 'payment_method',
      type: 'card',
      customer: null,
      livemode: false,
      billing_details: { name: 'Jenny Rosen', email: null, address: { country: null } },
      card: {
        brand: 'visa',
        last4: '4242',
        exp_month: 12,
        exp_year: 2034,
        funding: 'credit',
        country: 'US',
        checks: { cvc_check: 'unchecked' },
      },
    });
    expect(created.body.id).toMatch(/^pm_[0-9A-Z]{26}$/);
    expect(created.body.card.fingerprint).toMatch(/^[0-9A-Za-z]{16}$/);
    expect(created.text).not.toContain('4242424242424242');
    const fetched = await get(`/v1/payment_methods/${created.body.id}`);
    expect(fetched.text).toBe(created.text);
    // Publishable keys tokenize and nothing else.
    expect((await get(`/v1/payment_methods/${created.body.id}`, t.publishable_key)).status).toBe(403);
  });

  it('the same card has the same fingerprint for one merchant and another for a second merchant', async () => {
    const a = await post('/v1/payment_methods', VISA);
    const b = await post('/v1/payment_methods', VISA.replace('card[cvc]=123', 'card[cvc]=999'));
    const other = await createMerchant(t.pool, { name: 'Other merchant' });
    const c = await post('/v1/payment_methods', VISA, other.test.secret_key);
    expect(a.body.card.fingerprint).toBe(b.body.card.fingerprint);
    expect(c.body.card.fingerprint).not.toBe(a.body.card.fingerprint);
    const mastercard = await post(
      '/v1/payment_methods',
      VISA.replace('4242424242424242', '5555555555554444'),
    );
    expect(mastercard.body.card).toMatchObject({ brand: 'mastercard', last4: '4444' });
    expect(mastercard.body.card.fingerprint).not.toBe(a.body.card.fingerprint);
    // Another merchant cannot read this merchant's payment method.
    expect((await get(`/v1/payment_methods/${a.body.id}`, other.test.secret_key)).status).toBe(404);
  });

  it('bad card data gets a Stripe-shaped error naming the parameter, and writes nothing', async () => {
    const before = await vaultRows();
    const year = new Date().getUTCFullYear();
    const cases: [string, number, string, string][] = [
      ['type=card&card[exp_month]=12&card[exp_year]=2034', 400, 'parameter_missing', 'card[number]'],
      [
        'card[number]=4242424242424242&card[exp_month]=12&card[exp_year]=2034',
        400,
        'parameter_missing',
        'type',
      ],
      [VISA.replace('type=card', 'type=sepa_debit'), 400, 'parameter_invalid', 'type'],
      [VISA.replace('4242424242424242', '4242424242424241'), 402, 'incorrect_number', 'card[number]'],
      [VISA.replace('4242424242424242', '4242x24242424242'), 402, 'invalid_number', 'card[number]'],
      [VISA.replace('4242424242424242', '424242424242'), 402, 'invalid_number', 'card[number]'],
      [
        VISA.replace('card[exp_month]=12', 'card[exp_month]=13'),
        402,
        'invalid_expiry_month',
        'card[exp_month]',
      ],
      [
        VISA.replace('card[exp_year]=2034', `card[exp_year]=${year - 1}`),
        402,
        'invalid_expiry_year',
        'card[exp_year]',
      ],
      [VISA.replace('card[cvc]=123', 'card[cvc]=12'), 402, 'invalid_cvc', 'card[cvc]'],
      [VISA.replace('card[cvc]=123', 'card[cvc]=12a'), 402, 'invalid_cvc', 'card[cvc]'],
      [
        'type=card&card[number]=378282246310005&card[exp_month]=12&card[exp_year]=2034&card[cvc]=123',
        402,
        'invalid_cvc',
        'card[cvc]',
      ],
      [`${VISA}&card[name]=x`, 400, 'parameter_unknown', 'card[name]'],
      [`${VISA}&billing_details[email]=nope`, 400, 'email_invalid', 'billing_details[email]'],
    ];
    for (const [form, status, code, param] of cases) {
      const res = await post('/v1/payment_methods', form);
      expect({ form, status: res.status, code: res.body.error?.code, param: res.body.error?.param }).toEqual({
        form,
        status,
        code,
        param,
      });
      expect(res.body.error.type).toBe(status === 402 ? 'card_error' : 'invalid_request_error');
      expect(res.text).not.toMatch(/4242424242424241|4242x24242424242|378282246310005/);
    }
    expect(await vaultRows()).toEqual(before);
  });

  it('attach, list and detach through the official stripe package', async () => {
    const stripe = new Stripe(t.secret_key, {
      host: new URL(t.url).hostname,
      port: Number(new URL(t.url).port),
      protocol: 'http',
    });
    const customer = await stripe.customers.create({ email: 'pm@example.com' });
    const pm = await stripe.paymentMethods.create({
      type: 'card',
      card: { number: '5555555555554444', exp_month: 3, exp_year: 2033, cvc: '737' },
    });
    expect(pm.card?.brand).toBe('mastercard');
    const attached = await stripe.paymentMethods.attach(pm.id, { customer: customer.id });
    expect(attached.customer).toBe(customer.id);
    const shortcut = await stripe.paymentMethods.attach('pm_card_visa', { customer: customer.id });
    expect(shortcut.id).toMatch(/^pm_[0-9A-Z]{26}$/);
    expect(shortcut.card?.last4).toBe('4242');
    const listed = await stripe.customers.listPaymentMethods(customer.id, { limit: 10 });
    expect(listed.data.map((p) => p.id)).toEqual([shortcut.id, pm.id]);
    const page = await stripe.paymentMethods.list({ customer: customer.id, type: 'card', limit: 1 });
    expect(page.has_more).toBe(true);
    expect(page.data[0]!.id).toBe(shortcut.id);
    const detached = await stripe.paymentMethods.detach(pm.id);
    expect(detached.customer).toBeNull();
    expect((await stripe.customers.listPaymentMethods(customer.id)).data.map((p) => p.id)).toEqual([
      shortcut.id,
    ]);
  });

  it('attach and detach refuse what cannot be done, naming the parameter', async () => {
    const customer = (await post('/v1/customers', 'email=a%40example.com')).body.id as string;
    const other = (await post('/v1/customers', 'email=b%40example.com')).body.id as string;
    const pm = (await post('/v1/payment_methods', VISA)).body.id as string;
    const missing = await post(`/v1/payment_methods/${pm}/attach`, 'customer=cus_00000000000000000000000000');
    expect([missing.status, missing.body.error.param]).toEqual([404, 'customer']);
    expect((await post(`/v1/payment_methods/${pm}/attach`, '')).body.error).toMatchObject({
      code: 'parameter_missing',
      param: 'customer',
    });
    expect((await post(`/v1/payment_methods/${pm}/detach`, '')).status).toBe(400);
    expect((await post(`/v1/payment_methods/${pm}/attach`, `customer=${customer}`)).status).toBe(200);
    // Attaching again to the same customer is harmless; to another is refused.
    expect((await post(`/v1/payment_methods/${pm}/attach`, `customer=${customer}`)).status).toBe(200);
    const taken = await post(`/v1/payment_methods/${pm}/attach`, `customer=${other}`);
    expect([taken.status, taken.body.error.code]).toEqual([400, 'payment_method_unexpected_state']);
    expect((await post('/v1/payment_methods/pm_nothing/attach', `customer=${customer}`)).status).toBe(404);
    expect((await get(`/v1/customers/${other}/payment_methods`)).body.data).toEqual([]);
    expect((await get('/v1/customers/cus_00000000000000000000000000/payment_methods')).status).toBe(404);
    // Test shortcuts do not exist in live mode.
    const live_customer = (await post('/v1/customers', 'email=c%40example.com', t.live_secret_key)).body.id;
    const live = await post(
      '/v1/payment_methods/pm_card_visa/attach',
      `customer=${live_customer}`,
      t.live_secret_key,
    );
    expect(live.status).toBe(404);
  });

  it('an idempotent tokenization replays its response, stores no card data with the key, and refuses another card', async () => {
    const headers = { 'Idempotency-Key': 'pm-key-1' };
    const first = await post('/v1/payment_methods', VISA, t.publishable_key, headers);
    const replay = await post('/v1/payment_methods', VISA, t.publishable_key, headers);
    expect(replay.text).toBe(first.text);
    expect(replay.headers.get('idempotent-replayed')).toBe('true');
    const other = await post(
      '/v1/payment_methods',
      VISA.replace('card[exp_month]=12', 'card[exp_month]=11'),
      t.publishable_key,
      headers,
    );
    expect([other.status, other.body.error.type]).toEqual([400, 'idempotency_error']);
    const { rows } = await t.pool.query(
      "SELECT request_params, response_body FROM idempotency_keys WHERE idempotency_key = 'pm-key-1'",
    );
    expect(rows[0].request_params).toBeNull();
    expect(rows[0].response_body).not.toContain('4242424242424242');
  });

  it('answers CORS preflights so browsers can tokenize from any origin', async () => {
    const res = await fetch(`${t.url}/v1/payment_methods`, {
      method: 'OPTIONS',
      headers: {
        origin: 'https://shop.example',
        'access-control-request-method': 'POST',
        'access-control-request-headers': 'authorization,content-type',
      },
    });
    expect(res.status).toBe(204);
    expect(res.headers.get('access-control-allow-origin')).toBe('*');
    expect(res.headers.get('access-control-allow-headers')?.toLowerCase()).toContain('authorization');
    const created = await call(t.url, 'POST', '/v1/payment_methods', {
      key: t.publishable_key,
      form: VISA,
      headers: { origin: 'https://shop.example' },
    });
    expect(created.headers.get('access-control-allow-origin')).toBe('*');
    expect(created.headers.get('access-control-expose-headers')).toContain('Request-Id');
  });
});
