import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { call, countRows, startTestMoneta, type TestMoneta } from '../../test/helpers.ts';

let t: TestMoneta;
beforeAll(async () => {
  t = await startTestMoneta({ MONETA_RATE_LIMIT_PER_SECOND: '100000', MONETA_RATE_LIMIT_BURST: '100000' });
});
afterAll(async () => t?.close());

const post = (key: string | undefined, form: string, api_key = t.secret_key) =>
  call(t.url, 'POST', '/v1/customers', {
    key: api_key,
    form,
    headers: key === undefined ? {} : { 'idempotency-key': key },
  });

describe('idempotency over HTTP', () => {
  it('50 concurrent POSTs with one key create exactly one customer; each caller gets the same body or a 409', async () => {
    const before = await countRows(t.pool, 'customers');
    const responses = await Promise.all(
      Array.from({ length: 50 }, () => post('concurrent-1', 'email=once%40example.com&metadata[n]=1')),
    );
    expect(await countRows(t.pool, 'customers')).toBe(before + 1);
    const ok = responses.filter((r) => r.status === 200);
    const conflicts = responses.filter((r) => r.status === 409);
    expect(ok.length + conflicts.length).toBe(50);
    expect(ok.length).toBeGreaterThanOrEqual(1);
    const bodies = new Set(ok.map((r) => r.text));
    expect(bodies.size).toBe(1);
    for (const c of conflicts) {
      expect(c.body.error.type).toBe('idempotency_error');
      expect(c.body.error.code).toBe('idempotency_key_in_use');
    }
    // Exactly one of them executed; the rest that succeeded are replays.
    expect(ok.filter((r) => r.headers.get('idempotent-replayed') === null).length).toBe(1);
  });

  it('replays the first response byte for byte with Idempotent-Replayed and Original-Request', async () => {
    const first = await post('replay-1', 'name=Jenny&email=jenny%40example.com');
    const again = await post('replay-1', 'name=Jenny&email=jenny%40example.com');
    expect(first.status).toBe(200);
    expect(again.status).toBe(200);
    expect(again.text).toBe(first.text);
    expect(again.headers.get('idempotent-replayed')).toBe('true');
    expect(again.headers.get('original-request')).toBe(first.headers.get('request-id'));
    expect(again.headers.get('request-id')).not.toBe(first.headers.get('request-id'));
  });

  it('treats a JSON body and the same parameters form-encoded as the same request', async () => {
    const first = await call(t.url, 'POST', '/v1/customers', {
      key: t.secret_key,
      json: { name: 'Same', metadata: { a: '1' } },
      headers: { 'idempotency-key': 'json-form' },
    });
    const again = await post('json-form', 'name=Same&metadata[a]=1');
    expect(again.text).toBe(first.text);
  });

  it('answers 400 idempotency_error when the same key comes with other parameters, and changes nothing', async () => {
    await post('mismatch-1', 'name=A');
    const count = await countRows(t.pool, 'customers');
    const other = await post('mismatch-1', 'name=B');
    expect(other.status).toBe(400);
    expect(other.body.error.type).toBe('idempotency_error');
    expect(await countRows(t.pool, 'customers')).toBe(count);
  });

  it('treats the same key on another endpoint as a mismatch', async () => {
    const created = await post('path-1', 'name=P');
    const onUpdate = await call(t.url, 'POST', `/v1/customers/${created.body.id}`, {
      key: t.secret_key,
      form: 'name=P',
      headers: { 'idempotency-key': 'path-1' },
    });
    expect(onUpdate.status).toBe(400);
    expect(onUpdate.body.error.type).toBe('idempotency_error');
  });

  it('does not store validation failures: the same key then works with valid parameters', async () => {
    const bad = await post('validation-1', 'email=not-an-email');
    expect(bad.status).toBe(400);
    expect(bad.body.error.param).toBe('email');
    const good = await post('validation-1', 'email=ok%40example.com');
    expect(good.status).toBe(200);
    expect(good.headers.get('idempotent-replayed')).toBeNull();
  });

  it('does not store 401s', async () => {
    const denied = await post('auth-1', 'name=X', 'sk_test_0000000000000000000000000000');
    expect(denied.status).toBe(401);
    const good = await post('auth-1', 'name=X');
    expect(good.status).toBe(200);
    expect(good.headers.get('idempotent-replayed')).toBeNull();
  });

  it('stores a 404 that happens after work started and replays it', async () => {
    const path = '/v1/customers/cus_01ARZ3NDEKTSV4RRFFQ69G5FAV';
    const opts = { key: t.secret_key, form: 'name=Z', headers: { 'idempotency-key': 'missing-1' } };
    const first = await call(t.url, 'POST', path, opts);
    const again = await call(t.url, 'POST', path, opts);
    expect(first.status).toBe(404);
    expect(first.body.error.code).toBe('resource_missing');
    expect(again.text).toBe(first.text);
    expect(again.headers.get('idempotent-replayed')).toBe('true');
  });

  it('scopes keys per mode: the same key in live mode is a different request', async () => {
    const test = await post('mode-1', 'name=M');
    const live = await post('mode-1', 'name=M', t.live_secret_key);
    expect(live.status).toBe(200);
    expect(live.body.livemode).toBe(true);
    expect(live.body.id).not.toBe(test.body.id);
  });

  it('refuses keys longer than 255 characters, naming the header', async () => {
    const res = await post('k'.repeat(256), 'name=L');
    expect(res.status).toBe(400);
    expect(res.body.error.param).toBe('Idempotency-Key');
  });

  it('replays after a server restart', async () => {
    const first = await post('restart-1', 'name=Restart');
    await t.restart();
    const again = await post('restart-1', 'name=Restart');
    expect(again.status).toBe(200);
    expect(again.text).toBe(first.text);
    expect(again.headers.get('idempotent-replayed')).toBe('true');
  });
});
