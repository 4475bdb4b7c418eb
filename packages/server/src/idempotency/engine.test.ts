import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase } from '../../test/helpers.ts';
import { migrate } from '../db/migrate.ts';
import { createPool, type Pool } from '../db/pool.ts';
import { invalidRequest, type MonetaError } from '../lib/errors.ts';
import { createMerchant } from '../merchants/index.ts';
import { createLogger } from '../ops/logger.ts';
import { IdempotencyEngine } from './engine.ts';
import { type IdempotentOperation, jsonResponse, type RequestScope } from './types.ts';

/**
 * A two-phase operation shaped like a payment: record an attempt, make a foreign call,
 * record the outcome. The "acquirer" here is a counter in this process standing in for a
 * remote party (the acquirer simulator arrives with the payments issue); it deduplicates
 * by the attempt id, as a real acquirer does with our idempotency key.
 */
interface Acquirer {
  calls: number;
  charged: Set<string>;
  /** When set, the next call hangs forever: the process "dies" between phases. */
  hang_next: boolean;
}

function chargeOperation(acquirer: Acquirer): IdempotentOperation<{ amount: number }> {
  return {
    name: 'test.charge',
    persist_params: true,
    steps: {
      started: (ctx) =>
        ctx.atomicPhase(async (tx) => {
          const attempt_id = randomUUID();
          await tx.query('INSERT INTO test_attempts (id, amount, status) VALUES ($1, $2, $3)', [
            attempt_id,
            ctx.params.amount,
            'started',
          ]);
          return { recovery_point: 'attempt_created', state: { attempt_id } };
        }),
      attempt_created: async (ctx) => {
        const attempt_id = ctx.state.attempt_id as string;
        acquirer.calls += 1;
        if (acquirer.hang_next) {
          acquirer.hang_next = false;
          await new Promise(() => {}); // never returns: simulates a crash mid-request
        }
        acquirer.charged.add(attempt_id);
        await ctx.atomicPhase(async (tx) => {
          await tx.query("UPDATE test_attempts SET status = 'succeeded' WHERE id = $1", [attempt_id]);
          return jsonResponse(200, { attempt_id, amount: ctx.params.amount, status: 'succeeded' });
        });
      },
    },
  };
}

let pool: Pool;
let drop: () => Promise<void>;
let scope: RequestScope;
const log = createLogger('silent');
const request = { method: 'POST', path: '/v1/test_charges' };

beforeAll(async () => {
  const db = await createTestDatabase();
  drop = db.drop;
  pool = createPool({ connection_string: db.url, max_connections: 8, application_name: 'engine-test' });
  await migrate(pool);
  await pool.query(
    'CREATE TABLE test_attempts (id uuid PRIMARY KEY, amount int NOT NULL, status text NOT NULL)',
  );
  const m = await createMerchant(pool, { name: 'Engine test' });
  scope = { merchant_id: m.merchant.id, livemode: false, api_key_id: 'key_test', request_id: 'req_1' };
});
afterAll(async () => {
  await pool?.end();
  await drop?.();
});

