import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { authorizeBody, card, client, type Running, ref, startTemp } from './testing.ts';

let sim: Running;
/** Settlement days are derived from this clock; it only moves forward, by hand. */
let clock = Date.parse('2031-05-14T09:00:00Z');

beforeAll(async () => {
  sim = await startTemp({ now: () => clock });
});
afterAll(async () => {
  await sim.stop();
});

async function authorize(number = '4242424242424242', overrides: Record<string, unknown> = {}) {
  const res = await sim.api.post('/v1/authorizations', authorizeBody(number, overrides));
  expect(res.status).toBe(200);
  return res.json;
}

describe('test cards', () => {
  it('approves a good card with an auth code and keeps only last4 and brand', async () => {
    const t = await authorize('5555555555554444', { amount: 1234, currency: 'eur' });
    expect(t).toMatchObject({
      status: 'approved',
      amount: 1234,
      currency: 'eur',
      approved_amount: 1234,
      captured_amount: 0,
      refunded_amount: 0,
      voided: false,
      decline_code: null,
      network_status: 'approved_by_network',
      cvc_check: 'pass',
      card_last4: '4444',
      card_brand: 'mastercard',
      captures: [],
      refunds: [],
      created: Math.floor(clock / 1000),
    });
    expect(t.id).toMatch(/^auth_[0-9a-f]{24}$/);
    expect(t.auth_code).toMatch(/^[A-Z0-9]{6}$/);
    expect(Object.keys(t)).toEqual([
      'id',
      'reference',
      'status',
      'amount',
      'currency',
      'approved_amount',
      'captured_amount',
      'refunded_amount',
      'voided',
      'decline_code',
      'network_status',
      'cvc_check',
      'auth_code',
      'card_last4',
      'card_brand',
      'created',
      'captures',
      'refunds',
    ]);
  });

  it('answers brands by leading digits and cvc_check unavailable without a cvc', async () => {
    expect((await authorize('378282246310005')).card_brand).toBe('amex');
    expect((await authorize('6011111111111117')).card_brand).toBe('discover');
    expect((await authorize('2223003122003222')).card_brand).toBe('mastercard');
    const noCvc = await authorize('4242424242424242', { card: card('4242424242424242', { cvc: null }) });
    expect(noCvc).toMatchObject({ status: 'approved', cvc_check: 'unavailable', card_brand: 'visa' });
  });

  it.each([
    ['4000000000000002', 'generic_decline', 'declined_by_network', 'pass'],
    ['4000000000009995', 'insufficient_funds', 'declined_by_network', 'pass'],
    ['4000000000009987', 'lost_card', 'declined_by_network', 'pass'],
    ['4000000000009979', 'stolen_card', 'declined_by_network', 'pass'],
    ['4000000000000069', 'expired_card', 'declined_by_network', 'pass'],
    ['4000000000000127', 'incorrect_cvc', 'declined_by_network', 'fail'],
    ['4000000000000119', 'processing_error', 'not_sent_to_network', 'unchecked'],
    ['4000000000006975', 'card_velocity_exceeded', 'declined_by_network', 'pass'],
  ])('declines %s with %s', async (number, decline_code, network_status, cvc_check) => {
    const t = await authorize(number);
    expect(t).toMatchObject({
      status: 'declined',
      decline_code,
      network_status,
      cvc_check,
      approved_amount: 0,
      auth_code: null,
      card_last4: number.slice(-4),
    });
  });

  it.each(['4000002500003155', '4000002760003184', '4000000000003220'])(
    'asks for 3-D Secure on %s',
    async (number) => {
      const t = await authorize(number);
      expect(t).toMatchObject({
        status: 'authentication_required',
        network_status: 'not_sent_to_network',
        decline_code: null,
        approved_amount: 0,
        auth_code: null,
      });
    },
  );

  it('declines a card whose expiry month is over as expired_card', async () => {
    // The clock is in May 2031: April 2031 is past, May 2031 is still valid.
    const past = await authorize('4242424242424242', {
      card: card('4242424242424242', { exp_month: 4, exp_year: 2031 }),
    });
    expect(past).toMatchObject({ status: 'declined', decline_code: 'expired_card' });
    const current = await authorize('4242424242424242', {
      card: card('4242424242424242', { exp_month: 5, exp_year: 2031 }),
    });
    expect(current.status).toBe('approved');
  });
});

