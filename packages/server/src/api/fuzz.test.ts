import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestMoneta, type TestMoneta } from '../../test/helpers.ts';
import { ledgerId } from '../ledger/index.ts';
import { createMerchant } from '../merchants/index.ts';

/**
 * Property: whatever a client throws at any route — random methods, paths, query strings,
 * headers and bodies — the answer is never a 5xx, always a JSON body (Stripe's error shape
 * for errors), and a refused request changes nothing in the database.
 */
let t: TestMoneta;
let existingId: string;
let existingPm: string;
let existingPi: string;
let platformKey: string;
const accountId = ledgerId();

beforeAll(async () => {
  t = await startTestMoneta({ MONETA_RATE_LIMIT_PER_SECOND: '1000000', MONETA_RATE_LIMIT_BURST: '1000000' });
  const res = await fetch(`${t.url}/v1/customers`, {
    method: 'POST',
    headers: { authorization: `Bearer ${t.secret_key}`, 'content-type': 'application/x-www-form-urlencoded' },
    body: 'name=Fuzz',
  });
  existingId = ((await res.json()) as { id: string }).id;
  const pm = await fetch(`${t.url}/v1/payment_methods`, {
    method: 'POST',
    headers: { authorization: `Bearer ${t.secret_key}`, 'content-type': 'application/x-www-form-urlencoded' },
    body: 'type=card&card[number]=4242424242424242&card[exp_month]=12&card[exp_year]=2034',
  });
  existingPm = ((await pm.json()) as { id: string }).id;
  const pi = await fetch(`${t.url}/v1/payment_intents`, {
    method: 'POST',
    headers: { authorization: `Bearer ${t.secret_key}`, 'content-type': 'application/x-www-form-urlencoded' },
    body: 'amount=1500&currency=usd',
  });
  existingPi = ((await pi.json()) as { id: string }).id;
  platformKey = (await createMerchant(t.pool, { name: 'Fuzz platform', is_platform: true })).test.secret_key;
  await fetch(`${t.url}/v1/ledger/accounts`, {
    method: 'POST',
    headers: { authorization: `Bearer ${platformKey}`, 'content-type': 'application/json' },
    body: JSON.stringify({ accounts: [{ id: accountId, ledger: 840, code: 1 }] }),
  });
});
afterAll(async () => t?.close());

async function snapshot(withKeys: boolean): Promise<string> {
  const tables = [
    'merchants',
    'api_keys',
    'customers',
    'ledger_accounts',
    'ledger_transfers',
    'vault_cards',
    'vault_cvcs',
    'payment_methods',
    'audit_log',
    'payment_intents',
    'payment_attempts',
    'charges',
    'refunds',
    // The dispatcher changes these on its own (dispatch marks, failure times): what a request wrote is compared.
    '(SELECT seq, id, merchant_id, livemode, type, object_id, data, created_at FROM events)',
    '(SELECT id, merchant_id, livemode, url, enabled_events, description, metadata, status, secret, deleted_at FROM webhook_endpoints)',
    ...(withKeys ? ['idempotency_keys'] : []),
  ];
  const parts = [];
  for (const table of tables) {
    const { rows } = await t.pool.query(
      `SELECT md5(coalesce(string_agg(x::text, ',' ORDER BY x::text), '')) AS h FROM ${table} x`,
    );
    parts.push(rows[0].h);
  }
  return parts.join(':');
}

const text = fc.oneof(
  fc.string({ maxLength: 30 }),
  fc.constantFrom(
    '',
    ' ',
    'null',
    '[]',
    '{}',
    '4242424242424242',
    '-1',
    '1e999',
    '%',
    '%zz',
    '\u0000',
    '😀',
    'a'.repeat(600),
  ),
);
const paramName = fc.oneof(
  fc.constantFrom(
    'email',
    'name',
    'phone',
    'description',
    'metadata',
    'address',
    'limit',
    'starting_after',
    'ending_before',
    'created',
    'expand',
    'id',
    'accounts',
    'transfers',
    'amount',
    'ledger',
    'code',
    'flags',
    'debit_account_id',
    'pending_id',
    'type',
    'card',
    'number',
    'exp_month',
    'exp_year',
    'cvc',
    'customer',
    'billing_details',
    'currency',
    'payment_method',
    'confirm',
    'capture_method',
    'amount_to_capture',
    'cancellation_reason',
    'payment_intent',
    'reason',
  ),
  fc.string({ maxLength: 12 }),
);
const bracketed = fc
  .tuple(paramName, fc.array(fc.oneof(paramName, fc.constant('')), { maxLength: 7 }))
  .map(([head, rest]) => head + rest.map((r) => `[${r}]`).join(''));
const formBody = fc
  .array(fc.tuple(bracketed, text), { maxLength: 8 })
  .map((pairs) => pairs.map(([k, v]) => `${encodeURIComponent(k)}=${encodeURIComponent(v)}`).join('&'));
const rawForm = fc.string({ maxLength: 80 });
/** A card that passes validation, with one field replaced: reaches the vault's deeper checks. */
const cardForm = fc
  .tuple(fc.constantFrom('number', 'exp_month', 'exp_year', 'cvc', 'pin'), text)
  .map(([field, value]) => {
    const card: Record<string, string> = {
      number: '4242424242424242',
      exp_month: '12',
      exp_year: '2034',
      cvc: '123',
    };
    card[field] = value;
    return `type=card&${Object.entries(card)
      .map(([k, v]) => `card[${k}]=${encodeURIComponent(v)}`)
      .join('&')}`;
  });

