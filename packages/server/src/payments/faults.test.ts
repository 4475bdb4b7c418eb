import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { startAcquirer } from '@moneta/acquirer-sim';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { call, startTestMoneta, type TestMoneta } from '../../test/helpers.ts';
import { withTransaction } from '../db/pool.ts';
import { verifyLedger } from '../ledger/index.ts';

/**
 * Faults injected at the acquirer simulator, one operation at a time: errors (not carried
 * out), timeouts (carried out, answered too late), lost responses (carried out, connection
 * dropped) and outages. After Moneta and its janitor are done, every intent is in the state
 * the acquirer's records justify, the acquirer holds at most one authorization and capture
 * per intent, and the ledger verifies. Time is scaled down by backdating attempts: the
 * janitor's "old enough to have been in flight" bound is two minutes.
 */
let t: TestMoneta;
let acquirer: Awaited<ReturnType<typeof startAcquirer>>;

beforeAll(async () => {
  acquirer = await startAcquirer({
    name: 'acme',
    port: 0,
    data_dir: await mkdtemp(path.join(tmpdir(), 'moneta-acq-faults-')),
  });
  t = await startTestMoneta({
    MONETA_ACQUIRERS: `acme=${acquirer.url}`,
    MONETA_ACQUIRER_TIMEOUT_MS: '500',
    MONETA_RATE_LIMIT_PER_SECOND: '100000',
    MONETA_RATE_LIMIT_BURST: '100000',
  });
});
afterAll(async () => {
  await t?.close();
  await acquirer?.close();
});
beforeEach(() => acquirer.setFaults({}));

type Op = 'authorize' | 'capture' | 'refund';
const fault = (op: Op, f: Record<string, number>) => acquirer.setFaults({ operations: { [op]: f } });

const pay = (form: string, key?: string) =>
  call(t.url, 'POST', '/v1/payment_intents', {
    key: t.secret_key,
    form,
    headers: key ? { 'Idempotency-Key': key } : {},
  });

/** The janitor's turn, after the attempts' in-flight window has passed. */
async function janitor(): Promise<void> {
  await t.pool.query(
    "UPDATE payment_attempts SET created_at = created_at - interval '10 minutes', next_inquiry_at = now() - interval '1 second' WHERE status IN ('started', 'unknown')",
  );
  for (let i = 0; i < 3; i += 1) await t.moneta.janitor!.run();
}

async function intent(id: string) {
  return (await call(t.url, 'GET', `/v1/payment_intents/${id}`, { key: t.secret_key })).body;
}

/** Moneta's state agrees with the acquirer's records, and the ledger verifies. */
async function agree(id: string, amount: number): Promise<void> {
  const pi = await intent(id);
  const at_acquirer = acquirer.records().authorizations.filter((a) => a.amount === amount);
  expect(at_acquirer.length).toBeLessThanOrEqual(1);
  const auth = at_acquirer[0];
  if (pi.status === 'succeeded') expect(auth?.captured_amount).toBe(pi.amount_received);
  if (pi.status === 'requires_capture')
    expect(auth && auth.status === 'approved' && auth.captured_amount === 0).toBe(true);
  if (pi.status === 'requires_payment_method') expect(auth?.status !== 'approved').toBe(true);
  expect(['succeeded', 'requires_capture', 'requires_payment_method']).toContain(pi.status);
  expect(JSON.stringify(await verifyLedger(t.pool))).toBe('[]');
}

