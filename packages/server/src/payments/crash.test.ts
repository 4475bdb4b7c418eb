import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { startAcquirer } from '@moneta/acquirer-sim';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { call, createTestDatabase, startMonetaProcess } from '../../test/helpers.ts';
import { migrate } from '../db/migrate.ts';
import { createPool, type Pool } from '../db/pool.ts';
import { verifyLedger } from '../ledger/index.ts';
import { createMerchant } from '../merchants/index.ts';

/**
 * kill -9 of Moneta while the acquirer is carrying out an authorization: the acquirer
 * authorizes, Moneta never records the answer. After a restart, the client's retry with the
 * same Idempotency-Key (once the dead request's lock has expired) resumes the request at its
 * recovery point and repeats the call with the same acquirer key: the acquirer answers what it
 * did, and the payment completes. The acquirer ends with exactly one authorization and one
 * capture, and the ledger verifies.
 */

let db: { url: string; drop: () => Promise<void> };
let pool: Pool;
let acquirer: Awaited<ReturnType<typeof startAcquirer>>;
let secret_key: string;
let env: Record<string, string>;

beforeAll(async () => {
  db = await createTestDatabase();
  pool = createPool({ connection_string: db.url, max_connections: 4, application_name: 'crash-test' });
  await migrate(pool);
  secret_key = (await createMerchant(pool, { name: 'Crash' })).test.secret_key;
  acquirer = await startAcquirer({
    name: 'acme',
    port: 0,
    data_dir: await mkdtemp(path.join(tmpdir(), 'moneta-acq-crash-')),
  });
  env = {
    DATABASE_URL: db.url,
    MONETA_ACQUIRERS: `acme=${acquirer.url}`,
    MONETA_ACQUIRER_TIMEOUT_MS: '10000',
    MONETA_IDEMPOTENCY_LOCK_TIMEOUT_S: '5',
    MONETA_DEMO_MERCHANT: 'false',
    MONETA_KEK_FILE: path.join(await mkdtemp(path.join(tmpdir(), 'moneta-crash-keys-')), 'keyring.json'),
    LOG_LEVEL: 'warn',
  };
});
afterAll(async () => {
  await acquirer?.close();
  await pool?.end();
  await db?.drop();
});

const startMoneta = () => startMonetaProcess(env);

describe('crash between the acquirer call and the commit', () => {
  it('kill -9 while the acquirer authorizes: the retry completes the payment, charged once', async () => {
    const first = await startMoneta();
    // The acquirer carries the authorization out, then answers only after 4 s.
    acquirer.setFaults({ operations: { authorize: { timeout_rate: 1, hang_ms: 4_000 } } });
    const form = 'amount=4242&currency=usd&payment_method=pm_card_visa&confirm=true';
    const headers = { 'Idempotency-Key': 'crash-1' };
    const pending = call(first.url, 'POST', '/v1/payment_intents', { key: secret_key, form, headers }).catch(
      (e) => e,
    );
    // Wait until the acquirer has the authorization, then kill Moneta before it hears back.
    for (let i = 0; i < 100 && !acquirer.records().authorizations.some((a) => a.amount === 4242); i += 1) {
      await new Promise((r) => setTimeout(r, 50));
    }
    expect(acquirer.records().authorizations.filter((a) => a.amount === 4242)).toHaveLength(1);
    first.child.kill('SIGKILL');
    await pending;
    acquirer.setFaults({});

    const { rows: before } = await pool.query(
      "SELECT status FROM payment_attempts WHERE amount = 4242 AND kind = 'authorize'",
    );
    expect(before).toEqual([{ status: 'started' }]);

    const second = await startMoneta();
    try {
      // The dead request's lock expires after 5 s; until then a retry is told to wait (409).
      let res = await call(second.url, 'POST', '/v1/payment_intents', { key: secret_key, form, headers });
      for (let i = 0; i < 40 && res.status === 409; i += 1) {
        await new Promise((r) => setTimeout(r, 500));
        res = await call(second.url, 'POST', '/v1/payment_intents', { key: secret_key, form, headers });
      }
      expect(res.status, res.text).toBe(200);
      expect(res.body.status).toBe('succeeded');
      const auths = acquirer.records().authorizations.filter((a) => a.amount === 4242);
      expect(auths).toHaveLength(1);
      expect(auths[0]!.captured_amount).toBe(4242);
      expect(JSON.stringify(await verifyLedger(pool))).toBe('[]');
      const again = await call(second.url, 'POST', '/v1/payment_intents', { key: secret_key, form, headers });
      expect(again.text).toBe(res.text);
    } finally {
      second.child.kill('SIGTERM');
      await new Promise((r) => second.child.once('exit', r));
    }
  });
});