const path = fc.oneof(
  fc.constantFrom('/v1/customers', '/healthz', '/readyz', '/v1', '/', '/v1/customers/', '/v1/customers/x/y'),
  fc.constant('EXISTING').map(() => `/v1/customers/${existingId}`),
  fc.constantFrom(
    '/v1/ledger/accounts',
    '/v1/ledger/transfers',
    `/v1/ledger/accounts/${accountId}`,
    `/v1/ledger/accounts/${accountId}/transfers`,
    '/v1/ledger/transfers/x',
    '/v1/payment_methods',
    '/v1/payment_methods/pm_card_visa/attach',
    '/v1/payment_methods/pm_x/detach',
    '/v1/payment_intents',
    '/v1/refunds',
    '/v1/payment_intents/pi_x/capture',
    '/v1/webhook_endpoints',
    '/v1/webhook_endpoints/we_x',
    '/v1/webhook_endpoints/we_x/roll_secret',
    '/v1/events',
    '/v1/events/evt_x',
  ),
  fc
    .constantFrom('', '/confirm', '/capture', '/cancel')
    .map((action) => `/v1/payment_intents/${existingPi}${action}`),
  fc.constant('EXISTING').map(() => `/v1/customers/${existingId}/payment_methods`),
  fc.constant('EXISTING').map(() => `/v1/payment_methods/${existingPm}`),
  fc.constantFrom('attach', 'detach').map((action) => `/v1/payment_methods/${existingPm}/${action}`),
  fc.string({ maxLength: 40 }).map((s) => `/v1/customers/${encodeURIComponent(s)}`),
  fc.string({ maxLength: 20 }).map((s) => `/${encodeURIComponent(s)}`),
);

const request = fc.record({
  method: fc.constantFrom('GET', 'POST', 'DELETE', 'PUT', 'PATCH', 'OPTIONS'),
  path,
  query: fc.oneof(fc.constant(''), formBody, rawForm.map(encodeURI)),
  body: fc.oneof(
    fc.constant(undefined),
    formBody.map((b) => ({ type: 'application/x-www-form-urlencoded', b })),
    cardForm.map((b) => ({ type: 'application/x-www-form-urlencoded', b })),
    rawForm.map((b) => ({ type: 'application/x-www-form-urlencoded', b })),
    fc.jsonValue({ maxDepth: 4 }).map((v) => ({ type: 'application/json', b: JSON.stringify(v) })),
    rawForm.map((b) => ({ type: 'application/json', b })),
    rawForm.map((b) => ({ type: 'text/plain', b })),
  ),
  auth: fc.constantFrom('secret', 'publishable', 'live', 'garbage', 'none', 'basic', 'platform'),
  idempotency: fc.oneof(fc.constant(undefined), fc.string({ maxLength: 300 }), fc.constant('k'.repeat(256))),
});

describe('random requests', () => {
  it('never get a 5xx, always get JSON, and refused requests change nothing', async () => {
    await fc.assert(
      fc.asyncProperty(request, async (r) => {
        const headers: Record<string, string> = {};
        const key = {
          secret: t.secret_key,
          publishable: t.publishable_key,
          live: t.live_secret_key,
          garbage: 'sk_test_nope',
          platform: platformKey,
        }[r.auth as 'secret'];
        if (key) headers.authorization = `Bearer ${key}`;
        if (r.auth === 'basic')
          headers.authorization = `Basic ${Buffer.from(`${t.secret_key}:`).toString('base64')}`;
        if (r.idempotency !== undefined && /^[\x20-\x7e]*$/.test(r.idempotency))
          headers['idempotency-key'] = r.idempotency;
        if (r.body) headers['content-type'] = r.body.type;
        const before = await snapshot(true);
        const url = `${t.url}${r.path}${r.query ? `?${r.query}` : ''}`;
        let res: Response;
        try {
          res = await fetch(url, {
            method: r.method,
            headers,
            body: r.method === 'GET' ? undefined : r.body?.b,
          });
        } catch (err) {
          // A URL that fetch itself refuses to send is not a server answer.
          if (err instanceof TypeError && /Invalid URL|Failed to parse/.test(String(err.message))) return;
          throw err;
        }
        const bodyText = await res.text();
        expect(res.status, `${r.method} ${url} → ${bodyText}`).toBeLessThan(500);
        const body = bodyText ? JSON.parse(bodyText) : null;
        if (r.path !== '/metrics' && res.status >= 400) {
          expect(body.error.type, bodyText).toMatch(/_error$/);
          expect(typeof body.error.message).toBe('string');
          expect(bodyText).not.toMatch(/\.ts:\d+/);
          // A refusal decided after work started (a missing object, a payment in the wrong
          // state) is stored under its idempotency key (Stripe semantics; the idempotency tests
          // check that validation failures are not); nothing else may touch the database.
          const stored = headers['idempotency-key'] !== undefined && r.method === 'POST';
          expect(await snapshot(!stored), `${r.method} ${url} changed the database`).toBe(
            stored ? before.split(':').slice(0, -1).join(':') : before,
          );
        }
      }),
      { numRuns: Number(process.env.FUZZ_RUNS ?? 400) },
    );
  });
});
