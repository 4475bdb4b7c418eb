import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { call, startTestMoneta, type TestMoneta, testKeyringFile } from '../../test/helpers.ts';
import { type Statement, withTransaction } from '../db/pool.ts';
import { newId } from '../lib/ids.ts';
import { createLogger } from '../ops/logger.ts';
import { newDataKey, open, seal } from './crypto.ts';
import { FileKeyProvider, type KeyProvider, type RotationProgress, rotateKek, Vault } from './index.ts';

/** Half sealed by the vault (under batch data keys), half as before batch keys (a key each). */
const CARDS = 10_000;
const SEED_BATCH = 500;
const VISA = 'type=card&card[number]=4242424242424242&card[exp_month]=12&card[exp_year]=2034&card[cvc]=123';

let t: TestMoneta;
let scope: { merchant_id: string; livemode: boolean };
beforeAll(async () => {
  t = await startTestMoneta({
    MONETA_KEK_REFRESH_MS: '100',
    MONETA_RATE_LIMIT_PER_SECOND: '100000',
    MONETA_RATE_LIMIT_BURST: '100000',
  });
  scope = { merchant_id: t.merchant_id, livemode: false };
});
afterAll(async () => t?.close());

/** Test card numbers that differ per index: 16 digits, Luhn-valid. */
function cardNumber(i: number): string {
  const body = `400000${String(i).padStart(9, '0')}`;
  let sum = 0;
  for (let k = 0; k < body.length; k += 1) {
    let d = Number(body[body.length - 1 - k]);
    if (k % 2 === 0) d = d * 2 > 9 ? d * 2 - 9 : d * 2;
    sum += d;
  }
  return body + String((10 - (sum % 10)) % 10);
}

/**
 * A card as the vault stored it before migration 0009: the number and the CVC each under a
 * data key of its own, wrapped beside it. Databases written then still hold such rows.
 */
async function sealWithOwnKeys(
  keys: KeyProvider,
  number: string,
): Promise<{ card_id: string; writes: Statement[] }> {
  const card_id = newId('card');
  const own = async (clear: string, context: string) => {
    const data_key = newDataKey();
    return { key: await keys.wrap(data_key, context), sealed: seal(data_key, Buffer.from(clear), context) };
  };
  const pan = await own(number, `pan:${card_id}`);
  const cvc = await own('123', `cvc:${card_id}`);
  return {
    card_id,
    writes: [
      {
        text: `INSERT INTO vault_cards (id, merchant_id, livemode, kek_version, wrapped_key, pan)
               VALUES ($1, $2, $3, $4, $5, $6)`,
        values: [card_id, scope.merchant_id, false, pan.key.kek_version, pan.key.wrapped, pan.sealed],
      },
      {
        text: `INSERT INTO vault_cvcs (card_id, kek_version, wrapped_key, cvc, expires_at)
               VALUES ($1, $2, $3, $4, now() + interval '1 hour')`,
        values: [card_id, cvc.key.kek_version, cvc.key.wrapped, cvc.sealed],
      },
    ],
  };
}

async function seed(): Promise<Map<string, string>> {
  const numbers = new Map<string, string>();
  for (let start = 0; start < CARDS; start += SEED_BATCH) {
    const sealed = await Promise.all(
      Array.from({ length: SEED_BATCH }, async (_, k) => {
        const number = cardNumber(start + k);
        const card =
          start < CARDS / 2
            ? await t.moneta.vault.sealCard(scope, { number, cvc: '123' })
            : await sealWithOwnKeys(t.moneta.vault.keys, number);
        numbers.set(card.card_id, number);
        return card;
      }),
    );
    await withTransaction(t.pool, async (tx) => {
      await Promise.all(sealed.flatMap((c) => c.writes.map((w) => tx.query(w))));
    });
  }
  return numbers;
}

const reader = { actor: 'system', origin: 'test', purpose: 'rotation-test', consume_cvc: false };

/** Tokenizes and reads cards until stopped; collects every failure. */
function backgroundLoad(card_ids: string[]) {
  let running = true;
  const failures: string[] = [];
  let tokenized = 0;
  let read = 0;
  const tokenize = async () => {
    while (running) {
      const res = await call(t.url, 'POST', '/v1/payment_methods', { key: t.publishable_key, form: VISA });
      if (res.status === 200) tokenized += 1;
      else failures.push(`tokenize ${res.status} ${res.text}`);
    }
  };
  const reader = async () => {
    for (let i = 0; running; i += 1) {
      const card_id = card_ids[(i * 7919) % card_ids.length]!;
      try {
        await t.moneta.vault.useCard(
          scope,
          { actor: 'system', origin: 'test', card_id, purpose: 'rotation-test', consume_cvc: false },
          async (card) => {
            if (!/^\d{16}$/.test(card.number)) failures.push(`read ${card_id}: bad number`);
          },
        );
        read += 1;
      } catch (err) {
        failures.push(`read ${card_id}: ${(err as Error).message}`);
      }
    }
  };
  const done = Promise.all([tokenize(), tokenize(), reader()]);
  return {
    failures,
    counts: () => ({ tokenized, read }),
    stop: async () => {
      running = false;
      await done;
    },
  };
}

/** Wrapped data keys per KEK version: batch keys, and the keys of cards and CVCs of their own. */
async function versionCounts(): Promise<Record<number, number>> {
  const { rows } = await t.pool.query(
    `SELECT kek_version, count(*)::int AS n FROM
       (SELECT kek_version FROM vault_data_keys
        UNION ALL SELECT kek_version FROM vault_cards WHERE wrapped_key IS NOT NULL
        UNION ALL SELECT kek_version FROM vault_cvcs WHERE wrapped_key IS NOT NULL) k GROUP BY 1`,
  );
  return Object.fromEntries(rows.map((r) => [r.kek_version, r.n]));
}