describe('an acquirer without sales', () => {
  it('an automatic capture approved uncaptured is captured by a second call, as a manual one', async () => {
    // Named as the merchant's default acquirer, in a Moneta of its own.
    const plain = await startAcquirer({
      name: 'acme',
      port: 0,
      sales: false,
      data_dir: await mkdtemp(path.join(tmpdir(), 'moneta-acq-plain-')),
    });
    const other = await startTestMoneta({ MONETA_ACQUIRERS: `acme=${plain.url}` });
    try {
      const res = await call(other.url, 'POST', '/v1/payment_intents', {
        key: other.secret_key,
        form: 'amount=4321&currency=usd&payment_method=pm_card_visa&confirm=true',
      });
      expect(res.body).toMatchObject({ status: 'succeeded', amount_received: 4321 });
      const [auth] = plain.records().authorizations;
      expect(auth).toMatchObject({ status: 'approved', captured_amount: 4321 });
      // Two calls: the authorization, then a capture under its own reference.
      expect(auth!.captures).toHaveLength(1);
      expect(auth!.captures[0]!.reference).not.toBe(auth!.reference);
      const events = await other.pool.query(
        'SELECT type FROM events WHERE object_id = $1 OR type LIKE $2 ORDER BY seq',
        [res.body.id, 'charge.%'],
      );
      // The last two commit together (in no set order between the two objects).
      expect(events.rows.map((r) => r.type).sort()).toEqual([
        'charge.captured',
        'payment_intent.created',
        'payment_intent.succeeded',
      ]);
      expect(JSON.stringify(await verifyLedger(other.pool))).toBe('[]');
    } finally {
      await other.close();
      await plain.close();
    }
  });
});

describe('an acquirer without sales, and the janitor', () => {
  it('settles an authorization the request could not, and makes the capture the request owed in the same run', async () => {
    const plain = await startAcquirer({
      name: 'acme',
      port: 0,
      sales: false,
      data_dir: await mkdtemp(path.join(tmpdir(), 'moneta-acq-plain-')),
    });
    const other = await startTestMoneta({
      MONETA_ACQUIRERS: `acme=${plain.url}`,
      MONETA_ACQUIRER_TIMEOUT_MS: '500',
    });
    try {
      // The approval is lost on the way back, and the inquiry that would find it fails too.
      plain.setFaults({ operations: { authorize: { lost_response_rate: 1 }, inquire: { error_rate: 1 } } });
      const res = await call(other.url, 'POST', '/v1/payment_intents', {
        key: other.secret_key,
        form: 'amount=4322&currency=usd&payment_method=pm_card_visa&confirm=true',
      });
      expect(res.body.status).toBe('processing');
      plain.setFaults({});
      await other.pool.query(
        "UPDATE payment_attempts SET created_at = created_at - interval '10 minutes', next_inquiry_at = now() WHERE status IN ('started', 'unknown')",
      );
      // One run: the authorization found approved and booked, then its capture made at once.
      expect((await other.moneta.janitor!.run()).settled).toBe(1);
      const pi = await call(other.url, 'GET', `/v1/payment_intents/${res.body.id}`, {
        key: other.secret_key,
      });
      expect(pi.body).toMatchObject({ status: 'succeeded', amount_received: 4322 });
      const [auth] = plain.records().authorizations;
      expect(auth).toMatchObject({ status: 'approved', captured_amount: 4322 });
      expect(auth!.captures).toHaveLength(1);
      const attempts = await other.pool.query(
        'SELECT kind, status FROM payment_attempts WHERE payment_intent_id = $1 ORDER BY created_at',
        [res.body.id],
      );
      expect(attempts.rows).toEqual([
        { kind: 'authorize', status: 'succeeded' },
        { kind: 'capture', status: 'succeeded' },
      ]);
      expect(JSON.stringify(await verifyLedger(other.pool))).toBe('[]');
    } finally {
      await other.close();
      await plain.close();
    }
  });
});

