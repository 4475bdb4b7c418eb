import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, testKeyProvider } from '../../test/helpers.ts';
import { accountInput, transferInput } from '../../test/ledger-fixtures.ts';
import { migrate } from '../db/migrate.ts';
import { createPool, type Pool } from '../db/pool.ts';
import { IdempotencyEngine } from '../idempotency/index.ts';
import { Ledger, ledgerId, TransferFlags } from '../ledger/index.ts';
import { createLogger } from '../ops/logger.ts';
import { Metrics } from '../ops/metrics.ts';
import { Vault } from '../vault/index.ts';
import { type JobDeps, taskList } from './index.ts';

let pool: Pool;
let drop: () => Promise<void>;
let deps: JobDeps;

beforeAll(async () => {
  const db = await createTestDatabase();
  drop = db.drop;
  pool = createPool({ connection_string: db.url, max_connections: 4, application_name: 'jobs-test' });
  await migrate(pool);
  const log = createLogger('silent');
  deps = {
    pool,
    engine: new IdempotencyEngine(pool, { lock_timeout_s: 60, log }),
    ledger: new Ledger(pool),
    vault: new Vault(pool, testKeyProvider(), { cvc_ttl_s: 60, log }),
    janitor: null,
    log,
    metrics: new Metrics(null, 4),
    concurrency: 1,
    idempotency_retention_hours: 24,
  };
});
afterAll(async () => {
  await pool?.end();
  await drop?.();
});

// graphile-worker passes (payload, helpers); our tasks use neither.
const runTask = (name: string) => (taskList(deps)[name] as (p: unknown, h: unknown) => Promise<void>)({}, {});

const gauge = async (check: string) =>
  (await deps.metrics.ledger_violations.get()).values.find((v) => v.labels.check === check)?.value;

describe('ledger jobs', () => {
  it('ledger_verify publishes 0 for a sound ledger and the count of a broken invariant', async () => {
    const a = ledgerId();
    await deps.ledger.createAccounts([accountInput(0, { id: a })]);
    await runTask('ledger_verify');
    expect(await gauge('account_balances_match_transfers')).toBe(0);
    expect(await gauge('ledger_debits_equal_credits')).toBe(0);
    await pool.query('UPDATE ledger_accounts SET credits_posted = 9 WHERE id = $1', [a]);
    await runTask('ledger_verify');
    expect(await gauge('account_balances_match_transfers')).toBe(1);
    expect(await gauge('ledger_debits_equal_credits')).toBe(1);
    await pool.query('UPDATE ledger_accounts SET credits_posted = 0 WHERE id = $1', [a]);
  });

  it('ledger_expire_pending releases pending transfers past their timeout', async () => {
    const [a, b] = [ledgerId(), ledgerId()];
    await deps.ledger.createAccounts([accountInput(0, { id: a }), accountInput(0, { id: b })]);
    const t = transferInput(a, b, 5n, { flags: TransferFlags.pending, timeout_s: 1 });
    expect(await deps.ledger.createTransfers([t])).toEqual(['ok']);
    await new Promise((r) => setTimeout(r, 1_100));
    await runTask('ledger_expire_pending');
    const [account] = await deps.ledger.lookupAccounts([a]);
    expect(account!.debits_pending).toBe(0n);
    expect((await deps.metrics.ledger_expired.get()).values[0]?.value).toBe(1);
  });
});
