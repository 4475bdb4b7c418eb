import { execFile } from 'node:child_process';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import Stripe from 'stripe';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  call,
  createTestDatabase,
  startTestMoneta,
  stripeClient,
  type TestMoneta,
  testConfig,
} from '../../test/helpers.ts';
import { createPool } from '../db/pool.ts';
import { createMerchant } from '../merchants/index.ts';
import { createLogger } from '../ops/logger.ts';
import { startMoneta } from '../service.ts';
import { MAX_ATTEMPTS, RETRY_DELAYS_S } from './index.ts';

/**
 * Webhooks end to end: Moneta delivers to a real HTTP receiver on this machine (loopback is
 * allowed for the test), which checks every signature with the official `stripe` package.
 * The retry schedule runs scaled down (MONETA_WEBHOOK_RETRY_SCALE), so three days take
 * seconds; the order and spacing of attempts are what the tests compare.
 */

const SCALE = 0.00002; // 1 min → 1.2 ms, 24 h → 1.7 s

type Behaviour = 'ok' | 'fail' | 'hang' | 'drop';

interface Received {
  path: string;
  /** What the receiver answered. */
  answered: 'ok' | 'fail';
  at_ms: number;
  event: Stripe.Event;
  signature: string;
  body: string;
}

/** A receiver whose paths behave as told; every request is recorded. */
class Receiver {
  readonly received: Received[] = [];
  readonly behaviour = new Map<string, (attempt: number) => Behaviour>();
  readonly counts = new Map<string, number>();
  readonly secrets = new Map<string, string[]>();
  private server!: Server;
  url = '';

