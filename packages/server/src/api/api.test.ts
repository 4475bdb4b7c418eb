import Stripe from 'stripe';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { call, countRows, startTestMoneta, type TestMoneta } from '../../test/helpers.ts';

let t: TestMoneta;
beforeAll(async () => {
  t = await startTestMoneta({ MONETA_RATE_LIMIT_PER_SECOND: '100000', MONETA_RATE_LIMIT_BURST: '100000' });
});
afterAll(async () => t?.close());

const get = (path: string, key = t.secret_key) => call(t.url, 'GET', path, { key });
const post = (path: string, form: string, key = t.secret_key) => call(t.url, 'POST', path, { key, form });

describe('customers', () => {
  it('creates from a form body with bracket notation and retrieves it', async () => {
    const created = await post(
      '/v1/customers',
      // Keys in an order PostgreSQL's jsonb would change: the retrieve must still match byte for byte.
      'email=jenny%40example.com&name=Jenny+Rosen&metadata[order]=42&metadata[a]=1&address[country]=DE&address[city]=Berlin',
    );
    expect(created.status).toBe(200);
    expect(created.body).toMatchObject({
      object: 'customer',
      email: 'jenny@example.com',
      name: 'Jenny Rosen',
      livemode: false,
      metadata: { order: '42', a: '1' },
      address: { city: 'Berlin', country: 'DE', line1: null },
    });
    expect(created.body.id).toMatch(/^cus_[0-9A-Z]{26}$/);
    expect(Math.abs(created.body.created - Date.now() / 1000)).toBeLessThan(60);
    const fetched = await get(`/v1/customers/${created.body.id}`);
    expect(fetched.text).toBe(created.text);
  });

  it('creates from a JSON body', async () => {
    const created = await call(t.url, 'POST', '/v1/customers', {
      key: t.secret_key,
      json: { email: 'json@example.com', metadata: { a: 'b' } },
    });
    expect(created.status).toBe(200);
    expect(created.body.metadata).toEqual({ a: 'b' });
  });

  it('updates with Stripe metadata rules: merge, "" removes a key, "" for metadata clears it', async () => {
    const c = await post('/v1/customers', 'metadata[a]=1&metadata[b]=2&phone=123');
    const u1 = await post(`/v1/customers/${c.body.id}`, 'metadata[b]=&metadata[c]=3&phone=');
    expect(u1.body.metadata).toEqual({ a: '1', c: '3' });
    expect(u1.body.phone).toBeNull();
    const u2 = await post(`/v1/customers/${c.body.id}`, 'metadata=');
    expect(u2.body.metadata).toEqual({});
  });

  it('deletes: the customer becomes a deleted stub and leaves lists', async () => {
    const c = await post('/v1/customers', 'email=gone%40example.com');
    const del = await call(t.url, 'DELETE', `/v1/customers/${c.body.id}`, { key: t.secret_key });
    expect(del.body).toEqual({ id: c.body.id, object: 'customer', deleted: true });
    expect((await get(`/v1/customers/${c.body.id}`)).body).toEqual({
      id: c.body.id,
      object: 'customer',
      deleted: true,
    });
    const again = await call(t.url, 'DELETE', `/v1/customers/${c.body.id}`, { key: t.secret_key });
    expect(again.status).toBe(404);
    const update = await post(`/v1/customers/${c.body.id}`, 'name=x');
    expect(update.status).toBe(404);
    const list = await get('/v1/customers?email=gone%40example.com');
    expect(list.body.data).toEqual([]);
  });

  it('paginates newest first with limit, starting_after and ending_before', async () => {
    const tag = `page-${Date.now()}@example.com`;
    const ids: string[] = [];
    for (let i = 0; i < 7; i += 1)
      ids.push((await post('/v1/customers', `email=${encodeURIComponent(tag)}`)).body.id);
    const newestFirst = [...ids].reverse();
    const q = `email=${encodeURIComponent(tag)}`;
    const p1 = await get(`/v1/customers?${q}&limit=3`);
    expect(p1.body).toMatchObject({ object: 'list', url: '/v1/customers', has_more: true });
    expect(p1.body.data.map((c: { id: string }) => c.id)).toEqual(newestFirst.slice(0, 3));
    const p2 = await get(`/v1/customers?${q}&limit=3&starting_after=${newestFirst[2]}`);
    expect(p2.body.data.map((c: { id: string }) => c.id)).toEqual(newestFirst.slice(3, 6));
    expect(p2.body.has_more).toBe(true);
    const p3 = await get(`/v1/customers?${q}&limit=3&starting_after=${newestFirst[5]}`);
    expect(p3.body.data.map((c: { id: string }) => c.id)).toEqual(newestFirst.slice(6));
    expect(p3.body.has_more).toBe(false);
    const back = await get(`/v1/customers?${q}&limit=2&ending_before=${newestFirst[4]}`);
    expect(back.body.data.map((c: { id: string }) => c.id)).toEqual(newestFirst.slice(2, 4));
    expect(back.body.has_more).toBe(true);
    const defaults = await get(`/v1/customers?${q}`);
    expect(defaults.body.data).toHaveLength(7);
  });

  it('filters by created range', async () => {
    const c = await post('/v1/customers', 'name=Created');
    const created = c.body.created;
    const inRange = await get(`/v1/customers?created[gte]=${created}&created[lte]=${created}&limit=100`);
    expect(inRange.body.data.map((x: { id: string }) => x.id)).toContain(c.body.id);
    const after = await get(`/v1/customers?created[gt]=${created}&limit=100`);
    expect(after.body.data.map((x: { id: string }) => x.id)).not.toContain(c.body.id);
  });

  it('keeps test and live data apart', async () => {
    const live = await post('/v1/customers', 'name=Live', t.live_secret_key);
    expect(live.body.livemode).toBe(true);
    expect((await get(`/v1/customers/${live.body.id}`)).status).toBe(404);
    expect((await get(`/v1/customers/${live.body.id}`, t.live_secret_key)).status).toBe(200);
    const testList = await get('/v1/customers?limit=100');
    expect(testList.body.data.every((c: { livemode: boolean }) => c.livemode === false)).toBe(true);
  });

  it('works with the official stripe package', async () => {
    const u = new URL(t.url);
    const stripe = new Stripe(t.secret_key, {
      host: u.hostname,
      port: Number(u.port),
      protocol: 'http',
      maxNetworkRetries: 2,
    });
    const c = await stripe.customers.create({ email: 'sdk@example.com', metadata: { source: 'sdk' } });
    expect(c.object).toBe('customer');
    expect(c.metadata).toEqual({ source: 'sdk' });
    const updated = await stripe.customers.update(c.id, { name: 'From SDK' });
    expect(updated.name).toBe('From SDK');
    const list = await stripe.customers.list({ limit: 2 });
    expect(list.data[0]?.id).toBe(c.id);
    const retrieved = await stripe.customers.retrieve(c.id);
    expect(retrieved.id).toBe(c.id);
    const deleted = await stripe.customers.del(c.id);
    expect(deleted.deleted).toBe(true);
    await expect(stripe.customers.update(c.id, { name: 'x' })).rejects.toMatchObject({
      type: 'StripeInvalidRequestError',
      statusCode: 404,
      code: 'resource_missing',
    });
  });
});