describe('idempotency', () => {
  it('replays the stored response byte for byte and never authorizes twice', async () => {
    const body = authorizeBody();
    const key = ref('key');
    const answers = await Promise.all([1, 2, 3].map(() => sim.api.post('/v1/authorizations', body, key)));
    const later = await sim.api.post('/v1/authorizations', { ...body, card: { ...body.card } }, key);
    for (const a of [...answers, later]) {
      expect(a.status).toBe(200);
      expect(a.text).toBe(answers[0]?.text);
    }
    expect(later.headers.get('idempotent-replayed')).toBe('true');
    const all = sim.acquirer.records().authorizations.filter((t) => t.reference === body.reference);
    expect(all).toHaveLength(1);
  });

  it('the same key with another body is 409 idempotency_key_reused', async () => {
    const body = authorizeBody();
    const key = ref('key');
    expect((await sim.api.post('/v1/authorizations', body, key)).status).toBe(200);
    const other = await sim.api.post('/v1/authorizations', { ...body, amount: body.amount + 1 }, key);
    expect(other.status).toBe(409);
    expect(other.json.error.code).toBe('idempotency_key_reused');
    const otherCard = await sim.api.post(
      '/v1/authorizations',
      { ...body, card: card('5555555555554444') },
      key,
    );
    expect(otherCard.json.error.code).toBe('idempotency_key_reused');
  });

  it('a new key with a used reference is 409 duplicate_reference', async () => {
    const body = authorizeBody();
    await sim.api.post('/v1/authorizations', body);
    const again = await sim.api.post('/v1/authorizations', body, ref('key'));
    expect(again.status).toBe(409);
    expect(again.json.error.code).toBe('duplicate_reference');
  });

  it('requires an Idempotency-Key of at most 255 characters', async () => {
    const none = await sim.api.post('/v1/authorizations', authorizeBody(), null);
    expect(none.status).toBe(400);
    expect(none.json.error.code).toBe('idempotency_key_missing');
    const long = await sim.api.post('/v1/authorizations', authorizeBody(), 'k'.repeat(256));
    expect(long.json.error.code).toBe('idempotency_key_invalid');
  });
});

describe('validation and auth', () => {
  it('rejects a missing or wrong API key with 401, on /v1 and /admin', async () => {
    for (const key of [null, 'wrong']) {
      const anon = client(sim.acquirer.url, key);
      const res = await anon.post('/v1/authorizations', authorizeBody());
      expect(res.status).toBe(401);
      expect(res.json.error.code).toBe('unauthorized');
      expect((await anon.get('/admin/records')).status).toBe(401);
    }
    expect((await client(sim.acquirer.url, null).get('/healthz')).json).toEqual({ ok: true });
  });

  it.each([
    [{ amount: 0 }, 'amount'],
    [{ amount: 1.5 }, 'amount'],
    [{ amount: '100' }, 'amount'],
    [{ currency: 'USD' }, 'currency'],
    [{ reference: '' }, 'reference'],
    [{ reference: 'x'.repeat(256) }, 'reference'],
    [{ card: card('4242 4242 4242 4242') }, 'card.number'],
    [{ card: card('4242424242424242', { exp_month: 13 }) }, 'card.exp_month'],
    [{ card: card('4242424242424242', { cvc: 12 }) }, 'card.cvc'],
    [{ extra: 1 }, 'extra'],
  ])('answers 400 for %j', async (override, param) => {
    const res = await sim.api.post('/v1/authorizations', authorizeBody('4242424242424242', override));
    expect(res.status).toBe(400);
    expect(res.json.error.param).toBe(param);
    expect(res.text).not.toContain('4242');
  });

  it('answers 400 for bad JSON, 413 past 64 KiB, 404 and 405 for unknown routes', async () => {
    expect((await sim.api.post('/v1/authorizations', '{nope')).json.error.code).toBe('invalid_json');
    const huge = await sim.api.post('/v1/authorizations', { ...authorizeBody(), pad: 'x'.repeat(70_000) });
    expect(huge.status).toBe(413);
    expect((await sim.api.get('/v1/nothing')).status).toBe(404);
    expect((await sim.api.get('/v1/authorizations')).status).toBe(405);
    expect((await sim.api.get('/v1/authorizations/auth_missing')).status).toBe(404);
  });
});

