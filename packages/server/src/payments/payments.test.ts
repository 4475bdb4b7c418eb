import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { startAcquirer } from '@moneta/acquirer-sim';
import Stripe from 'stripe';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestMoneta, stripeClient, type TestMoneta } from '../../test/helpers.ts';
import { createPool, withTransaction } from '../db/pool.ts';
import { verifyLedger } from '../ledger/index.ts';
import { lockForRecord } from './attempts.ts';

let t: TestMoneta;
let acquirer: Awaited<ReturnType<typeof startAcquirer>>;
let stripe: Stripe;

beforeAll(async () => {
  acquirer = await startAcquirer({
    name: 'acme',
    port: 0,
    data_dir: await mkdtemp(path.join(tmpdir(), 'moneta-acq-')),
    api_key: 'sim_test_key',
  });
  t = await startTestMoneta({
    MONETA_ACQUIRERS: `acme=${acquirer.url}`,
    MONETA_ACQUIRER_TIMEOUT_MS: '1000',
    MONETA_RATE_LIMIT_PER_SECOND: '100000',
    MONETA_RATE_LIMIT_BURST: '100000',
  });
  stripe = stripeClient(t);
});
afterAll(async () => {
  await t?.close();
  await acquirer?.close();
});

async function events(object_id: string): Promise<string[]> {
  const { rows } = await t.pool.query('SELECT type FROM events WHERE object_id = $1 ORDER BY seq', [
    object_id,
  ]);
  return rows.map((r) => r.type as string);
}