describe('atomic phases and recovery points', () => {
  it('runs every phase and stores the response', async () => {
    const acquirer: Acquirer = { calls: 0, charged: new Set(), hang_next: false };
    const engine = new IdempotencyEngine(pool, { lock_timeout_s: 60, log });
    const op = chargeOperation(acquirer);
    engine.register(op);
    const first = await engine.execute(op, { amount: 500 }, scope, 'phases-1', request);
    const again = await engine.execute(op, { amount: 500 }, scope, 'phases-1', request);
    expect(first.status).toBe(200);
    expect(again.replayed).toBe(true);
    expect(again.body).toBe(first.body);
    expect(acquirer.calls).toBe(1);
  });

  it('a retry after a crash between phases resumes at the recovery point, not from the start', async () => {
    const acquirer: Acquirer = { calls: 0, charged: new Set(), hang_next: true };
    const engine = new IdempotencyEngine(pool, { lock_timeout_s: 1, log });
    const op = chargeOperation(acquirer);
    engine.register(op);
    // The first request records its attempt, then hangs in the foreign call forever.
    void engine.execute(op, { amount: 700 }, scope, 'crash-1', request);
    await waitFor(async () => acquirer.calls === 1);
    // While its lock is fresh, a retry is told the request is still in progress.
    await expect(engine.execute(op, { amount: 700 }, scope, 'crash-1', request)).rejects.toMatchObject({
      code: 'idempotency_key_in_use',
    });
    await new Promise((r) => setTimeout(r, 1_200)); // past the lock timeout: abandoned
    const resumed = await engine.execute(op, { amount: 700 }, scope, 'crash-1', request);
    expect(resumed.status).toBe(200);
    const body = JSON.parse(resumed.body);
    const attempts = await pool.query('SELECT id, status FROM test_attempts WHERE amount = 700');
    expect(attempts.rows).toEqual([{ id: body.attempt_id, status: 'succeeded' }]); // one attempt, not two
    const row = await pool.query(
      "SELECT recovery_point FROM idempotency_keys WHERE idempotency_key = 'crash-1'",
    );
    expect(row.rows[0].recovery_point).toBe('finished');
  });

  it('the completer finishes an abandoned request without any client retry', async () => {
    const acquirer: Acquirer = { calls: 0, charged: new Set(), hang_next: true };
    const engine = new IdempotencyEngine(pool, { lock_timeout_s: 1, log });
    const op = chargeOperation(acquirer);
    engine.register(op);
    void engine.execute(op, { amount: 900 }, scope, 'abandoned-1', request);
    await waitFor(async () => acquirer.calls === 1);
    expect(await engine.completeAbandoned(10)).toBe(0); // lock still fresh
    await new Promise((r) => setTimeout(r, 1_200));
    expect(await engine.completeAbandoned(10)).toBeGreaterThanOrEqual(1);
    const { rows } = await pool.query(
      "SELECT response_status, response_body FROM idempotency_keys WHERE idempotency_key = 'abandoned-1'",
    );
    expect(rows[0].response_status).toBe(200);
    // The client's later retry gets the completed answer.
    const retry = await engine.execute(op, { amount: 900 }, scope, 'abandoned-1', request);
    expect(retry.replayed).toBe(true);
    expect(retry.body).toBe(rows[0].response_body);
    const attempts = await pool.query('SELECT status FROM test_attempts WHERE amount = 900');
    expect(attempts.rows).toEqual([{ status: 'succeeded' }]);
  });

  it('stores an unexpected error as a 500 and replays it', async () => {
    const engine = new IdempotencyEngine(pool, { lock_timeout_s: 60, log });
    const op: IdempotentOperation<Record<string, never>> = {
      name: 'test.broken',
      persist_params: true,
      steps: {
        started: (ctx) =>
          ctx.atomicPhase(async () => {
            throw new Error('boom: internal detail that must not reach the client');
          }),
      },
    };
    const first = await engine.execute(op, {}, scope, 'broken-1', request);
    expect(first.status).toBe(500);
    expect(first.body).not.toContain('boom');
    expect(JSON.parse(first.body).error.type).toBe('api_error');
    const again = await engine.execute(op, {}, scope, 'broken-1', request);
    expect(again.replayed).toBe(true);
    expect(again.body).toBe(first.body);
  });

  it('a declared write that fails undoes the whole phase, and the stored answer is a 500', async () => {
    const engine = new IdempotencyEngine(pool, { lock_timeout_s: 60, log });
    const attempt_id = randomUUID();
    const op: IdempotentOperation<Record<string, never>> = {
      name: 'test.failing_write',
      persist_params: true,
      steps: {
        started: (ctx) =>
          ctx.atomicPhase(async (tx) => {
            await tx.query("INSERT INTO test_attempts (id, amount, status) VALUES ($1, 1, 'started')", [
              attempt_id,
            ]);
            // amount is NOT NULL: this write fails after the one above already ran.
            const bad = {
              text: 'INSERT INTO test_attempts (id, amount, status) VALUES ($1, NULL, $2)',
              values: [randomUUID(), 'x'],
            };
            return { ...jsonResponse(200, { ok: true }), writes: [bad] };
          }),
      },
    };
    const first = await engine.execute(op, {}, scope, 'failing-write-1', request);
    expect(first.status).toBe(500);
    const attempts = await pool.query('SELECT 1 FROM test_attempts WHERE id = $1', [attempt_id]);
    expect(attempts.rowCount).toBe(0);
    const again = await engine.execute(op, {}, scope, 'failing-write-1', request);
    expect(again.replayed).toBe(true);
    expect(again.body).toBe(first.body);
  });

  it('a phase whose lock was taken over commits nothing', async () => {
    const engine = new IdempotencyEngine(pool, { lock_timeout_s: 60, log });
    let resume: () => void = () => {};
    const paused = new Promise<void>((r) => {
      resume = r;
    });
    let attempt_id = '';
    const op: IdempotentOperation<Record<string, never>> = {
      name: 'test.lock_lost',
      persist_params: true,
      steps: {
        started: (ctx) =>
          ctx.atomicPhase(async () => {
            attempt_id = randomUUID();
            const insert = {
              text: 'INSERT INTO test_attempts (id, amount, status) VALUES ($1, $2, $3)',
              values: [attempt_id, 3, 'started'],
            };
            return { recovery_point: 'recorded', writes: [insert] };
          }),
        recorded: async (ctx) => {
          await paused;
          await ctx.atomicPhase(async (tx) => {
            await tx.query("UPDATE test_attempts SET status = 'succeeded' WHERE id = $1", [attempt_id]);
            return jsonResponse(200, { ok: true });
          });
        },
      },
    };
    const running = engine.execute(op, {}, scope, 'lock-lost-1', request);
    await waitFor(async () => {
      const { rowCount } = await pool.query(
        "SELECT 1 FROM idempotency_keys WHERE idempotency_key = 'lock-lost-1'",
      );
      return rowCount === 1;
    });
    // Another process takes the request over (as after a lock timeout).
    await pool.query("UPDATE idempotency_keys SET locked_by = $1 WHERE idempotency_key = 'lock-lost-1'", [
      randomUUID(),
    ]);
    resume();
    await expect(running).rejects.toMatchObject({ code: 'idempotency_key_in_use' });
    const { rows } = await pool.query('SELECT status FROM test_attempts WHERE id = $1', [attempt_id]);
    expect(rows).toEqual([{ status: 'started' }]);
  });

  it('the reaper deletes keys older than the retention and keeps newer ones', async () => {
    const engine = new IdempotencyEngine(pool, { lock_timeout_s: 60, log });
    const acquirer: Acquirer = { calls: 0, charged: new Set(), hang_next: false };
    const op = chargeOperation(acquirer);
    await engine.execute(op, { amount: 1 }, scope, 'old-1', request);
    await engine.execute(op, { amount: 2 }, scope, 'new-1', request);
    await pool.query(
      "UPDATE idempotency_keys SET created_at = now() - interval '25 hours' WHERE idempotency_key = 'old-1'",
    );
    expect(await engine.reap(24)).toBe(1);
    const { rows } = await pool.query(
      "SELECT idempotency_key FROM idempotency_keys WHERE idempotency_key IN ('old-1','new-1')",
    );
    expect(rows.map((r) => r.idempotency_key)).toEqual(['new-1']);
  });
});