describe('capture, void, refunds', () => {
  it('captures part of an approval; the rest is released and a second capture refused', async () => {
    const t = await authorize('4242424242424242', { amount: 5000 });
    const captureRef = ref('cap');
    const res = await sim.api.post(`/v1/authorizations/${t.id}/capture`, {
      amount: 3000,
      reference: captureRef,
    });
    expect(res.status).toBe(200);
    expect(res.json).toMatchObject({
      id: t.id,
      approved_amount: 5000,
      captured_amount: 3000,
      captures: [{ reference: captureRef, amount: 3000, created: Math.floor(clock / 1000) }],
    });
    const again = await sim.api.post(`/v1/authorizations/${t.id}/capture`, { reference: ref('cap') });
    expect(again.status).toBe(422);
    expect(again.json.error.code).toBe('invalid_state');
    expect((await sim.api.get(`/v1/authorizations/${t.id}`)).text).toBe(res.text);
  });

  it('a sale (capture: true) captures an approval at once, and only an approval', async () => {
    const sale = await authorize('4242424242424242', { amount: 1200, capture: true });
    expect(sale).toMatchObject({ status: 'approved', approved_amount: 1200, captured_amount: 1200 });
    expect(sale.captures).toEqual([
      { reference: sale.reference, amount: 1200, created: Math.floor(clock / 1000) },
    ]);
    const inquiry = await sim.api.get(`/v1/inquiries/${sale.reference}`);
    expect(inquiry.json).toMatchObject({ kind: 'authorization', transaction: { captured_amount: 1200 } });
    const again = await sim.api.post(`/v1/authorizations/${sale.id}/capture`, { reference: ref('cap') });
    expect(again.json.error.code).toBe('invalid_state');
    const refund = await sim.api.post(`/v1/authorizations/${sale.id}/refunds`, {
      amount: 200,
      reference: ref('rf'),
    });
    expect(refund.json.amount).toBe(200);
    const declined = await authorize('4000000000000002', { capture: true });
    expect(declined).toMatchObject({ status: 'declined', captured_amount: 0, captures: [] });
    const bad = await sim.api.post(
      '/v1/authorizations',
      authorizeBody('4242424242424242', { capture: 'yes' }),
    );
    expect([bad.status, bad.json.error.param]).toEqual([400, 'capture']);
  });

  it('captures the full amount by default and refuses more than approved', async () => {
    const t = await authorize('4242424242424242', { amount: 700 });
    const tooMuch = await sim.api.post(`/v1/authorizations/${t.id}/capture`, {
      amount: 701,
      reference: ref('cap'),
    });
    expect(tooMuch.status).toBe(422);
    expect(tooMuch.json.error.code).toBe('amount_too_large');
    const full = await sim.api.post(`/v1/authorizations/${t.id}/capture`, { reference: ref('cap') });
    expect(full.json.captured_amount).toBe(700);
  });

  it('refuses to capture a decline, a 3-D Secure answer or a voided approval', async () => {
    for (const number of ['4000000000000002', '4000002500003155']) {
      const t = await authorize(number);
      const res = await sim.api.post(`/v1/authorizations/${t.id}/capture`, { reference: ref('cap') });
      expect(res.json.error.code).toBe('invalid_state');
    }
    const t = await authorize();
    await sim.api.post(`/v1/authorizations/${t.id}/void`, { reference: ref('void') });
    const res = await sim.api.post(`/v1/authorizations/${t.id}/capture`, { reference: ref('cap') });
    expect(res.json.error.code).toBe('invalid_state');
    expect(
      (await sim.api.post('/v1/authorizations/auth_nope/capture', { reference: ref('cap') })).status,
    ).toBe(404);
  });

  it('voids an approval once; a retried void replays, a new void is refused', async () => {
    const t = await authorize();
    const key = ref('key');
    const body = { reference: ref('void') };
    const first = await sim.api.post(`/v1/authorizations/${t.id}/void`, body, key);
    expect(first.status).toBe(200);
    expect(first.json).toMatchObject({ voided: true, captured_amount: 0 });
    const retry = await sim.api.post(`/v1/authorizations/${t.id}/void`, body, key);
    expect(retry.status).toBe(200);
    expect(retry.text).toBe(first.text);
    const second = await sim.api.post(`/v1/authorizations/${t.id}/void`, { reference: ref('void') });
    expect(second.status).toBe(422);
    expect(second.json.error.code).toBe('invalid_state');
  });

  it('refuses to void a captured or declined authorization', async () => {
    const captured = await authorize();
    await sim.api.post(`/v1/authorizations/${captured.id}/capture`, { reference: ref('cap') });
    const res = await sim.api.post(`/v1/authorizations/${captured.id}/void`, { reference: ref('void') });
    expect(res.json.error.code).toBe('invalid_state');
    const declined = await authorize('4000000000009995');
    const res2 = await sim.api.post(`/v1/authorizations/${declined.id}/void`, { reference: ref('void') });
    expect(res2.json.error.code).toBe('invalid_state');
  });

  it('refunds several times up to the captured amount, and 422 beyond', async () => {
    const t = await authorize('4242424242424242', { amount: 1000 });
    const nothing = await sim.api.post(`/v1/authorizations/${t.id}/refunds`, {
      amount: 1,
      reference: ref('rf'),
    });
    expect(nothing.json.error.code).toBe('invalid_state');
    await sim.api.post(`/v1/authorizations/${t.id}/capture`, { amount: 900, reference: ref('cap') });
    const r1 = await sim.api.post(`/v1/authorizations/${t.id}/refunds`, {
      amount: 400,
      reference: ref('rf'),
    });
    expect(r1.status).toBe(200);
    expect(r1.json).toMatchObject({ authorization_id: t.id, amount: 400, status: 'succeeded' });
    expect(r1.json.id).toMatch(/^rfd_[0-9a-f]{24}$/);
    expect(Object.keys(r1.json)).toEqual([
      'id',
      'authorization_id',
      'reference',
      'amount',
      'status',
      'created',
    ]);
    const r2 = await sim.api.post(`/v1/authorizations/${t.id}/refunds`, {
      amount: 500,
      reference: ref('rf'),
    });
    expect(r2.status).toBe(200);
    const r3 = await sim.api.post(`/v1/authorizations/${t.id}/refunds`, { amount: 1, reference: ref('rf') });
    expect(r3.status).toBe(422);
    expect(r3.json.error.code).toBe('amount_too_large');
    const after = (await sim.api.get(`/v1/authorizations/${t.id}`)).json;
    expect(after).toMatchObject({ captured_amount: 900, refunded_amount: 900 });
    expect(after.refunds).toEqual([r1.json, r2.json]);
  });
});

