import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { call, countRows, startTestMoneta, type TestMoneta } from '../../test/helpers.ts';
import { ledgerId } from '../ledger/index.ts';
import { createMerchant } from '../merchants/index.ts';

let t: TestMoneta;
let platform_key: string;
let platform_live_key: string;
beforeAll(async () => {
  t = await startTestMoneta({ MONETA_RATE_LIMIT_PER_SECOND: '100000', MONETA_RATE_LIMIT_BURST: '100000' });
  const platform = await createMerchant(t.pool, {
    name: 'Platform',
    is_platform: true,
    with_live_keys: true,
  });
  platform_key = platform.test.secret_key;
  platform_live_key = platform.live!.secret_key;
});
afterAll(async () => t?.close());

const post = (path: string, json: unknown, key = platform_key) => call(t.url, 'POST', path, { key, json });
const get = (path: string, key = platform_key) => call(t.url, 'GET', path, { key });

describe('ledger API', () => {
  it("refuses a merchant's key: the ledger is the platform's", async () => {
    const res = await post(
      '/v1/ledger/accounts',
      { accounts: [{ id: ledgerId(), ledger: 840, code: 1 }] },
      t.secret_key,
    );
    expect(res.status).toBe(403);
    expect(res.body.error.type).toBe('invalid_request_error');
    expect(res.body.error.message).toContain('--platform');
  });

  it('creates accounts and transfers in batches with a result per item, then reads them back', async () => {
    const [a, b] = [ledgerId(), ledgerId()];
    const accounts = await post('/v1/ledger/accounts', {
      accounts: [
        { id: a, ledger: 840, code: 10, flags: ['history'] },
        { id: b, ledger: 840, code: 20, user_data_64: '9007199254740993' },
        { id: ledgerId(), ledger: 0, code: 1 },
      ],
    });
    expect(accounts.status).toBe(200);
    expect(accounts.body.data.map((r: { result: string }) => r.result)).toEqual([
      'ok',
      'ok',
      'ledger_must_not_be_zero',
    ]);
    const [t1, t2] = [ledgerId(), ledgerId()];
    const transfers = await post('/v1/ledger/transfers', {
      transfers: [
        {
          id: t1,
          debit_account_id: a,
          credit_account_id: b,
          amount: '9223372036854775000',
          ledger: 840,
          code: 1,
        },
        { id: t2, debit_account_id: a, credit_account_id: b, amount: 1000, ledger: 840, code: 1 },
      ],
    });
    expect(transfers.status).toBe(200);
    expect(transfers.body.data).toEqual([
      { object: 'ledger.transfer_result', index: 0, id: t1, result: 'ok' },
      { object: 'ledger.transfer_result', index: 1, id: t2, result: 'overflows_debits_posted' },
    ]);
    const account = await get(`/v1/ledger/accounts/${a}`);
    expect(account.body).toMatchObject({
      object: 'ledger.account',
      id: a,
      livemode: false,
      flags: ['history'],
      debits_posted: '9223372036854775000',
      credits_posted: '0',
    });
    expect((await get(`/v1/ledger/accounts/${b}`)).body.user_data_64).toBe('9007199254740993');
    const transfer = await get(`/v1/ledger/transfers/${t1}`);
    expect(transfer.body).toMatchObject({
      object: 'ledger.transfer',
      amount: '9223372036854775000',
      flags: [],
    });
  });

  it("lists an account's transfers newest first, with cursors", async () => {
    const [a, b] = [ledgerId(), ledgerId()];
    await post('/v1/ledger/accounts', {
      accounts: [
        { id: a, ledger: 978, code: 1 },
        { id: b, ledger: 978, code: 1 },
      ],
    });
    const ids = Array.from({ length: 5 }, () => ledgerId());
    for (const [i, id] of ids.entries()) {
      const [debit, credit] = i % 2 ? [a, b] : [b, a]; // both sides of the account appear
      await post('/v1/ledger/transfers', {
        transfers: [
          { id, debit_account_id: debit, credit_account_id: credit, amount: i + 1, ledger: 978, code: 1 },
        ],
      });
    }
    const newest = [...ids].reverse();
    const p1 = await get(`/v1/ledger/accounts/${a}/transfers?limit=2`);
    expect(p1.body.data.map((x: { id: string }) => x.id)).toEqual(newest.slice(0, 2));
    expect(p1.body.has_more).toBe(true);
    const p2 = await get(`/v1/ledger/accounts/${a}/transfers?limit=2&starting_after=${newest[1]}`);
    expect(p2.body.data.map((x: { id: string }) => x.id)).toEqual(newest.slice(2, 4));
    const back = await get(`/v1/ledger/accounts/${a}/transfers?limit=2&ending_before=${newest[2]}`);
    expect(back.body.data.map((x: { id: string }) => x.id)).toEqual(newest.slice(0, 2));
    const bad = await get(`/v1/ledger/accounts/${a}/transfers?starting_after=${ledgerId()}`);
    expect(bad.status).toBe(400);
    expect(bad.body.error.param).toBe('starting_after');
  });

  it('reads past balances of a history account and finds transfers and accounts by user data', async () => {
    const [a, b, order] = [ledgerId(), ledgerId(), ledgerId()];
    await post('/v1/ledger/accounts', {
      accounts: [
        { id: a, ledger: 840, code: 1, flags: ['history'], user_data_128: order },
        { id: b, ledger: 840, code: 1 },
      ],
    });
    const first = ledgerId();
    await post('/v1/ledger/transfers', {
      transfers: [
        {
          id: first,
          debit_account_id: a,
          credit_account_id: b,
          amount: 100,
          ledger: 840,
          code: 1,
          user_data_128: order,
        },
      ],
    });
    const between = (await get(`/v1/ledger/transfers/${first}`)).body.timestamp as string;
    await post('/v1/ledger/transfers', {
      transfers: [
        { id: ledgerId(), debit_account_id: a, credit_account_id: b, amount: 50, ledger: 840, code: 1 },
      ],
    });
    const then = await get(`/v1/ledger/accounts/${a}/balances?timestamp=${between}`);
    expect(then.body).toMatchObject({ object: 'ledger.balance', debits_posted: '100' });
    const before = await get(`/v1/ledger/accounts/${a}/balances?timestamp=1`);
    expect(before.body.debits_posted).toBe('0');
    expect((await get(`/v1/ledger/accounts/${a}`)).body.debits_posted).toBe('150');
    const noHistory = await get(`/v1/ledger/accounts/${b}/balances?timestamp=${between}`);
    expect(noHistory.status).toBe(400);
    const found = await get(`/v1/ledger/transfers?user_data_128=${order}`);
    expect(found.body.data.map((t: { id: string }) => t.id)).toEqual([first]);
    const owned = await get(`/v1/ledger/accounts?user_data_128=${order}`);
    expect(owned.body.data.map((x: { id: string }) => x.id)).toEqual([a]);
  });

  it('bad input is a 400 naming the field and writes nothing', async () => {
    const before = await countRows(t.pool, 'ledger_transfers');
    const cases: [unknown, string][] = [
      [{ transfers: [{ id: 'not-a-uuid' }] }, 'transfers[0][id]'],
      [{ transfers: [{ id: ledgerId(), amount: '-5' }] }, 'transfers[0][amount]'],
      [{ transfers: [{ id: ledgerId(), amount: '99999999999999999999' }] }, 'transfers[0][amount]'],
      [{ transfers: [{ id: ledgerId(), amount: 1.5 }] }, 'transfers[0][amount]'],
      [{ transfers: [{ id: ledgerId(), flags: ['sideways'] }] }, 'transfers[0][flags][0]'],
      [{ transfers: [] }, 'transfers'],
      [{ transfers: [{ id: ledgerId(), colour: 'red' }] }, 'transfers[0][colour]'],
    ];
    for (const [body, param] of cases) {
      const res = await post('/v1/ledger/transfers', body);
      expect(res.status, JSON.stringify(body)).toBe(400);
      expect(res.body.error.param, JSON.stringify(body)).toBe(param);
    }
    expect(await countRows(t.pool, 'ledger_transfers')).toBe(before);
  });

  it('a live key does not see test-mode accounts', async () => {
    const a = ledgerId();
    await post('/v1/ledger/accounts', { accounts: [{ id: a, ledger: 840, code: 1 }] });
    expect((await get(`/v1/ledger/accounts/${a}`)).status).toBe(200);
    const live = await get(`/v1/ledger/accounts/${a}`, platform_live_key);
    expect(live.status).toBe(404);
    expect(live.body.error.code).toBe('resource_missing');
  });
});