describe('payments through the official stripe package', () => {
  it('automatic capture: one call authorizes and captures, books the ledger and records the events', async () => {
    const pi = await stripe.paymentIntents.create({
      amount: 2000,
      currency: 'usd',
      payment_method: 'pm_card_visa',
      confirm: true,
    });
    expect(pi.status).toBe('succeeded');
    expect(pi.amount_received).toBe(2000);
    expect(typeof pi.latest_charge).toBe('string');
    const charge = await stripe.charges.retrieve(pi.latest_charge as string);
    expect(charge).toMatchObject({ amount: 2000, amount_captured: 2000, captured: true, paid: true });
    expect(charge.outcome).toMatchObject({ network_status: 'approved_by_network', type: 'authorized' });
    expect(await events(pi.id)).toEqual(['payment_intent.created', 'payment_intent.succeeded']);
    const records = acquirer.records().authorizations.filter((a) => a.amount === 2000);
    expect(records.some((a) => a.captured_amount === 2000)).toBe(true);
    expect(JSON.stringify(await verifyLedger(t.pool))).toBe('[]');
  });

  it('manual capture with a partial capture releases the rest; cancel voids an authorization', async () => {
    const pi = await stripe.paymentIntents.create({
      amount: 5000,
      currency: 'usd',
      payment_method: 'pm_card_mastercard',
      capture_method: 'manual',
      confirm: true,
    });
    expect(pi.status).toBe('requires_capture');
    expect(pi.amount_capturable).toBe(5000);
    const captured = await stripe.paymentIntents.capture(pi.id, { amount_to_capture: 3000 });
    expect(captured).toMatchObject({ status: 'succeeded', amount_received: 3000, amount_capturable: 0 });

    const other = await stripe.paymentIntents.create({
      amount: 700,
      currency: 'eur',
      payment_method: 'pm_card_visa',
      capture_method: 'manual',
      confirm: true,
    });
    const canceled = await stripe.paymentIntents.cancel(other.id, {
      cancellation_reason: 'requested_by_customer',
    });
    expect(canceled).toMatchObject({ status: 'canceled', cancellation_reason: 'requested_by_customer' });
    expect(await events(other.id)).toEqual([
      'payment_intent.created',
      'payment_intent.amount_capturable_updated',
      'payment_intent.canceled',
    ]);
    expect(JSON.stringify(await verifyLedger(t.pool))).toBe('[]');
  });

  it('a card number passed as payment_method is refused without being echoed or stored', async () => {
    const err = await stripe.paymentIntents
      .create({ amount: 1234, currency: 'usd', payment_method: '4242424242424242', confirm: true })
      .then(
        () => null,
        (e: unknown) => e as Stripe.errors.StripeError,
      );
    expect(err).toMatchObject({ statusCode: 400, param: 'payment_method' });
    expect(JSON.stringify(err?.raw)).not.toContain('4242424242424242');
    const { rows } = await t.pool.query(
      "SELECT count(*)::int AS n FROM payment_intents WHERE payment_method_id LIKE '4242%'",
    );
    expect(rows[0].n).toBe(0);
  });

  it('each decline test card gives a StripeCardError with the right code and decline_code', async () => {
    const cases: [string, string, string][] = [
      ['4000000000000002', 'card_declined', 'generic_decline'],
      ['4000000000009995', 'card_declined', 'insufficient_funds'],
      ['4000000000000127', 'incorrect_cvc', 'incorrect_cvc'],
      ['4000000000000119', 'processing_error', 'processing_error'],
    ];
    for (const [number, code, decline_code] of cases) {
      const pm = await stripe.paymentMethods.create({
        type: 'card',
        card: { number, exp_month: 12, exp_year: 2034, cvc: '123' },
      });
      const err = await stripe.paymentIntents
        .create({ amount: 1000, currency: 'usd', payment_method: pm.id, confirm: true })
        .then(
          () => null,
          (e: unknown) => e,
        );
      expect(err).toBeInstanceOf(Stripe.errors.StripeCardError);
      expect({
        code: (err as Stripe.errors.StripeCardError).code,
        decline: (err as Stripe.errors.StripeCardError).decline_code,
      }).toEqual({
        code,
        decline: decline_code,
      });
      const intent = (err as Stripe.errors.StripeCardError).payment_intent!;
      expect(intent.status).toBe('requires_payment_method');
      expect(intent.last_payment_error?.decline_code).toBe(decline_code);
    }
  });

  it('the 3-D Secure card asks for authentication', async () => {
    const pm = await stripe.paymentMethods.create({
      type: 'card',
      card: { number: '4000002500003155', exp_month: 12, exp_year: 2034 },
    });
    const pi = await stripe.paymentIntents.create({
      amount: 1000,
      currency: 'usd',
      payment_method: pm.id,
      confirm: true,
    });
    expect(pi.status).toBe('requires_action');
  });

  it('partial and full refunds up to the captured amount, never beyond', async () => {
    const pi = await stripe.paymentIntents.create({
      amount: 10_000,
      currency: 'usd',
      payment_method: 'pm_card_visa',
      confirm: true,
    });
    const r1 = await stripe.refunds.create({ payment_intent: pi.id, amount: 2500 });
    expect(r1).toMatchObject({ status: 'succeeded', amount: 2500 });
    const tooMuch = await stripe.refunds.create({ payment_intent: pi.id, amount: 8000 }).then(
      () => null,
      (e: unknown) => e,
    );
    expect((tooMuch as Stripe.errors.StripeError).param).toBe('amount');
    const rest = await stripe.refunds.create({ payment_intent: pi.id });
    expect(rest.amount).toBe(7500);
    const charge = await stripe.charges.retrieve(pi.latest_charge as string);
    expect(charge).toMatchObject({ amount_refunded: 10_000, refunded: true });
    const list = await stripe.refunds.list({ payment_intent: pi.id });
    expect(list.data.map((r) => r.amount)).toEqual([7500, 2500]);
    expect(JSON.stringify(await verifyLedger(t.pool))).toBe('[]');
  });

  it('100 concurrent partial refunds never refund more than was captured', async () => {
    const pi = await stripe.paymentIntents.create({
      amount: 5000,
      currency: 'usd',
      payment_method: 'pm_card_visa',
      confirm: true,
    });
    const results = await Promise.allSettled(
      Array.from({ length: 100 }, () => stripe.refunds.create({ payment_intent: pi.id, amount: 70 })),
    );
    const ok = results.filter((r) => r.status === 'fulfilled').length;
    expect(ok).toBe(Math.floor(5000 / 70));
    const { rows } = await t.pool.query(
      "SELECT coalesce(sum(amount), 0)::int AS refunded FROM refunds WHERE payment_intent_id = $1 AND status = 'succeeded'",
      [pi.id],
    );
    expect(rows[0].refunded).toBe(ok * 70);
    const auth = acquirer
      .records()
      .authorizations.find((a) => a.captured_amount === 5000 && a.refunded_amount === ok * 70);
    expect(auth).toBeDefined();
    expect(JSON.stringify(await verifyLedger(t.pool))).toBe('[]');
  });

  it('payments arriving together commit in shared batches, each exactly as it would alone', async () => {
    const metric = async (name: string) => {
      const text = await (await fetch(`${t.url}/metrics`)).text();
      return Number(new RegExp(`^${name} (\\S+)$`, 'm').exec(text)?.[1] ?? 0);
    };
    const phases_before = await metric('moneta_phase_batch_phases_sum');
    const batches_before = await metric('moneta_phase_batch_phases_count');
    const cards = ['pm_card_visa', 'pm_card_mastercard', 'pm_card_chargeDeclined', 'pm_card_amex'];
    const created = await Promise.all(
      Array.from({ length: 24 }, (_, i) =>
        stripe.paymentIntents
          .create(
            {
              amount: 3_100 + i,
              currency: 'usd',
              payment_method: cards[i % cards.length]!,
              capture_method: i % 3 === 0 ? 'manual' : 'automatic',
              confirm: true,
            },
            { idempotencyKey: `together-${Date.now()}-${i}` },
          )
          .catch((err: Stripe.errors.StripeError) => err),
      ),
    );
    const declined = created.filter((c) => c instanceof Stripe.errors.StripeCardError);
    const intents = created.filter((c): c is Stripe.Response<Stripe.PaymentIntent> => !(c instanceof Error));
    expect(declined).toHaveLength(6);
    expect(intents).toHaveLength(18);
    for (const pi of intents) {
      expect(pi.status).toBe(pi.capture_method === 'manual' ? 'requires_capture' : 'succeeded');
    }
    // Their manual captures, together too.
    const manual = intents.filter((pi) => pi.capture_method === 'manual');
    const captured = await Promise.all(manual.map((pi) => stripe.paymentIntents.capture(pi.id)));
    expect(captured.map((pi) => pi.status)).toEqual(manual.map(() => 'succeeded'));
    // Batches of more than one phase formed, and none had to be run again phase by phase.
    const phases = (await metric('moneta_phase_batch_phases_sum')) - phases_before;
    const batches = (await metric('moneta_phase_batch_phases_count')) - batches_before;
    expect(batches).toBeGreaterThan(0);
    expect(phases).toBeGreaterThan(batches);
    expect(await metric('moneta_phase_batches_failed_total')).toBe(0);
    // Every row each phase wrote is there: attempts settled, card checks, answers stored.
    const ids = intents.map((pi) => pi.id);
    const { rows: attempts } = await t.pool.query(
      `SELECT a.status, count(*)::int AS n FROM payment_attempts a
        WHERE a.payment_intent_id = ANY($1) GROUP BY a.status`,
      [ids],
    );
    expect(attempts).toEqual([{ status: 'succeeded', n: 18 + manual.length }]);
    const { rows: stored } = await t.pool.query(
      `SELECT count(*)::int AS n FROM payment_intents
        WHERE id = ANY($1) AND status = 'succeeded' AND amount_received = amount AND amount_capturable = 0
          AND authorization_id IS NOT NULL AND latest_charge IS NOT NULL`,
      [ids],
    );
    expect(stored[0].n).toBe(18);
    const { rows: checks } = await t.pool.query(
      `SELECT count(*)::int AS n FROM payment_methods p JOIN payment_intents i ON i.payment_method_id = p.id
        WHERE i.id = ANY($1) AND p.cvc_check = 'pass'`,
      [ids],
    );
    expect(checks[0].n).toBe(18);
    const { rows: keys } = await t.pool.query(
      `SELECT count(*)::int AS n FROM idempotency_keys
        WHERE idempotency_key LIKE 'together-%' AND response_status IS NOT NULL AND locked_by IS NULL`,
    );
    expect(keys[0].n).toBe(24);
    for (const pi of intents.filter((p) => p.capture_method === 'automatic')) {
      expect(await events(pi.id)).toEqual(['payment_intent.created', 'payment_intent.succeeded']);
    }
    expect(JSON.stringify(await verifyLedger(t.pool))).toBe('[]');
  });

  it('an outcome recorded while a booking waited for the intent lock is seen: nothing is booked twice', async () => {
    const pi = await stripe.paymentIntents.create({
      amount: 4_321,
      currency: 'usd',
      payment_method: 'pm_card_visa',
      confirm: true,
    });
    const { rows } = await t.pool.query('SELECT id FROM payment_attempts WHERE payment_intent_id = $1', [
      pi.id,
    ]);
    const attempt_id = rows[0].id as string;
    // As a booking finds it: the intent processing, its attempt not settled yet.
    await t.pool.query("UPDATE payment_attempts SET status = 'started' WHERE id = $1", [attempt_id]);
    await t.pool.query("UPDATE payment_intents SET status = 'processing' WHERE id = $1", [pi.id]);
    // Another recorder (the janitor, say) holds the intent's lock and settles the attempt.
    const other = await t.pool.connect();
    const pool = createPool({
      connection_string: t.db_url,
      max_connections: 1,
      application_name: 'lock-wait',
    });
    try {
      await other.query('BEGIN');
      await other.query('SELECT 1 FROM payment_intents WHERE id = $1 FOR UPDATE', [pi.id]);
      await other.query("UPDATE payment_attempts SET status = 'succeeded' WHERE id = $1", [attempt_id]);
      await other.query("UPDATE payment_intents SET status = 'succeeded' WHERE id = $1", [pi.id]);
      const booking = withTransaction(pool, (tx) =>
        lockForRecord(tx, { merchant_id: t.merchant_id, livemode: false }, pi.id, attempt_id),
      );
      // Commit only once the booking waits for the lock.
      for (let i = 0; i < 100; i += 1) {
        const waiting = await t.pool.query(
          "SELECT count(*)::int AS n FROM pg_stat_activity WHERE application_name = 'lock-wait' AND wait_event_type = 'Lock'",
        );
        if (waiting.rows[0].n > 0) break;
        await new Promise((r) => setTimeout(r, 20));
      }
      await other.query('COMMIT');
      const { intent, settled } = await booking;
      expect(intent.status).toBe('succeeded');
      expect(settled).toBe(true);
    } finally {
      other.release();
      await pool.end();
    }
  });

  it('idempotent retries and auto-pagination', async () => {
    const key = `pi-${Date.now()}`;
    const a = await stripe.paymentIntents.create(
      { amount: 1234, currency: 'usd', payment_method: 'pm_card_visa', confirm: true },
      { idempotencyKey: key },
    );
    const b = await stripe.paymentIntents.create(
      { amount: 1234, currency: 'usd', payment_method: 'pm_card_visa', confirm: true },
      { idempotencyKey: key },
    );
    expect(b.id).toBe(a.id);
    expect(acquirer.records().authorizations.filter((x) => x.amount === 1234)).toHaveLength(1);
    const ids: string[] = [];
    for await (const pi of stripe.paymentIntents.list({ limit: 3 })) ids.push(pi.id);
    const { rows } = await t.pool.query(
      'SELECT count(*)::int AS n FROM payment_intents WHERE merchant_id = $1',
      [t.merchant_id],
    );
    expect(ids).toHaveLength(rows[0].n);
    expect(new Set(ids).size).toBe(ids.length);
  });
});