describe('inquiries', () => {
  it('finds each kind of operation by its reference', async () => {
    const t = await authorize();
    const capRef = ref('cap');
    const rfRef = ref('rf');
    await sim.api.post(`/v1/authorizations/${t.id}/capture`, { reference: capRef });
    const refund = (
      await sim.api.post(`/v1/authorizations/${t.id}/refunds`, { amount: 10, reference: rfRef })
    ).json;
    const voided = await authorize();
    const voidRef = ref('void');
    await sim.api.post(`/v1/authorizations/${voided.id}/void`, { reference: voidRef });

    const auth = await sim.api.get(`/v1/inquiries/${encodeURIComponent(t.reference)}`);
    expect(auth.json).toMatchObject({
      kind: 'authorization',
      transaction: { id: t.id, captured_amount: 10_000 },
    });
    expect(auth.json.refund).toBeUndefined();
    expect((await sim.api.get(`/v1/inquiries/${capRef}`)).json).toMatchObject({ kind: 'capture' });
    const rf = (await sim.api.get(`/v1/inquiries/${rfRef}`)).json;
    expect(rf).toMatchObject({ kind: 'refund', transaction: { id: t.id, refunded_amount: 10 } });
    expect(rf.refund).toEqual(refund);
    const v = (await sim.api.get(`/v1/inquiries/${voidRef}`)).json;
    expect(v).toMatchObject({ kind: 'void', transaction: { id: voided.id, voided: true } });
  });

  it('finds declines too, and answers 404 not_found only for unknown references', async () => {
    const declined = await authorize('4000000000000002');
    expect((await sim.api.get(`/v1/inquiries/${declined.reference}`)).json.transaction.status).toBe(
      'declined',
    );
    const unknown = await sim.api.get(`/v1/inquiries/${ref('never')}`);
    expect(unknown.status).toBe(404);
    expect(unknown.json).toEqual({ error: { code: 'not_found', message: expect.any(String) } });
  });

  it('accepts any printable reference, percent-encoded in the path', async () => {
    const odd = `ord/42 "x",é ${ref()}`;
    await authorize('4242424242424242', { reference: odd });
    const res = await sim.api.get(`/v1/inquiries/${encodeURIComponent(odd)}`);
    expect(res.json.transaction.reference).toBe(odd);
  });
});