describe('authentication', () => {
  it('401 without a key, in the Stripe shape', async () => {
    const res = await call(t.url, 'GET', '/v1/customers');
    expect(res.status).toBe(401);
    expect(res.body.error.type).toBe('invalid_request_error');
    expect(res.body.error.message).toMatch(/API key/);
  });

  it('401 with a wrong key, never echoing it whole', async () => {
    const wrong = 'sk_test_abcdefghijklmnopqrstuvwxyz123456';
    const res = await get('/v1/customers', wrong);
    expect(res.status).toBe(401);
    expect(res.text).not.toContain(wrong);
  });

  it('accepts HTTP basic auth with the key as user name', async () => {
    const res = await call(t.url, 'GET', '/v1/customers', {
      headers: { authorization: `Basic ${Buffer.from(`${t.secret_key}:`).toString('base64')}` },
    });
    expect(res.status).toBe(200);
  });

  it('403 for a publishable key on a secret-key endpoint, and nothing is created', async () => {
    const before = await countRows(t.pool, 'customers');
    const res = await post('/v1/customers', 'name=pk', t.publishable_key);
    expect(res.status).toBe(403);
    expect(res.body.error.type).toBe('invalid_request_error');
    expect(await countRows(t.pool, 'customers')).toBe(before);
  });
});