  async start(): Promise<void> {
    this.server = createServer((req, res) => this.handle(req, res));
    await new Promise<void>((r) => this.server.listen(0, '127.0.0.1', r));
    this.url = `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
  }

  private handle(req: IncomingMessage, res: ServerResponse): void {
    let body = '';
    req.on('data', (c: Buffer) => {
      body += c.toString('utf8');
    });
    req.on('end', () => {
      const path = req.url ?? '/';
      const n = (this.counts.get(path) ?? 0) + 1;
      this.counts.set(path, n);
      const signature = String(req.headers['stripe-signature'] ?? '');
      const behaviour = this.behaviour.get(path)?.(n) ?? 'ok';
      if (behaviour === 'hang') return; // never answers
      if (behaviour === 'drop') {
        req.socket.destroy();
        return;
      }
      // Verified as a merchant's server would: with each secret this endpoint has had.
      const event = verify(body, signature, this.secrets.get(path) ?? []);
      this.received.push({
        path,
        answered: behaviour === 'ok' ? 'ok' : 'fail',
        at_ms: Date.now(),
        event,
        signature,
        body,
      });
      res.writeHead(behaviour === 'ok' ? 200 : 500, { 'content-type': 'text/plain' });
      res.end(behaviour === 'ok' ? 'thanks' : 'receiver error');
    });
  }

  of(path: string): Received[] {
    return this.received.filter((r) => r.path === path);
  }

  close(): Promise<void> {
    this.server.closeAllConnections();
    return new Promise((r) => this.server.close(() => r()));
  }
}

function verify(body: string, signature: string, secrets: string[]): Stripe.Event {
  let last: unknown = new Error('no secret to verify with');
  for (const secret of secrets) {
    try {
      return Stripe.webhooks.constructEvent(body, signature, secret);
    } catch (err) {
      last = err;
    }
  }
  throw last;
}

let t: TestMoneta;
let stripe: Stripe;
const receiver = new Receiver();

beforeAll(async () => {
  await receiver.start();
  t = await startTestMoneta({
    MONETA_WEBHOOK_ALLOW_PRIVATE: 'true',
    MONETA_WEBHOOK_TIMEOUT_MS: '1500',
    MONETA_WEBHOOK_RETRY_SCALE: String(SCALE),
    MONETA_RATE_LIMIT_PER_SECOND: '100000',
    MONETA_RATE_LIMIT_BURST: '100000',
  });
  stripe = stripeClient(t);
});
afterAll(async () => {
  await t?.close();
  await receiver.close();
});

async function endpoint(path: string, enabled_events: string[] = ['*']): Promise<Stripe.WebhookEndpoint> {
  const created = await stripe.webhookEndpoints.create({
    url: `${receiver.url}${path}`,
    enabled_events: enabled_events as Stripe.WebhookEndpointCreateParams.EnabledEvent[],
  });
  receiver.secrets.set(path, [created.secret!]);
  return created;
}

/** An event of this merchant: a PaymentIntent created without confirming (no acquirer needed). */
async function newIntent(amount = 1000): Promise<string> {
  const pi = await stripe.paymentIntents.create({ amount, currency: 'usd' });
  return pi.id;
}

async function until<T>(
  what: string,
  probe: () => Promise<T | null> | T | null,
  limit_ms = 20_000,
): Promise<T> {
  const deadline = Date.now() + limit_ms;
  for (;;) {
    const v = await probe();
    if (v !== null && v !== undefined && v !== false) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

describe('webhook endpoints API', () => {
  it('creates with the secret shown once; retrieves, updates, lists and deletes without it', async () => {
    const created = await endpoint('/crud', ['payment_intent.created', 'charge.succeeded']);
    expect(created).toMatchObject({
      object: 'webhook_endpoint',
      url: `${receiver.url}/crud`,
      enabled_events: ['payment_intent.created', 'charge.succeeded'],
      status: 'enabled',
      livemode: false,
    });
    expect(created.secret).toMatch(/^whsec_[0-9A-Za-z]{32}$/);
    const got = await stripe.webhookEndpoints.retrieve(created.id);
    expect(got.secret).toBeUndefined();
    const updated = await stripe.webhookEndpoints.update(created.id, {
      disabled: true,
      description: 'orders',
      metadata: { team: 'ops' },
    });
    expect(updated).toMatchObject({ status: 'disabled', description: 'orders', metadata: { team: 'ops' } });
    const listed = await stripe.webhookEndpoints.list({ limit: 100 });
    expect(listed.data.map((e) => e.id)).toContain(created.id);
    expect(await stripe.webhookEndpoints.del(created.id)).toMatchObject({ id: created.id, deleted: true });
    await expect(stripe.webhookEndpoints.retrieve(created.id)).rejects.toMatchObject({ statusCode: 404 });
  });

  it('bad input gets a 400 naming the parameter and creates nothing', async () => {
    const before = (await t.pool.query('SELECT count(*)::int AS n FROM webhook_endpoints')).rows[0].n;
    const cases: [string, string][] = [
      ['url=not-a-url&enabled_events[]=*', 'url'],
      ['url=ftp://example.com/hook&enabled_events[]=*', 'url'],
      ['url=https://user:pw@example.com/hook&enabled_events[]=*', 'url'],
      [`url=${encodeURIComponent(`${receiver.url}/x`)}&enabled_events[]=Not%20A%20Type`, 'enabled_events'],
      [`url=${encodeURIComponent(`${receiver.url}/x`)}`, 'enabled_events'],
      ['enabled_events[]=*', 'url'],
    ];
    for (const [form, param] of cases) {
      const res = await call(t.url, 'POST', '/v1/webhook_endpoints', { key: t.secret_key, form });
      expect([res.status, res.body.error?.type, res.body.error?.param], form).toEqual([
        400,
        'invalid_request_error',
        param,
      ]);
    }
    const roll = await call(t.url, 'POST', '/v1/webhook_endpoints/we_nope/roll_secret', {
      key: t.secret_key,
    });
    expect(roll.status).toBe(404);
    const after = (await t.pool.query('SELECT count(*)::int AS n FROM webhook_endpoints')).rows[0].n;
    expect(after).toBe(before);
  });
});

describe('deliveries', () => {
  it('delivers each event once, signed so stripe.webhooks.constructEvent accepts it, as the Events API shows it', async () => {
    await endpoint('/ok', ['payment_intent.created']);
    const ids = [await newIntent(1101), await newIntent(1102), await newIntent(1103)];
    const got = await until('three deliveries', () =>
      receiver.of('/ok').length >= 3 ? receiver.of('/ok') : null,
    );
    expect(got.map((r) => (r.event.data.object as { id: string }).id).sort()).toEqual([...ids].sort());
    for (const r of got) {
      expect(r.event.type).toBe('payment_intent.created');
      const via_api = await stripe.events.retrieve(r.event.id);
      expect(via_api).toMatchObject({ id: r.event.id, type: 'payment_intent.created', object: 'event' });
      expect(via_api.data.object).toEqual(r.event.data.object);
    }
    // Each event reached this endpoint exactly once, and its delivery is recorded as such.
    expect(new Set(got.map((r) => r.event.id)).size).toBe(got.length);
    // (The receiver answers before the dispatcher records the attempt: wait for the records.)
    const { rows } = await until('the attempts recorded', async () => {
      const r = await t.pool.query(
        `SELECT d.status, d.attempts, a.status_code FROM webhook_deliveries d
           JOIN webhook_attempts a USING (endpoint_id, event_id)
          WHERE d.event_id = ANY($1)`,
        [got.map((r) => r.event.id)],
      );
      return r.rows.length === got.length ? r : null;
    });
    expect(rows).toEqual(got.map(() => ({ status: 'succeeded', attempts: 1, status_code: 200 })));
  });

  it('during a secret roll both secrets sign, and afterwards only the new one', async () => {
    const we = await endpoint('/roll', ['payment_intent.created']);
    const old_secret = we.secret!;
    const rolled = await call(t.url, 'POST', `/v1/webhook_endpoints/${we.id}/roll_secret`, {
      key: t.secret_key,
      form: 'expires_in=3600',
    });
    expect(rolled.status).toBe(200);
    const new_secret = rolled.body.secret as string;
    expect(new_secret).not.toBe(old_secret);
    // A roll retried with its Idempotency-Key (its answer was lost) shows the same secret again.
    const once = {
      key: t.secret_key,
      form: 'expires_in=3600',
      headers: { 'Idempotency-Key': `roll-${we.id}` },
    };
    const first = await call(t.url, 'POST', `/v1/webhook_endpoints/${we.id}/roll_secret`, once);
    const retried = await call(t.url, 'POST', `/v1/webhook_endpoints/${we.id}/roll_secret`, once);
    expect(retried.body.secret).toBe(first.body.secret);
    receiver.secrets.set('/roll', [first.body.secret]);
    await newIntent(1201);
    const [during] = await until('a delivery during the roll', () =>
      receiver.of('/roll').length >= 1 ? receiver.of('/roll') : null,
    );
    expect(during!.signature.match(/v1=/g)).toHaveLength(2);
    // A receiver still on the previous secret verifies it too (the first roll's: the keyed roll
    // moved it to previous), and the original one no longer signs.
    expect(() => Stripe.webhooks.constructEvent(during!.body, during!.signature, old_secret)).toThrow();
    expect(Stripe.webhooks.constructEvent(during!.body, during!.signature, new_secret).id).toBe(
      during!.event.id,
    );
    // Rolled again with no overlap: only the newest secret signs.
    const again = await call(t.url, 'POST', `/v1/webhook_endpoints/${we.id}/roll_secret`, {
      key: t.secret_key,
      form: 'expires_in=0',
    });
    receiver.secrets.set('/roll', [again.body.secret]);
    await newIntent(1202);
    const after = await until('a delivery after the roll', () => receiver.of('/roll')[1] ?? null);
    expect(after.signature.match(/v1=/g)).toHaveLength(1);
    expect(() => Stripe.webhooks.constructEvent(after.body, after.signature, new_secret)).toThrow();
  });

  it('a failing endpoint is retried on the schedule until it answers 2xx; every attempt is recorded', async () => {
    await endpoint('/flaky', ['payment_intent.created']);
    // 500, a dropped connection, 500, then success.
    receiver.behaviour.set('/flaky', (n) => (n === 2 ? 'drop' : n < 4 ? 'fail' : 'ok'));
    await newIntent(1301);
    await until('the fourth attempt', () => ((receiver.counts.get('/flaky') ?? 0) >= 4 ? true : null));
    const { rows } = await until('the attempts recorded', async () => {
      const r = await t.pool.query(
        `SELECT a.attempt, a.status_code, a.error, a.at, d.status FROM webhook_attempts a
           JOIN webhook_deliveries d USING (endpoint_id, event_id)
           JOIN webhook_endpoints e ON e.id = a.endpoint_id
          WHERE e.url LIKE '%/flaky' ORDER BY a.attempt`,
      );
      return r.rows.length >= 4 && r.rows[0].status === 'succeeded' ? r : null;
    });
    expect(rows.map((r) => r.status_code)).toEqual([500, null, 500, 200]);
    expect(rows[1].error).toBeTruthy();
    // Each wait is at least the scheduled delay less its jitter (later ones grow).
    for (let i = 1; i < rows.length; i += 1) {
      const gap_ms = rows[i].at.getTime() - rows[i - 1].at.getTime();
      expect(gap_ms).toBeGreaterThanOrEqual(Math.floor(RETRY_DELAYS_S[i - 1]! * SCALE * 1000 * 0.9) - 5);
    }
  });

  it(`gives up after ${MAX_ATTEMPTS} attempts over the whole schedule`, async () => {
    await endpoint('/dead', ['payment_intent.created']);
    receiver.behaviour.set('/dead', () => 'fail');
    await newIntent(1401);
    const { rows } = await until(
      'the delivery to fail for good',
      async () => {
        const r = await t.pool.query(
          `SELECT d.status, d.attempts FROM webhook_deliveries d JOIN webhook_endpoints e ON e.id = d.endpoint_id
            WHERE e.url LIKE '%/dead'`,
        );
        return r.rows[0]?.status === 'failed' ? r : null;
      },
      30_000,
    );
    expect(rows).toEqual([{ status: 'failed', attempts: MAX_ATTEMPTS }]);
    expect(receiver.counts.get('/dead')).toBe(MAX_ATTEMPTS);
  });

  it('a receiver that fails, hangs and drops connections at random still gets every event', async () => {
    await endpoint('/chaos', ['payment_intent.created']);
    // A seeded sequence, so a failure can be replayed: 70 % answered, the rest split between
    // a 500, a timeout and a dropped connection. Eight attempts all failing is 0.3^8 per event.
    let seed = 20261121;
    const next = () => {
      seed = (seed * 1103515245 + 12345) % 2 ** 31;
      return seed / 2 ** 31;
    };
    receiver.behaviour.set('/chaos', () => {
      const r = next();
      return r < 0.7 ? 'ok' : r < 0.8 ? 'fail' : r < 0.9 ? 'drop' : 'hang';
    });
    const ids: string[] = [];
    for (let i = 0; i < 40; i += 1) ids.push(await newIntent(1900 + i));
    const delivered = (id: string) =>
      receiver
        .of('/chaos')
        .some((r) => r.answered === 'ok' && (r.event.data.object as { id: string }).id === id);
    await until('every event answered 2xx once', () => (ids.every(delivered) ? true : null), 60_000);
    // Retries carried the same event id: each object has exactly one event among the arrivals.
    const by_object = new Map<string, Set<string>>();
    for (const r of receiver.of('/chaos')) {
      const object = (r.event.data.object as { id: string }).id;
      by_object.set(object, (by_object.get(object) ?? new Set()).add(r.event.id));
    }
    expect([...by_object.values()].every((events) => events.size === 1)).toBe(true);
    expect(receiver.counts.get('/chaos')!).toBeGreaterThan(40); // some were attempted more than once
  });

  it('an endpoint that never answers does not hold up a healthy one', async () => {
    await endpoint('/hang', ['payment_intent.created']);
    receiver.behaviour.set('/hang', () => 'hang');
    await endpoint('/healthy', ['payment_intent.created']);
    const ids: string[] = [];
    for (let i = 0; i < 20; i += 1) ids.push(await newIntent(1500 + i));
    await until('the healthy endpoint to have all twenty', () =>
      ids.every((id) =>
        receiver.of('/healthy').some((r) => (r.event.data.object as { id: string }).id === id),
      )
        ? true
        : null,
    );
    // All twenty arrived while the hanging endpoint's first attempts were still waiting for an answer.
    const { rows } = await t.pool.query(
      `SELECT count(*)::int AS n FROM webhook_attempts a JOIN webhook_endpoints e ON e.id = a.endpoint_id
        WHERE e.url LIKE '%/hang'`,
    );
    expect(rows[0].n).toBe(0);
    expect(receiver.counts.get('/hang')).toBeGreaterThan(0);
  });
});

const BIN = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../bin/moneta.js');

/** Runs the `moneta` CLI against the test database. */
async function cli(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const { stdout, stderr } = await promisify(execFile)(process.execPath, [BIN, ...args], {
      env: { ...process.env, DATABASE_URL: t.db_url, LOG_LEVEL: 'warn' },
      timeout: 60_000,
    });
    return { code: 0, stdout, stderr };
  } catch (err) {
    const e = err as { code: number; stdout: string; stderr: string };
    return { code: e.code, stdout: e.stdout, stderr: e.stderr };
  }
}

describe('operators', () => {
  it('list an endpoint’s deliveries and send an event again through the API', async () => {
    const before = await newIntent(1701); // before the endpoint exists: never sent to it
    const we = await endpoint('/late', ['payment_intent.created']);
    const after = await newIntent(1702);
    await until(
      'the event after creation',
      () => receiver.of('/late').find((r) => (r.event.data.object as { id: string }).id === after) ?? null,
    );
    // The attempt is recorded just after the receiver answered.
    const list = await until('the delivery recorded', async () => {
      const res = await call(t.url, 'GET', `/v1/webhook_endpoints/${we.id}/deliveries?status=succeeded`, {
        key: t.secret_key,
      });
      return res.status !== 200 || res.body.data.length > 0 ? res : null;
    });
    expect(list.status).toBe(200);
    expect(list.body.data).toHaveLength(1);
    expect(list.body.data[0]).toMatchObject({
      object: 'webhook_delivery',
      status: 'succeeded',
      attempts: 1,
      last_status_code: 200,
    });
    const [event] = (await stripe.events.list({ type: 'payment_intent.created', limit: 100 })).data.filter(
      (e) => (e.data.object as { id: string }).id === before,
    );
    const res = await call(t.url, 'POST', `/v1/webhook_endpoints/${we.id}/resend`, {
      key: t.secret_key,
      form: `event=${event!.id}`,
    });
    expect(res.body).toEqual({ object: 'webhook_resend', webhook_endpoint: we.id, queued: 1 });
    const resent = await until(
      'the resent event',
      () => receiver.of('/late').find((r) => r.event.id === event!.id) ?? null,
    );
    expect((resent.event.data.object as { id: string }).id).toBe(before);
    const bad = await call(t.url, 'POST', `/v1/webhook_endpoints/${we.id}/resend`, {
      key: t.secret_key,
      form: 'since=10',
    });
    expect([bad.status, bad.body.error.param]).toEqual([400, 'until']);
    const missing = await call(t.url, 'POST', `/v1/webhook_endpoints/${we.id}/resend`, {
      key: t.secret_key,
      form: 'event=evt_nope',
    });
    expect([missing.status, missing.body.error.param]).toEqual([404, 'event']);
  });

  it('`moneta webhooks resend` sends a time range’s failed deliveries again, and is audited', async () => {
    const we = await endpoint('/outage', ['payment_intent.created']);
    receiver.behaviour.set('/outage', () => 'fail');
    const id = await newIntent(1801);
    await until(
      'the delivery to fail for good',
      async () => {
        const r = await t.pool.query(`SELECT status FROM webhook_deliveries WHERE endpoint_id = $1`, [we.id]);
        return r.rows[0]?.status === 'failed' ? true : null;
      },
      30_000,
    );
    // Failing for "three days" (scaled) disabled the endpoint, and an event says so.
    await until('the endpoint disabled', async () => {
      const e = await stripe.webhookEndpoints.retrieve(we.id);
      return e.status === 'disabled' ? true : null;
    });
    const disabled = await stripe.events.list({ type: 'webhook_endpoint.disabled', limit: 100 });
    expect(disabled.data.map((e) => (e.data.object as { id: string }).id)).toContain(we.id);
    // The receiver is back; the operator enables the endpoint and sends the failures again.
    receiver.behaviour.set('/outage', () => 'ok');
    const failures = receiver.of('/outage').length;
    await stripe.webhookEndpoints.update(we.id, { disabled: false });
    const usage = await cli(['webhooks', 'resend', '--endpoint', we.id]);
    expect(usage.code).toBe(2);
    expect(usage.stderr).toContain('--since');
    const since = new Date(Date.now() - 60_000).toISOString();
    const until_ = new Date(Date.now() + 60_000).toISOString();
    const done = await cli([
      'webhooks',
      'resend',
      '--endpoint',
      we.id,
      '--since',
      since,
      '--until',
      until_,
      '--json',
    ]);
    expect(done.code, done.stderr).toBe(0);
    expect(JSON.parse(done.stdout)).toEqual({ endpoint: we.id, queued: 1 });
    await until(
      'the resent delivery',
      () =>
        receiver
          .of('/outage')
          .slice(failures)
          .find((r) => (r.event.data.object as { id: string }).id === id) ?? null,
    );
    await until('the attempt recorded', async () => {
      const r = await t.pool.query(`SELECT status FROM webhook_deliveries WHERE endpoint_id = $1`, [we.id]);
      return r.rows[0]?.status === 'succeeded' ? true : null;
    });
    const listed = await cli(['webhooks', 'deliveries', '--endpoint', we.id, '--json']);
    expect(JSON.parse(listed.stdout).data[0]).toMatchObject({
      status: 'succeeded',
      attempts: MAX_ATTEMPTS + 1,
    });
    const { rows } = await t.pool.query(
      `SELECT actor, action, object_id FROM audit_log WHERE action = 'webhooks.resend'`,
    );
    expect(rows).toEqual([{ actor: 'cli', action: 'webhooks.resend', object_id: we.id }]);
  });
});

describe('events API', () => {
  it('lists newest first with type filters and pagination; unknown ids are 404', async () => {
    const first = await newIntent(1601);
    const second = await newIntent(1602);
    const page = await stripe.events.list({ limit: 2, type: 'payment_intent.created' });
    expect(page.data.map((e) => (e.data.object as { id: string }).id)).toEqual([second, first]);
    expect(page.has_more).toBe(true);
    const prefix = await stripe.events.list({ limit: 1, type: 'payment_intent.*' });
    expect(prefix.data[0]!.type).toBe('payment_intent.created');
    const none = await stripe.events.list({ type: 'charge.refunded' });
    expect(none.data).toEqual([]);
    await expect(stripe.events.retrieve('evt_nope')).rejects.toMatchObject({ statusCode: 404 });
    const bad = await call(t.url, 'GET', '/v1/events?type=DROP%20TABLE', { key: t.secret_key });
    expect([bad.status, bad.body.error.param]).toEqual([400, 'type']);
  });
});

describe('split roles', () => {
  it('an api process commits, a worker process delivers, woken by a notification', async () => {
    const { url: db_url, drop } = await createTestDatabase();
    const pool = createPool({
      connection_string: db_url,
      max_connections: 6,
      application_name: 'split-test',
    });
    const database = { pool, url: db_url, embedded: null, close: async () => {} };
    const log = createLogger('warn');
    const settings = { MONETA_WEBHOOK_ALLOW_PRIVATE: 'true', MONETA_RATE_LIMIT_PER_SECOND: '100000' };
    const worker = await startMoneta(testConfig(db_url, { ...settings, MONETA_ROLE: 'worker' }), {
      log,
      database,
    });
    const api = await startMoneta(testConfig(db_url, { ...settings, MONETA_ROLE: 'api' }), { log, database });
    try {
      expect(api.dispatcher).toBeNull();
      expect(worker.outbox_listener).not.toBeNull();
      const { test } = await createMerchant(pool, { name: 'Split' });
      const we = await call(api.url, 'POST', '/v1/webhook_endpoints', {
        key: test.secret_key,
        form: `url=${encodeURIComponent(`${receiver.url}/split`)}&enabled_events[]=payment_intent.created`,
      });
      receiver.secrets.set('/split', [we.body.secret]);
      const before = worker.outbox_listener!.received;
      const pi = await call(api.url, 'POST', '/v1/payment_intents', {
        key: test.secret_key,
        form: 'amount=1900&currency=usd',
      });
      const got = await until('the delivery from the worker', () => receiver.of('/split')[0] ?? null);
      expect((got.event.data.object as { id: string }).id).toBe(pi.body.id);
      expect(worker.outbox_listener!.received).toBeGreaterThan(before);
    } finally {
      await api.stop();
      await worker.stop();
      await pool.end();
      await drop();
    }
  });
});

describe('limits', () => {
  it('text with a NUL character is refused naming the parameter; at most 16 endpoints per mode', async () => {
    const nul = await call(t.url, 'POST', '/v1/webhook_endpoints', {
      key: t.secret_key,
      form: `url=${encodeURIComponent(`${receiver.url}/nul`)}&enabled_events[]=*&description=a%00b`,
    });
    expect([nul.status, nul.body.error.param]).toEqual([400, 'description']);
    const { rows } = await t.pool.query(
      'SELECT count(*)::int AS n FROM webhook_endpoints WHERE merchant_id = $1 AND livemode = false AND deleted_at IS NULL',
      [t.merchant_id],
    );
    for (let i = rows[0].n; i < 16; i += 1) await endpoint(`/many/${i}`, ['charge.refunded']);
    const over = await call(t.url, 'POST', '/v1/webhook_endpoints', {
      key: t.secret_key,
      form: `url=${encodeURIComponent(`${receiver.url}/one-too-many`)}&enabled_events[]=*`,
    });
    expect([over.status, over.body.error.code]).toEqual([400, 'webhook_endpoints_limit']);
  });

  it('creations at once never pass the limit together', async () => {
    const { merchant, test } = await createMerchant(t.pool, { name: 'Racing endpoints' });
    const create = (i: number) =>
      call(t.url, 'POST', '/v1/webhook_endpoints', {
        key: test.secret_key,
        form: `url=${encodeURIComponent(`${receiver.url}/race/${i}`)}&enabled_events[]=*`,
      });
    for (let i = 0; i < 14; i += 1) expect((await create(i)).status).toBe(200);
    const racing = await Promise.all(Array.from({ length: 10 }, (_, i) => create(100 + i)));
    expect(racing.filter((r) => r.status === 200)).toHaveLength(2);
    expect(racing.filter((r) => r.status === 400).map((r) => r.body.error.code)).toEqual(
      Array(8).fill('webhook_endpoints_limit'),
    );
    const { rows } = await t.pool.query(
      'SELECT count(*)::int AS n FROM webhook_endpoints WHERE merchant_id = $1 AND deleted_at IS NULL',
      [merchant.id],
    );
    expect(rows[0].n).toBe(16);
  });
});

describe('SSRF guard', () => {
  it('refuses loopback, private and link-local endpoint URLs unless the operator allows them', async () => {
    const strict = await startTestMoneta();
    try {
      for (const url of [
        'http://127.0.0.1:8080/hook',
        'http://localhost/hook',
        'http://10.1.2.3/hook',
        'http://192.168.0.10/hook',
        'http://169.254.169.254/latest/meta-data',
        'http://[::1]/hook',
        'http://[::ffff:127.0.0.1]/hook',
        'http://[::127.0.0.1]/hook',
        'http://[fd00::1]/hook',
        'http://[fe80::1]/hook',
        'http://100.64.1.1/hook',
      ]) {
        const res = await call(strict.url, 'POST', '/v1/webhook_endpoints', {
          key: strict.secret_key,
          form: `url=${encodeURIComponent(url)}&enabled_events[]=*`,
        });
        expect([res.status, res.body.error?.param], url).toEqual([400, 'url']);
      }
      for (const url of [
        'https://hooks.example.com/stripe',
        'http://93.184.216.34/hook',
        'https://[2606:4700::1111]/hook',
      ]) {
        const ok = await call(strict.url, 'POST', '/v1/webhook_endpoints', {
          key: strict.secret_key,
          form: `url=${encodeURIComponent(url)}&enabled_events[]=*`,
        });
        expect(ok.status, url).toBe(200);
      }
    } finally {
      await strict.close();
    }
  });
});