describe('settlement report', () => {
  it('lists the day’s captures and refunds with fees, in time order', async () => {
    clock = Date.parse('2031-06-01T10:00:00Z');
    const a = await authorize('4242424242424242', { amount: 10_000, currency: 'usd' });
    const b = await authorize('5555555555554444', { amount: 999, currency: 'eur' });
    const capA = ref('cap');
    await sim.api.post(`/v1/authorizations/${a.id}/capture`, { reference: capA });
    clock += 60_000;
    const capB = ref('cap');
    await sim.api.post(`/v1/authorizations/${b.id}/capture`, { amount: 500, reference: `${capB},"q"` });
    clock += 60_000;
    const rf1 = ref('rf');
    await sim.api.post(`/v1/authorizations/${a.id}/refunds`, { amount: 2500, reference: rf1 });
    clock = Date.parse('2031-06-02T00:00:01Z');
    const rf2 = ref('rf');
    await sim.api.post(`/v1/authorizations/${a.id}/refunds`, { amount: 100, reference: rf2 });

    const day1 = await sim.api.get('/v1/settlement-reports/2031-06-01');
    expect(day1.status).toBe(200);
    expect(day1.headers.get('content-type')).toBe('text/csv; charset=utf-8');
    expect(day1.text).toBe(
      [
        'type,authorization_id,reference,currency,amount,fee,net,created_at',
        `capture,${a.id},${capA},usd,10000,320,9680,2031-06-01T10:00:00Z`,
        `capture,${b.id},"${capB},""q""",eur,500,44,456,2031-06-01T10:01:00Z`,
        `refund,${a.id},${rf1},usd,-2500,0,-2500,2031-06-01T10:02:00Z`,
        '',
      ].join('\n'),
    );
    const day2 = await sim.api.get('/v1/settlement-reports/2031-06-02');
    expect(day2.text.split('\n')[1]).toBe(`refund,${a.id},${rf2},usd,-100,0,-100,2031-06-02T00:00:01Z`);
    const empty = await sim.api.get('/v1/settlement-reports/2031-06-03');
    expect(empty.text).toBe('type,authorization_id,reference,currency,amount,fee,net,created_at\n');
    expect((await sim.api.get('/v1/settlement-reports/2031-02-30')).status).toBe(400);
  });
});

describe('records', () => {
  it('GET /admin/records lists every authorization as the API shows it', async () => {
    const t = await authorize();
    const res = await sim.api.get('/admin/records');
    expect(res.status).toBe(200);
    const found = res.json.authorizations.find((x: { id: string }) => x.id === t.id);
    expect(found).toEqual(t);
    expect(res.json.authorizations).toEqual(sim.acquirer.records().authorizations);
  });
});
