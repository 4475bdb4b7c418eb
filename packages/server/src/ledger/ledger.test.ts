import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase } from '../../test/helpers.ts';
import { accountInput, transferInput } from '../../test/ledger-fixtures.ts';
import { migrate } from '../db/migrate.ts';
import { createPool, type Pool } from '../db/pool.ts';
import {
  AccountFlags,
  DEFAULT_LEDGER_OPTIONS,
  Ledger,
  ledgerId,
  TransferFlags,
  type TransferInput,
  ZERO_ID,
} from './index.ts';
import { verifyLedger } from './verify.ts';

let pool: Pool;
let db_url: string;
let drop: () => Promise<void>;
let ledger: Ledger;

beforeAll(async () => {
  const db = await createTestDatabase();
  drop = db.drop;
  db_url = db.url;
  pool = createPool({ connection_string: db.url, max_connections: 8, application_name: 'ledger-test' });
  await migrate(pool);
  ledger = new Ledger(pool);
});
afterAll(async () => {
  await pool?.end();
  await drop?.();
});

const account = accountInput;
const transfer = transferInput;

async function balances(...ids: string[]) {
  const accounts = await ledger.lookupAccounts(ids);
  return accounts.map((a) => ({
    dp: a.debits_pending,
    dpo: a.debits_posted,
    cp: a.credits_pending,
    cpo: a.credits_posted,
  }));
}