describe('acquirer faults', () => {
  it('a lost authorization response is settled at once by inquiry: one authorization, one capture', async () => {
    fault('authorize', { lost_response_rate: 1 });
    const res = await pay('amount=3101&currency=usd&payment_method=pm_card_visa&confirm=true');
    expect(res.body.status).toBe('succeeded');
    await agree(res.body.id, 3101);
  });

  it('an authorization that timed out (carried out, answered late) is settled by inquiry', async () => {
    fault('authorize', { timeout_rate: 1, hang_ms: 2000 });
    const res = await pay('amount=3102&currency=usd&payment_method=pm_card_visa&confirm=true');
    expect(res.body.status).toBe('succeeded');
    await agree(res.body.id, 3102);
  });

  it('an authorization the acquirer never carried out (5xx) stays unknown until the janitor proves it absent', async () => {
    fault('authorize', { error_rate: 1 });
    const form = 'amount=3103&currency=usd&payment_method=pm_card_visa&confirm=true';
    const res = await pay(form, 'unknown-then-settled');
    expect(res.body.status).toBe('processing');
    // A retry meanwhile asks the acquirer again; still unknown, it answers processing again
    // and stores nothing.
    const during = await pay(form, 'unknown-then-settled');
    expect([during.status, during.body.status]).toEqual([200, 'processing']);
    acquirer.setFaults({});
    await janitor();
    const pi = await intent(res.body.id);
    expect(pi.status).toBe('requires_payment_method');
    expect(pi.last_payment_error.code).toBe('processing_error');
    // The merchant hears of it as of a failure the request saw itself.
    const failed = await t.pool.query(
      "SELECT data FROM events WHERE object_id = $1 AND type = 'payment_intent.payment_failed'",
      [res.body.id],
    );
    expect(failed.rows).toHaveLength(1);
    expect(failed.rows[0].data.object).toMatchObject({ status: 'requires_payment_method' });
    // After the janitor, the retry gets the final answer, and every later retry the same bytes.
    const after = await pay(form, 'unknown-then-settled');
    expect(after.status).toBe(402);
    expect(after.body.error.payment_intent.status).toBe('requires_payment_method');
    expect((await pay(form, 'unknown-then-settled')).text).toBe(after.text);
    await agree(res.body.id, 3103);
  });

  it('during an outage the payment waits; the janitor settles it afterwards', async () => {
    acquirer.setFaults({ outage_until: new Date(Date.now() + 60_000).toISOString() });
    const res = await pay('amount=3104&currency=usd&payment_method=pm_card_visa&confirm=true');
    expect(res.body.status).toBe('processing');
    expect(
      (await t.pool.query('SELECT status FROM payment_attempts WHERE payment_intent_id = $1', [res.body.id]))
        .rows,
    ).toEqual([{ status: 'unknown' }]);
    acquirer.setFaults({});
    await janitor();
    await agree(res.body.id, 3104);
  });

  it('a capture that failed with a 5xx is captured by the janitor with the same reference', async () => {
    const res = await pay(
      'amount=3105&currency=usd&payment_method=pm_card_visa&confirm=true&capture_method=manual',
    );
    expect(res.body.status).toBe('requires_capture');
    fault('capture', { error_rate: 1 });
    const captured = await call(t.url, 'POST', `/v1/payment_intents/${res.body.id}/capture`, {
      key: t.secret_key,
      form: '',
    });
    expect(captured.body.status).toBe('processing');
    // The acquirer answers the janitor's capture slowly (within this Moneta's 500 ms timeout);
    // meanwhile the intent is not locked.
    acquirer.setFaults({ operations: { capture: { latency_ms: { min: 350, max: 350 } } } });
    const settling = janitor();
    await new Promise((r) => setTimeout(r, 200));
    const probe = await t.pool.query(
      'SELECT pid, wait_event_type, state FROM pg_stat_activity WHERE datname = current_database() AND state = $1',
      ['idle in transaction'],
    );
    expect(probe.rows).toEqual([]);
    await withTransaction(t.pool, (tx) =>
      tx.query('SELECT 1 FROM payment_intents WHERE id = $1 FOR UPDATE NOWAIT', [res.body.id]),
    );
    await settling;
    expect((await intent(res.body.id)).status).toBe('succeeded');
    await agree(res.body.id, 3105);
  });

  it('lost capture and refund responses are settled by inquiry; refunds never exceed the capture', async () => {
    const res = await pay(
      'amount=3106&currency=usd&payment_method=pm_card_visa&confirm=true&capture_method=manual',
    );
    fault('capture', { lost_response_rate: 1 });
    const captured = await call(t.url, 'POST', `/v1/payment_intents/${res.body.id}/capture`, {
      key: t.secret_key,
      form: '',
    });
    expect(captured.body.status).toBe('succeeded');
    fault('refund', { lost_response_rate: 1 });
    const refund = await call(t.url, 'POST', '/v1/refunds', {
      key: t.secret_key,
      form: `payment_intent=${res.body.id}&amount=1000`,
    });
    expect(refund.body.status).toBe('succeeded');
    const auth = acquirer.records().authorizations.find((a) => a.amount === 3106)!;
    expect(auth.refunded_amount).toBe(1000);
    await agree(res.body.id, 3106);
  });

  it('an idempotent retry after a lost response gets the same answer and authorizes nothing twice', async () => {
    fault('authorize', { lost_response_rate: 1 });
    const first = await pay(
      'amount=3107&currency=usd&payment_method=pm_card_visa&confirm=true',
      'retry-after-loss',
    );
    acquirer.setFaults({});
    const again = await pay(
      'amount=3107&currency=usd&payment_method=pm_card_visa&confirm=true',
      'retry-after-loss',
    );
    expect(again.text).toBe(first.text);
    await agree(first.body.id, 3107);
  });
});