describe('errors', () => {
  it('404 for unknown routes and ids, 405 with Allow for wrong methods', async () => {
    const unknown = await get('/v1/nothing');
    expect(unknown.status).toBe(404);
    expect(unknown.body.error.type).toBe('invalid_request_error');
    const missing = await get('/v1/customers/cus_01ARZ3NDEKTSV4RRFFQ69G5FAV');
    expect(missing.status).toBe(404);
    expect(missing.body.error).toMatchObject({ code: 'resource_missing', param: 'id' });
    const method = await call(t.url, 'PUT', '/v1/customers', { key: t.secret_key });
    expect(method.status).toBe(405);
    expect(method.headers.get('allow')).toBe('GET, POST');
  });

  it('400 naming the parameter for unknown, mistyped and out-of-range parameters', async () => {
    const unknown = await post('/v1/customers', 'colour=red');
    expect(unknown.body.error).toMatchObject({ code: 'parameter_unknown', param: 'colour' });
    const nested = await post('/v1/customers', 'address[planet]=mars');
    expect(nested.body.error).toMatchObject({ code: 'parameter_unknown', param: 'address[planet]' });
    const hash = await post('/v1/customers', 'name[x]=1');
    expect(hash.status).toBe(400);
    expect(hash.body.error.param).toBe('name');
    const limit = await get('/v1/customers?limit=101');
    expect(limit.body.error.param).toBe('limit');
    const notInt = await get('/v1/customers?limit=ten');
    expect(notInt.body.error).toMatchObject({ code: 'parameter_invalid_integer', param: 'limit' });
    const both = await get(
      `/v1/customers?starting_after=cus_01ARZ3NDEKTSV4RRFFQ69G5FAV&ending_before=cus_01ARZ3NDEKTSV4RRFFQ69G5FAV`,
    );
    expect(both.status).toBe(400);
    const longName = await post('/v1/customers', `name=${'n'.repeat(300)}`);
    expect(longName.body.error.param).toBe('name');
    const meta = await post('/v1/customers', `metadata[${'k'.repeat(41)}]=v`);
    expect(meta.body.error.param).toBe(`metadata[${'k'.repeat(41)}]`);
  });

  it('400 for malformed JSON, 415 for other content types, 413 over 1 MiB', async () => {
    const badJson = await fetch(`${t.url}/v1/customers`, {
      method: 'POST',
      headers: { authorization: `Bearer ${t.secret_key}`, 'content-type': 'application/json' },
      body: '{"name": ',
    });
    expect(badJson.status).toBe(400);
    expect(((await badJson.json()) as { error: { type: string } }).error.type).toBe('invalid_request_error');
    const xml = await fetch(`${t.url}/v1/customers`, {
      method: 'POST',
      headers: { authorization: `Bearer ${t.secret_key}`, 'content-type': 'application/xml' },
      body: '<customer/>',
    });
    expect(xml.status).toBe(415);
    expect(((await xml.json()) as { error: { type: string } }).error.type).toBe('invalid_request_error');
    const big = await post('/v1/customers', `description=${'x'.repeat(1024 * 1024 + 10)}`);
    expect(big.status).toBe(413);
    expect(big.body.error.type).toBe('invalid_request_error');
  });

  it('never shows a stack trace, and masks card numbers echoed in errors', async () => {
    const res = await get('/v1/customers?limit=4242424242424242');
    expect(res.status).toBe(400);
    expect(res.text).not.toContain('4242424242424242');
    expect(res.text).not.toMatch(/at .*\.ts:\d+/);
  });

  it("every response carries a Request-Id that appears in that request's log lines", async () => {
    const ok = await get('/v1/customers?limit=1');
    const notFound = await get('/v1/nowhere');
    for (const res of [ok, notFound]) {
      const id = res.headers.get('request-id');
      expect(id).toMatch(/^req_[0-9A-Za-z]{16}$/);
      expect(t.logs.lines.some((l) => l.includes(`"request_id":"${id}"`))).toBe(true);
    }
  });

  it('keeps secrets and card numbers out of logs', async () => {
    await post('/v1/customers', 'description=card+4242+4242+4242+4242+in+text');
    const logs = t.logs.text();
    expect(logs).not.toContain(t.secret_key);
    expect(logs).not.toContain('4242 4242 4242 4242');
    expect(logs).not.toContain('4242424242424242');
  });
});

describe('health and metrics', () => {
  it('/healthz and /readyz answer without a key', async () => {
    expect((await call(t.url, 'GET', '/healthz')).body).toEqual({ status: 'ok' });
    const ready = await call(t.url, 'GET', '/readyz');
    expect(ready.status).toBe(200);
    expect(ready.body.checks).toEqual({ database: 'ok', migrations: 'ok', shutdown: 'ok' });
  });

  it('/metrics exposes traffic, errors, latency per route and pool saturation', async () => {
    await get('/v1/customers?limit=1');
    const text = (await call(t.url, 'GET', '/metrics')).text;
    expect(text).toMatch(
      /moneta_http_requests_total\{method="GET",route="\/v1\/customers",status_code="200"\} \d+/,
    );
    expect(text).toMatch(
      /moneta_http_request_duration_seconds_bucket\{le="0.1",method="GET",route="\/v1\/customers"\}/,
    );
    expect(text).toMatch(/moneta_db_pool_saturation_ratio \d/);
    expect(text).toMatch(/moneta_db_pool_connections\{state="max"\} 10/);
  });
});