describe('ledger', () => {
  it('ledgerId makes UUIDv7s that are unique and strictly increasing, even within a millisecond', () => {
    const ids = Array.from({ length: 50_000 }, () => ledgerId());
    expect(new Set(ids).size).toBe(ids.length);
    for (let i = 1; i < ids.length; i += 1) expect(ids[i]! > ids[i - 1]!).toBe(true);
    expect(ids[0]).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    // The first 48 bits are the time in milliseconds.
    const ms = Number.parseInt(ids.at(-1)!.replaceAll('-', '').slice(0, 12), 16);
    expect(Math.abs(ms - Date.now())).toBeLessThan(60_000);
  });

  it('creates accounts idempotently and refuses a different account under the same id', async () => {
    const a = account();
    expect(await ledger.createAccounts([a])).toEqual(['ok']);
    expect(await ledger.createAccounts([a])).toEqual(['exists']);
    expect(await ledger.createAccounts([{ ...a, code: 2 }])).toEqual(['exists_with_different_code']);
    expect(await ledger.createAccounts([account(0, { ledger: 0 })])).toEqual(['ledger_must_not_be_zero']);
  });

  it('posts a transfer on both sides, and a retry answers exists without moving money twice', async () => {
    const [a, b] = [account(), account()];
    await ledger.createAccounts([a, b]);
    const t = transfer(a.id, b.id, 1_000n);
    expect(await ledger.createTransfers([t])).toEqual(['ok']);
    expect(await ledger.createTransfers([t])).toEqual(['exists']);
    expect(await ledger.createTransfers([{ ...t, amount: 999n }])).toEqual(['exists_with_different_amount']);
    expect(await balances(a.id, b.id)).toEqual([
      { dp: 0n, dpo: 1_000n, cp: 0n, cpo: 0n },
      { dp: 0n, dpo: 0n, cp: 0n, cpo: 1_000n },
    ]);
  });

  it('enforces limit flags and reports the result TigerBeetle names', async () => {
    const [funded, sink] = [account(AccountFlags.debits_must_not_exceed_credits), account()];
    await ledger.createAccounts([funded, sink]);
    expect(await ledger.createTransfers([transfer(funded.id, sink.id, 1n)])).toEqual(['exceeds_credits']);
    expect(await ledger.createTransfers([transfer(sink.id, funded.id, 50n)])).toEqual(['ok']);
    expect(await ledger.createTransfers([transfer(funded.id, sink.id, 51n)])).toEqual(['exceeds_credits']);
    expect(
      await ledger.createTransfers([
        transfer(funded.id, sink.id, 100n, { flags: TransferFlags.balancing_debit }),
      ]),
    ).toEqual(['ok']);
    expect(await balances(funded.id)).toEqual([{ dp: 0n, dpo: 50n, cp: 0n, cpo: 50n }]);
    expect(await ledger.createTransfers([transfer(funded.id, funded.id, 1n)])).toEqual([
      'accounts_must_be_different',
    ]);
    expect(await ledger.createTransfers([transfer(funded.id, ledgerId(), 1n)])).toEqual([
      'credit_account_not_found',
    ]);
  });

  it('a linked chain commits or fails as one', async () => {
    const [a, b, c] = [account(), account(), account(AccountFlags.credits_must_not_exceed_debits)];
    await ledger.createAccounts([a, b, c]);
    const results = await ledger.createTransfers([
      transfer(a.id, b.id, 10n, { flags: TransferFlags.linked }),
      transfer(b.id, c.id, 10n), // c may not be credited beyond its debits: fails the chain
      transfer(a.id, b.id, 5n),
    ]);
    expect(results).toEqual(['linked_event_failed', 'exceeds_debits', 'ok']);
    expect(await balances(a.id, b.id)).toEqual([
      { dp: 0n, dpo: 5n, cp: 0n, cpo: 0n },
      { dp: 0n, dpo: 0n, cp: 0n, cpo: 5n },
    ]);
    const open = await ledger.createTransfers([transfer(a.id, b.id, 1n, { flags: TransferFlags.linked })]);
    expect(open).toEqual(['linked_event_chain_open']);
  });

  it('a pending transfer resolves once: partial post, then neither post nor void again', async () => {
    const [a, b] = [account(), account()];
    await ledger.createAccounts([a, b]);
    const p = transfer(a.id, b.id, 100n, { flags: TransferFlags.pending });
    expect(await ledger.createTransfers([p])).toEqual(['ok']);
    expect(await balances(a.id)).toEqual([{ dp: 100n, dpo: 0n, cp: 0n, cpo: 0n }]);
    const post = (amount: bigint | null) =>
      transfer(ZERO_ID, ZERO_ID, amount, {
        pending_id: p.id,
        flags: TransferFlags.post_pending_transfer,
        ledger: 0,
        code: 0,
      });
    expect(await ledger.createTransfers([post(101n)])).toEqual(['exceeds_pending_transfer_amount']);
    const partial = post(60n);
    expect(await ledger.createTransfers([partial])).toEqual(['ok']);
    expect(await ledger.createTransfers([partial])).toEqual(['exists']);
    expect(await balances(a.id, b.id)).toEqual([
      { dp: 0n, dpo: 60n, cp: 0n, cpo: 0n },
      { dp: 0n, dpo: 0n, cp: 0n, cpo: 60n },
    ]);
    expect(await ledger.createTransfers([post(null)])).toEqual(['pending_transfer_already_posted']);
    const void_ = transfer(ZERO_ID, ZERO_ID, null, {
      pending_id: p.id,
      flags: TransferFlags.void_pending_transfer,
      ledger: 0,
      code: 0,
    });
    expect(await ledger.createTransfers([void_])).toEqual(['pending_transfer_already_posted']);
    const missing = transfer(ZERO_ID, ZERO_ID, null, {
      pending_id: ledgerId(),
      flags: TransferFlags.void_pending_transfer,
      ledger: 0,
      code: 0,
    });
    expect(await ledger.createTransfers([missing])).toEqual(['pending_transfer_not_found']);
  });

  it('a void whose id already exists leaves no stale balance behind: the pending transfer can still be posted', async () => {
    // Found by the reference property test (a shrunk case): the optimistic pass voided the
    // pending transfer in the cache, its insert failed on the existing id, and the accounts
    // named only through the pending transfer were not forgotten.
    const [a, b] = [account(), account()];
    await ledger.createAccounts([a, b]);
    const resolve = (id: string, pending_id: string, flags: number) =>
      transfer(ZERO_ID, ZERO_ID, null, { id, pending_id, flags, ledger: 0, code: 0 });
    const first = transfer(a.id, b.id, 101n, { flags: TransferFlags.pending | TransferFlags.linked });
    const voided = resolve(ledgerId(), first.id, TransferFlags.void_pending_transfer);
    expect(await ledger.createTransfers([first, voided])).toEqual(['ok', 'ok']);
    const second = transfer(a.id, b.id, 1n, { flags: TransferFlags.pending });
    expect(await ledger.createTransfers([second])).toEqual(['ok']);
    // The void's id again, now naming the second pending transfer.
    expect(
      await ledger.createTransfers([resolve(voided.id, second.id, TransferFlags.void_pending_transfer)]),
    ).toEqual(['exists_with_different_pending_id']);
    expect(
      await ledger.createTransfers([resolve(ledgerId(), second.id, TransferFlags.post_pending_transfer)]),
    ).toEqual(['ok']);
    expect(await balances(a.id, b.id)).toEqual([
      { dp: 0n, dpo: 1n, cp: 0n, cpo: 0n },
      { dp: 0n, dpo: 0n, cp: 0n, cpo: 1n },
    ]);
  });

  it('a post through a second process, whose cached balances lack the pending amount, is decided on stored ones', async () => {
    const other = new Ledger(pool);
    const [a, b] = [account(), account()];
    await ledger.createAccounts([a, b]);
    // The other process caches the accounts' balances, then this one adds a pending transfer.
    expect(await other.createTransfers([transfer(a.id, b.id, 5n)])).toEqual(['ok']);
    const pending = transfer(a.id, b.id, 40n, { flags: TransferFlags.pending });
    expect(await ledger.createTransfers([pending])).toEqual(['ok']);
    const post = transfer(ZERO_ID, ZERO_ID, null, {
      pending_id: pending.id,
      flags: TransferFlags.post_pending_transfer,
      ledger: 0,
      code: 0,
    });
    expect(await other.createTransfers([post])).toEqual(['ok']);
    expect(await balances(a.id)).toEqual([{ dp: 0n, dpo: 45n, cp: 0n, cpo: 0n }]);
    expect(JSON.stringify(await verifyLedger(pool))).toBe('[]');
  });

  it("test and live money never meet: the other mode's accounts and pending transfers do not exist", async () => {
    const [t1, t2] = [account(), account()];
    const [l1, l2] = [account(0, { livemode: true }), account(0, { livemode: true })];
    expect(await ledger.createAccounts([t1, t2, l1, l2])).toEqual(['ok', 'ok', 'ok', 'ok']);
    expect(await ledger.createAccounts([{ ...t1, livemode: true }])).toEqual(['exists_with_different_flags']);
    expect(await ledger.createTransfers([transfer(t1.id, l1.id, 1n)])).toEqual(['credit_account_not_found']);
    expect(await ledger.createTransfers([transfer(l1.id, l2.id, 1n)])).toEqual(['debit_account_not_found']);
    expect(await ledger.createTransfers([transfer(l1.id, l2.id, 1n, { livemode: true })])).toEqual(['ok']);
    const p = transfer(t1.id, t2.id, 3n, { flags: TransferFlags.pending });
    expect(await ledger.createTransfers([p])).toEqual(['ok']);
    const livePost = transfer(ZERO_ID, ZERO_ID, null, {
      livemode: true,
      pending_id: p.id,
      flags: TransferFlags.post_pending_transfer,
      ledger: 0,
      code: 0,
    });
    expect(await ledger.createTransfers([livePost])).toEqual(['pending_transfer_not_found']);
  });

  it('an expired pending transfer is released by expirePending and can no longer be posted', async () => {
    const [a, b] = [account(AccountFlags.history), account()];
    await ledger.createAccounts([a, b]);
    const p = transfer(a.id, b.id, 40n, { flags: TransferFlags.pending, timeout_s: 1 });
    const lasting = transfer(a.id, b.id, 2n, { flags: TransferFlags.pending, timeout_s: 3600 });
    expect(await ledger.createTransfers([p, lasting])).toEqual(['ok', 'ok']);
    expect(await ledger.expirePending(100)).toBe(0); // not yet
    await new Promise((r) => setTimeout(r, 1_100));
    expect(await ledger.expirePending(100)).toBe(1);
    expect(await balances(a.id, b.id)).toEqual([
      { dp: 2n, dpo: 0n, cp: 0n, cpo: 0n },
      { dp: 0n, dpo: 0n, cp: 2n, cpo: 0n },
    ]);
    const post = transfer(ZERO_ID, ZERO_ID, null, {
      pending_id: p.id,
      flags: TransferFlags.post_pending_transfer,
      ledger: 0,
      code: 0,
    });
    expect(await ledger.createTransfers([post])).toEqual(['pending_transfer_expired']);
    expect(JSON.stringify(await verifyLedger(pool))).toBe('[]');
  });

  it('many concurrent callers on a hot account: every transfer lands once and the invariants hold', async () => {
    const hot = account();
    const others = Array.from({ length: 50 }, () => account());
    await ledger.createAccounts([hot, ...others]);
    const calls = Array.from({ length: 400 }, (_, i) =>
      ledger.createTransfers([transfer(hot.id, others[i % others.length]!.id, BigInt(i + 1))]),
    );
    const results = (await Promise.all(calls)).flat();
    expect(results.every((r) => r === 'ok')).toBe(true);
    const [h] = await balances(hot.id);
    expect(h!.dpo).toBe((400n * 401n) / 2n);
    expect(JSON.stringify(await verifyLedger(pool))).toBe('[]');
  });

  it('verify reports a balance that does not match its transfers, and a ledger out of balance', async () => {
    const [a, b] = [account(), account()];
    await ledger.createAccounts([a, b]);
    await ledger.createTransfers([transfer(a.id, b.id, 7n)]);
    expect(JSON.stringify(await verifyLedger(pool))).toBe('[]');
    await pool.query('UPDATE ledger_accounts SET debits_posted = debits_posted + 1 WHERE id = $1', [a.id]);
    try {
      const checks = (await verifyLedger(pool)).map((v) => v.check).sort();
      expect(checks).toEqual(['account_balances_match_transfers', 'ledger_debits_equal_credits']);
    } finally {
      await pool.query('UPDATE ledger_accounts SET debits_posted = debits_posted - 1 WHERE id = $1', [a.id]);
    }
  });

  it('two processes on the same accounts: no update is lost to a stale cached balance', async () => {
    // Two Ledger instances are two processes: each caches the balances it committed, and each
    // makes the other's cache stale all the time.
    const other = new Ledger(pool);
    const accounts = Array.from({ length: 4 }, () => account());
    const funded = account(AccountFlags.debits_must_not_exceed_credits);
    await ledger.createAccounts([...accounts, funded]);
    const all = [...accounts, funded];
    const sent: { t: ReturnType<typeof transfer>; via: Ledger }[] = [];
    for (let i = 0; i < 300; i += 1) {
      const dr = all[i % all.length]!;
      const cr = all[(i * 7 + 1) % all.length]!;
      if (dr.id === cr.id) continue;
      sent.push({ t: transfer(dr.id, cr.id, BigInt(1 + (i % 13))), via: i % 2 ? ledger : other });
    }
    const results = await Promise.all(sent.map(({ t, via }) => via.createTransfers([t])));
    const debits = new Map<string, bigint>();
    const credits = new Map<string, bigint>();
    sent.forEach(({ t }, i) => {
      if (results[i]![0] !== 'ok') return;
      debits.set(t.debit_account_id, (debits.get(t.debit_account_id) ?? 0n) + t.amount!);
      credits.set(t.credit_account_id, (credits.get(t.credit_account_id) ?? 0n) + t.amount!);
    });
    const stored = await ledger.lookupAccounts(all.map((a) => a.id));
    for (const a of stored) {
      expect(a.debits_posted, a.id).toBe(debits.get(a.id) ?? 0n);
      expect(a.credits_posted, a.id).toBe(credits.get(a.id) ?? 0n);
    }
    expect(results.flat().every((r) => r === 'ok' || r === 'exceeds_credits')).toBe(true);
    expect(JSON.stringify(await verifyLedger(pool))).toBe('[]');
  });

  it('large batches stream their transfers with COPY and keep every rule and invariant', async () => {
    const copy_pool = createPool({
      connection_string: db_url,
      max_connections: 2,
      application_name: 'ledger-copy-test',
      pipeline: false,
    });
    try {
      const copying = new Ledger(pool, { ...DEFAULT_LEDGER_OPTIONS, copy_pool, copy_threshold: 50 });
      const accounts = Array.from({ length: 10 }, (_, i) => account(i === 0 ? AccountFlags.history : 0));
      const limited = account(AccountFlags.debits_must_not_exceed_credits);
      await copying.createAccounts([...accounts, limited]);
      const pendings = Array.from({ length: 100 }, (_, i) =>
        transfer(accounts[i % 10]!.id, accounts[(i + 1) % 10]!.id, BigInt(i + 1), {
          flags: TransferFlags.pending,
          user_data_64: BigInt(i),
        }),
      );
      const plain = Array.from({ length: 100 }, (_, i) =>
        transfer(accounts[i % 10]!.id, accounts[(i + 3) % 10]!.id, 7n),
      );
      const refused = transfer(limited.id, accounts[0]!.id, 1n);
      expect(await copying.createTransfers([...pendings, ...plain, refused])).toEqual([
        ...pendings.map(() => 'ok'),
        ...plain.map(() => 'ok'),
        'exceeds_credits',
      ]);
      const posts = pendings.map((p, i) =>
        transfer(ZERO_ID, ZERO_ID, i % 2 ? null : 1n, {
          pending_id: p.id,
          flags: TransferFlags.post_pending_transfer,
          ledger: 0,
          code: 0,
        }),
      );
      const results = await copying.createTransfers(posts);
      expect(results.every((r) => r === 'ok')).toBe(true);
      expect(await copying.createTransfers([posts[0]!, ...plain.slice(0, 60)])).toEqual(
        Array.from({ length: 61 }, () => 'exists'),
      );
      const [stored] = await copying.lookupTransfers([pendings[3]!.id]);
      expect(stored).toMatchObject({ amount: 4n, user_data_64: 3n, flags: TransferFlags.pending });
      expect(JSON.stringify(await verifyLedger(pool))).toBe('[]');
    } finally {
      await copy_pool.end();
    }
  });

  it('COPY batches built on cached balances overlap, survive a duplicate id and a second writer, and lose nothing', async () => {
    const copy_pool = createPool({
      connection_string: db_url,
      max_connections: 2,
      application_name: 'ledger-copy-pipeline-test',
      pipeline: false,
    });
    try {
      const copying = new Ledger(pool, { ...DEFAULT_LEDGER_OPTIONS, copy_pool, copy_threshold: 50 });
      const other = new Ledger(pool); // another process writing the same hot account
      // Counts the batches that took the pipelined COPY path (a private method, wrapped).
      const inner = copying as unknown as { commitCopyPipelined: (i: TransferInput[]) => Promise<unknown> };
      const original = inner.commitCopyPipelined.bind(copying);
      let pipelined = 0;
      inner.commitCopyPipelined = (i) => {
        pipelined += 1;
        return original(i);
      };
      const hot = account();
      const spread = Array.from({ length: 20 }, () => account());
      await copying.createAccounts([hot, ...spread]);
      const call = () =>
        Array.from({ length: 60 }, (_, k) => transfer(hot.id, spread[k % 20]!.id, BigInt(1 + (k % 7))));
      // The first call reads the accounts; from then on this process has them cached.
      const warm = call();
      expect(new Set(await copying.createTransfers(warm))).toEqual(new Set(['ok']));
      const sent: TransferInput[] = [];
      const results: string[] = [];
      const caller = async (n: number) => {
        for (let round = 0; round < 5; round += 1) {
          const batch = call();
          // One call repeats a transfer already stored: its COPY fails and it is redone carefully.
          if (n === 3 && round === 2) batch[10] = warm[10]!;
          sent.push(...batch);
          results.push(...(await copying.createTransfers(batch)));
        }
      };
      const meddler = async () => {
        for (let i = 0; i < 10; i += 1) {
          expect(await other.createTransfers([transfer(spread[i]!.id, hot.id, 3n)])).toEqual(['ok']);
        }
      };
      await Promise.all([...Array.from({ length: 8 }, (_, n) => caller(n)), meddler()]);
      expect(pipelined).toBeGreaterThan(5);
      expect(results.filter((r) => r === 'exists')).toHaveLength(1);
      expect(results.filter((r) => r === 'ok')).toHaveLength(sent.length - 1);
      // Every transfer answered ok is stored, once, and the balances add up.
      const fresh = sent.filter((t) => t !== warm[10]);
      expect(await copying.lookupTransfers(fresh.map((t) => t.id))).toHaveLength(fresh.length);
      const [after] = await copying.lookupAccounts([hot.id]);
      const debited = [...warm, ...fresh].reduce((sum, t) => sum + t.amount!, 0n);
      expect(after!.debits_posted).toBe(debited);
      expect(after!.credits_posted).toBe(30n);
      expect(JSON.stringify(await verifyLedger(pool))).toBe('[]');
    } finally {
      await copy_pool.end();
    }
  });

  it('pipelined batches sent behind one that turns out stale are redone, and no update is lost', async () => {
    // Closed-loop callers keep two batches in flight on the ordered connection, each built on
    // the cached balances the one before it leaves; a second process writes the hot account
    // now and then, so whole pipelines fail their checks and go the careful way.
    const other = new Ledger(pool);
    const hot = account();
    const cold = Array.from({ length: 6 }, () => account());
    await ledger.createAccounts([hot, ...cold]);
    const sent: TransferInput[] = [];
    const loop = async (via: Ledger, rounds: number, pick: (i: number) => [string, string]) => {
      for (let i = 0; i < rounds; i += 1) {
        const [dr, cr] = pick(i);
        const t = transfer(dr, cr, BigInt(1 + (i % 7)));
        sent.push(t);
        expect(await via.createTransfers([t])).toEqual(['ok']);
      }
    };
    await Promise.all([
      ...cold.map((c) => loop(ledger, 40, () => [hot.id, c.id])),
      loop(other, 20, (i) => [cold[i % cold.length]!.id, hot.id]),
    ]);
    const expected = new Map<string, { dr: bigint; cr: bigint }>();
    for (const t of sent) {
      for (const [id, side] of [
        [t.debit_account_id, 'dr'],
        [t.credit_account_id, 'cr'],
      ] as const) {
        const e = expected.get(id) ?? { dr: 0n, cr: 0n };
        e[side] += t.amount!;
        expected.set(id, e);
      }
    }
    for (const a of await ledger.lookupAccounts([hot.id, ...cold.map((c) => c.id)])) {
      expect(a.debits_posted, a.id).toBe(expected.get(a.id)!.dr);
      expect(a.credits_posted, a.id).toBe(expected.get(a.id)!.cr);
    }
    expect(JSON.stringify(await verifyLedger(pool))).toBe('[]');
  });

  it('several batches in flight build on each other without losing an update', async () => {
    const overlapping = new Ledger(pool, { ...DEFAULT_LEDGER_OPTIONS, max_in_flight: 4, max_batch: 5 });
    const all = [account(), account(), account(), account(AccountFlags.debits_must_not_exceed_credits)];
    await overlapping.createAccounts(all);
    const calls = Array.from({ length: 120 }, (_, i) => {
      const dr = all[i % all.length]!;
      const cr = all[(i + 1 + (i % 2)) % all.length]!;
      const pending = transfer(dr.id, cr.id, BigInt(1 + (i % 5)), {
        flags: i % 3 === 0 ? TransferFlags.pending : 0,
      });
      return [pending];
    });
    // A second process writing the same accounts makes batches fail their checks and forget
    // cached accounts while other batches are loading.
    const other = new Ledger(pool);
    const noise = Array.from({ length: 60 }, (_, i) => [transfer(all[i % 3]!.id, all[(i + 1) % 3]!.id, 1n)]);
    const [results, noise_results] = await Promise.all([
      Promise.all(calls.map((c) => overlapping.createTransfers(c))),
      Promise.all(noise.map((c) => other.createTransfers(c))),
    ]);
    expect(noise_results.flat().every((r) => r === 'ok')).toBe(true);
    expect(results.flat().filter((r) => r.endsWith('_not_found'))).toEqual([]);
    for (const [i, c] of noise.entries()) {
      calls.push(c);
      results.push(noise_results[i]!);
    }
    // Post every pending transfer that landed, all at once, again with batches overlapping.
    const posts = calls
      .filter((c, i) => results[i]![0] === 'ok' && c[0]!.flags === TransferFlags.pending)
      .map((c) =>
        transfer(ZERO_ID, ZERO_ID, null, {
          pending_id: c[0]!.id,
          flags: TransferFlags.post_pending_transfer,
          ledger: 0,
          code: 0,
        }),
      );
    const posted = await Promise.all(posts.map((p) => overlapping.createTransfers([p])));
    expect(posted.flat().every((r) => r === 'ok')).toBe(true);
    const debits = new Map<string, bigint>();
    calls.forEach((c, i) => {
      if (results[i]![0] !== 'ok') return;
      const t = c[0]!;
      debits.set(t.debit_account_id, (debits.get(t.debit_account_id) ?? 0n) + t.amount!);
    });
    for (const a of await overlapping.lookupAccounts(all.map((x) => x.id))) {
      expect(a.debits_posted + a.debits_pending, a.id).toBe(debits.get(a.id) ?? 0n);
      expect(a.debits_pending).toBe(0n);
    }
    expect(JSON.stringify(await verifyLedger(pool))).toBe('[]');
  });

  it('property: random concurrent batches (chains, pending, posts, voids, violations) keep every invariant', async () => {
    const accounts = [
      account(),
      account(),
      account(AccountFlags.debits_must_not_exceed_credits),
      account(AccountFlags.credits_must_not_exceed_debits),
      account(AccountFlags.history),
    ];
    await ledger.createAccounts(accounts);
    const pendings: string[] = [];
    const op = fc.record({
      dr: fc.nat(accounts.length - 1),
      cr: fc.nat(accounts.length - 1),
      amount: fc.bigInt(1n, 500n),
      kind: fc.constantFrom('plain', 'pending', 'post', 'void', 'balancing'),
      linked: fc.boolean(),
      pick: fc.nat(1_000),
    });
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.array(op, { minLength: 1, maxLength: 6 }), { minLength: 1, maxLength: 8 }),
        async (calls) => {
          await Promise.all(
            calls.map((ops) =>
              ledger.createTransfers(
                ops.map((o, i) => {
                  const flags = o.linked && i < ops.length - 1 ? TransferFlags.linked : 0;
                  const dr = accounts[o.dr]!.id;
                  const cr = accounts[o.cr]!.id;
                  if ((o.kind === 'post' || o.kind === 'void') && pendings.length > 0) {
                    const pending_id = pendings[o.pick % pendings.length]!;
                    const f =
                      o.kind === 'post'
                        ? TransferFlags.post_pending_transfer
                        : TransferFlags.void_pending_transfer;
                    return transfer(ZERO_ID, ZERO_ID, o.kind === 'post' ? o.amount : null, {
                      pending_id,
                      flags: flags | f,
                      ledger: 0,
                      code: 0,
                    });
                  }
                  if (o.kind === 'pending') {
                    const t = transfer(dr, cr, o.amount, { flags: flags | TransferFlags.pending });
                    pendings.push(t.id);
                    return t;
                  }
                  const balancing = o.kind === 'balancing' ? TransferFlags.balancing_debit : 0;
                  return transfer(dr, cr, o.amount, { flags: flags | balancing });
                }),
              ),
            ),
          );
          expect(JSON.stringify(await verifyLedger(pool))).toBe('[]');
        },
      ),
      { numRuns: Number(process.env.FUZZ_RUNS ?? 30) },
    );
  });
});