describe('random faults', () => {
  it('many payments under random faults end as the acquirer recorded them, item by item', async () => {
    const rate = 0.2;
    const each = { error_rate: rate / 2, timeout_rate: rate / 2, lost_response_rate: rate, hang_ms: 1500 };
    acquirer.setFaults({ operations: { authorize: each, capture: each, refund: each } });
    const ids: string[] = [];
    await Promise.all(
      Array.from({ length: 4 }, async (_, worker) => {
        for (let i = 0; i < 10; i += 1) {
          const amount = 5000 + worker * 100 + i;
          const manual = i % 3 === 0;
          const res = await pay(
            `amount=${amount}&currency=usd&payment_method=pm_card_visa&confirm=true${manual ? '&capture_method=manual' : ''}`,
            `random-${worker}-${i}`,
          );
          if (!res.body.id) continue;
          ids.push(res.body.id);
          if (manual && res.body.status === 'requires_capture') {
            await call(t.url, 'POST', `/v1/payment_intents/${res.body.id}/capture`, {
              key: t.secret_key,
              form: '',
            });
          }
          if (i % 2 === 0) {
            await call(t.url, 'POST', '/v1/refunds', {
              key: t.secret_key,
              form: `payment_intent=${res.body.id}&amount=1000`,
            });
          }
        }
      }),
    );
    acquirer.setFaults({});
    await janitor();
    await janitor();
    expect(ids.length).toBeGreaterThan(30);
    const byReference = new Map<
      string,
      { captured_amount: number; refunded_amount: number; status: string }
    >();
    for (const a of acquirer.records().authorizations) byReference.set(a.reference, a);
    for (const id of ids) {
      const pi = await intent(id);
      const { rows: attempts } = await t.pool.query(
        "SELECT id, status FROM payment_attempts WHERE payment_intent_id = $1 AND kind = 'authorize'",
        [id],
      );
      const approved = attempts.map((a) => byReference.get(a.id)).filter((a) => a?.status === 'approved');
      // One approved authorization at most per intent, and Moneta's amounts are the acquirer's.
      expect(approved.length, id).toBeLessThanOrEqual(1);
      const auth = approved[0];
      const { rows } = await t.pool.query(
        "SELECT coalesce(sum(amount), 0)::int AS refunded FROM refunds WHERE payment_intent_id = $1 AND status = 'succeeded'",
        [id],
      );
      if (pi.status === 'succeeded') {
        expect(auth?.captured_amount, id).toBe(pi.amount_received);
        expect(auth?.refunded_amount, id).toBe(rows[0].refunded);
      } else {
        expect(['requires_capture', 'requires_payment_method'], `${id} ${pi.status}`).toContain(pi.status);
        expect(auth?.captured_amount ?? 0, id).toBe(0);
      }
    }
    const unresolved = await t.pool.query(
      "SELECT count(*)::int AS n FROM payment_attempts WHERE status IN ('started', 'unknown')",
    );
    expect(unresolved.rows[0].n).toBe(0);
    expect(JSON.stringify(await verifyLedger(t.pool))).toBe('[]');
  });
});