async function waitFor(check: () => Promise<boolean>, timeout_ms = 10_000): Promise<void> {
  const deadline = Date.now() + timeout_ms;
  while (Date.now() < deadline) {
    if (await check()) return;
    await new Promise((r) => setTimeout(r, 20));
  }
  throw new Error('condition not met in time');
}

/**
 * An operation whose second phase is batched: it marks its attempt as done and notes the
 * transaction it ran in. The first one to arrive sleeps in its phase, so with one batch in
 * flight the others queue behind it and go together. An amount of 13 fails its phase after
 * its update, which must then be undone for it alone.
 */
function batchedOperation(): IdempotentOperation<{ amount: number }> {
  return {
    name: 'test.batched',
    persist_params: true,
    steps: {
      started: (ctx) =>
        ctx.atomicPhase(
          async () => {
            const attempt_id = randomUUID();
            // Returned, not run: the batch merges the phases' single-row inserts into one.
            const insert = {
              text: 'INSERT INTO test_attempts (id, amount, status) VALUES ($1, $2, $3)',
              values: [attempt_id, ctx.params.amount, 'started'],
            };
            return { recovery_point: 'called', state: { attempt_id }, writes: [insert] };
          },
          { batch: randomUUID() },
        ),
      called: (ctx) =>
        ctx.atomicPhase(
          async (tx) => {
            const attempt_id = ctx.state.attempt_id as string;
            const { rows } = await tx.query(
              `UPDATE test_attempts SET status = 'succeeded' WHERE id = $1
                RETURNING txid_current()::text AS txid, pg_sleep(CASE WHEN amount = 1 THEN 0.2 ELSE 0 END)`,
              [attempt_id],
            );
            if (ctx.params.amount === 13) throw invalidRequest('thirteen is refused', 'amount');
            return jsonResponse(200, { attempt_id, txid: rows[0].txid });
          },
          { batch: ctx.state.attempt_id as string },
        ),
    },
  };
}