/** Opens every card number straight from the tables with `keys` (no vault, no cache). */
async function openAll(keys: KeyProvider): Promise<Map<string, string>> {
  const { rows } = await t.pool.query(
    `SELECT c.id, c.pan, c.data_key_id, coalesce(k.kek_version, c.kek_version) AS kek_version,
            coalesce(k.wrapped_key, c.wrapped_key) AS wrapped_key
       FROM vault_cards c LEFT JOIN vault_data_keys k ON k.id = c.data_key_id`,
  );
  const out = new Map<string, string>();
  const batch_keys = new Map<string, Buffer>();
  for (const r of rows) {
    const context = `pan:${r.id}`;
    const wrapped = { kek_version: r.kek_version, wrapped: r.wrapped_key };
    let data_key = r.data_key_id === null ? null : batch_keys.get(r.data_key_id);
    if (!data_key) {
      data_key = await keys.unwrap(wrapped, r.data_key_id === null ? context : `dek:${r.data_key_id}`);
      if (r.data_key_id !== null) batch_keys.set(r.data_key_id, data_key);
    }
    out.set(r.id, open(data_key, r.pan, context).toString('utf8'));
  }
  return out;
}

describe('KEK rotation', () => {
  it('re-wraps 10,000 cards while others tokenize and read, survives an interruption, and retires the old key', async () => {
    const numbers = await seed();
    // The rotation runs as `moneta keys rotate-kek` would: its own provider on the same keyring.
    const keys = (await FileKeyProvider.open(testKeyringFile(t.db_url))).provider;
    expect(keys.versions()).toEqual([1]);
    const load = backgroundLoad([...numbers.keys()]);

    const interrupt = new AbortController();
    const seen: RotationProgress[] = [];
    await expect(
      rotateKek(t.pool, keys, {
        batch_size: 500,
        settle_ms: 300,
        actor: 'cli',
        origin: 'cli',
        signal: interrupt.signal,
        on_progress: (p) => {
          seen.push(p);
          if (p.phase === 'rewrap' && p.done >= 4_000) interrupt.abort(new Error('operator pressed Ctrl-C'));
        },
      }),
    ).rejects.toThrow('Ctrl-C');
    const halfway = await versionCounts();
    expect(halfway[2]).toBeGreaterThanOrEqual(4_000);
    expect(halfway[1]).toBeGreaterThan(0);
    expect(seen.every((p) => p.done <= p.total)).toBe(true);

    const result = await rotateKek(t.pool, keys, {
      batch_size: 500,
      settle_ms: 300,
      actor: 'cli',
      origin: 'cli',
    });
    expect(result).toMatchObject({ version: 2, added: false, retired: [1] });
    await load.stop();
    expect(load.failures).toEqual([]);
    expect(load.counts().tokenized).toBeGreaterThan(0);
    expect(load.counts().read).toBeGreaterThan(0);

    // Nothing is left under version 1, and version 1's key is gone from the keyring.
    expect(Object.keys(await versionCounts())).toEqual(['2']);
    expect((await FileKeyProvider.open(testKeyringFile(t.db_url))).provider.versions()).toEqual([2]);
    const retired = await t.pool.query('SELECT version FROM vault_kek_versions WHERE retired_at IS NOT NULL');
    expect(retired.rows).toEqual([{ version: 1 }]);
    // Every card opens under the new key and is the card that was stored.
    const opened = await openAll(keys);
    for (const [id, number] of numbers) expect(opened.get(id)).toBe(number);
    expect(opened.size).toBe(numbers.size + load.counts().tokenized);
    // The running service picked up the new version: new cards are wrapped under it.
    const after = await call(t.url, 'POST', '/v1/payment_methods', { key: t.publishable_key, form: VISA });
    expect(after.status).toBe(200);
    expect(Object.keys(await versionCounts())).toEqual(['2']);
    const audit = await t.pool.query("SELECT details FROM audit_log WHERE action = 'kek.rotate'");
    expect(audit.rows).toEqual([{ details: { retired: [1], rewrapped: expect.any(Number) } }]);
  });

  it('a process making a data key under a version a rotation forbade reloads its keys and wraps again', async () => {
    // This process loaded the keyring before the rotation added a version.
    const stale = (await FileKeyProvider.open(testKeyringFile(t.db_url))).provider;
    const keys = (await FileKeyProvider.open(testKeyringFile(t.db_url))).provider;
    const next = await keys.addVersion();
    // What the rotation does after its settle time, before this process noticed the new version.
    await t.pool.query(
      `ALTER TABLE vault_data_keys DROP CONSTRAINT IF EXISTS vault_data_keys_kek_current,
         ADD CONSTRAINT vault_data_keys_kek_current CHECK (kek_version >= ${next}) NOT VALID`,
    );
    expect(stale.currentVersion()).toBeLessThan(next);
    const vault = new Vault(t.pool, stale, { cvc_ttl_s: 60, log: createLogger('silent') });
    const card = await vault.sealCard(scope, { number: '4242424242424242', cvc: '123' });
    await withTransaction(t.pool, (tx) => tx.commit(card.writes));
    const { rows } = await t.pool.query(
      'SELECT k.kek_version FROM vault_cards c JOIN vault_data_keys k ON k.id = c.data_key_id WHERE c.id = $1',
      [card.card_id],
    );
    expect(rows).toEqual([{ kek_version: next }]);
    expect(await vault.useCard(scope, { ...reader, card_id: card.card_id }, async (c) => c.cvc)).toBe('123');
  });
});