describe('group commit of batched phases', () => {
  async function runConcurrently(amounts: number[]) {
    const batches: { phases: number; committed: boolean }[] = [];
    const engine = new IdempotencyEngine(pool, {
      lock_timeout_s: 60,
      log,
      phase_batch: { max_batch: 64, max_in_flight: 1, max_queued: 1_000 },
      onBatch: (phases, committed) => batches.push({ phases, committed }),
    });
    const op = batchedOperation();
    engine.register(op);
    const prefix = randomUUID();
    const run = (amount: number, i: number) =>
      engine.execute(op, { amount }, scope, `${prefix}-${i}`, request);
    // The sleeper goes first and alone; the rest arrive while its batch is in flight.
    const first = run(amounts[0]!, 0);
    await new Promise((r) => setTimeout(r, 50));
    const rest = await Promise.all(amounts.slice(1).map((a, i) => run(a, i + 1)));
    return { results: [await first, ...rest], batches };
  }

  it('concurrent phases share one transaction and each gets its own answer', async () => {
    const { results, batches } = await runConcurrently([1, ...Array.from({ length: 11 }, () => 500)]);
    expect(results.map((r) => r.status)).toEqual(Array(12).fill(200));
    const bodies = results.map((r) => JSON.parse(r.body) as { attempt_id: string; txid: string });
    expect(new Set(bodies.map((b) => b.attempt_id)).size).toBe(12);
    // The eleven that queued behind the sleeper committed together.
    expect(new Set(bodies.slice(1).map((b) => b.txid)).size).toBeLessThan(11);
    expect(batches.some((b) => b.committed && b.phases > 1)).toBe(true);
    const { rows } = await pool.query('SELECT status FROM test_attempts WHERE id = ANY($1::uuid[])', [
      bodies.map((b) => b.attempt_id),
    ]);
    expect(rows.map((r) => r.status)).toEqual(Array(12).fill('succeeded'));
  });

  it('requests repeating one key at once, in batches with others: one runs, the rest replay or wait', async () => {
    const batches: { phases: number; committed: boolean }[] = [];
    const engine = new IdempotencyEngine(pool, {
      lock_timeout_s: 60,
      log,
      onBatch: (phases, committed) => batches.push({ phases, committed }),
    });
    const op = batchedOperation();
    engine.register(op);
    const key = `repeated-${randomUUID()}`;
    const amount = 7_000 + Math.floor(Math.random() * 1_000);
    // A request finding the key's lock held is refused with a 409 (thrown, as the API answers it).
    const results = await Promise.all(
      Array.from({ length: 16 }, (_, i) =>
        (i % 2 === 0
          ? engine.execute(op, { amount }, scope, key, request)
          : engine.execute(op, { amount: 500 }, scope, `other-${randomUUID()}`, request)
        ).catch((err: MonetaError) => ({ status: err.status_code, body: err.message })),
      ),
    );
    const repeated = results.filter((_, i) => i % 2 === 0);
    const done = repeated.filter((r) => r.status === 200);
    expect(done.length).toBeGreaterThan(0);
    expect(new Set(done.map((r) => r.body)).size).toBe(1);
    expect(repeated.every((r) => r.status === 200 || r.status === 409)).toBe(true);
    const { rows } = await pool.query('SELECT status FROM test_attempts WHERE amount = $1', [amount]);
    expect(rows).toEqual([{ status: 'succeeded' }]);
    expect(results.filter((_, i) => i % 2 === 1).every((r) => r.status === 200)).toBe(true);
    // All sixteen first phases went in one batch, which the repeated key failed.
    expect(batches[0]).toEqual({ phases: 16, committed: false });
  });

  it('a phase failing in a batch is undone alone: the others commit, it answers its own error', async () => {
    const { results, batches } = await runConcurrently([1, 500, 13, 500, 500]);
    expect(results.map((r) => r.status)).toEqual([200, 200, 400, 200, 200]);
    expect(JSON.parse(results[2]!.body).error.param).toBe('amount');
    // The batch failed as a whole and its phases ran again one by one.
    expect(batches.some((b) => !b.committed && b.phases > 1)).toBe(true);
    const { rows } = await pool.query(
      'SELECT status, count(*)::int AS n FROM test_attempts WHERE amount = 13 GROUP BY status',
    );
    // The refused phase's update was rolled back; its attempt stays as the first phase left it.
    expect(rows).toEqual([{ status: 'started', n: 1 }]);
  });
});
