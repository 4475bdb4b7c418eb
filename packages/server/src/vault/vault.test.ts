import { randomBytes } from 'node:crypto';
import { mkdtemp, readFile, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase } from '../../test/helpers.ts';
import { migrate } from '../db/migrate.ts';
import { createPool, type Pool, withTransaction } from '../db/pool.ts';
import { createMerchant } from '../merchants/index.ts';
import { createLogger } from '../ops/logger.ts';
import { newPaymentMethod } from '../payment-methods/service.ts';
import { checkCard } from './cards.ts';
import {
  CardNotInVault,
  EnvKeyProvider,
  FileKeyProvider,
  type KeyProvider,
  KeyringMismatch,
  UnknownKekVersion,
  Vault,
  VaultIntegrityError,
} from './index.ts';

let pool: Pool;
let drop: () => Promise<void>;
let scope: { merchant_id: string; livemode: boolean };
const log = createLogger('silent');
const actor = { actor: 'api_key:key_test', origin: '127.0.0.1' };

beforeAll(async () => {
  const db = await createTestDatabase();
  drop = db.drop;
  pool = createPool({ connection_string: db.url, max_connections: 8, application_name: 'vault-test' });
  await migrate(pool);
  scope = { merchant_id: (await createMerchant(pool, { name: 'Vault test' })).merchant.id, livemode: false };
});
afterAll(async () => {
  await pool?.end();
  await drop?.();
});

async function keyringFile(): Promise<string> {
  return path.join(await mkdtemp(path.join(tmpdir(), 'moneta-vault-test-')), 'keys', 'keyring.json');
}

async function storeCard(vault: Vault, number: string, cvc: string | null): Promise<string> {
  const sealed = await vault.sealCard(scope, { number, cvc });
  await withTransaction(pool, (tx) => tx.commit(sealed.writes));
  return sealed.card_id;
}

const use = (card_id: string, consume_cvc = false) => ({
  ...actor,
  card_id,
  purpose: 'authorization',
  consume_cvc,
});

describe('vault', () => {
  it('seals a card so the database holds no clear data, and opens it only through useCard, audited', async () => {
    const { provider } = await FileKeyProvider.open(await keyringFile());
    const vault = new Vault(pool, provider, { cvc_ttl_s: 3600, log });
    await vault.checkKeyring();
    const card_id = await storeCard(vault, '4242424242424242', '123');
    const { rows } = await pool.query(
      `SELECT c.*, v.cvc, k.kek_version AS pan_kek_version, kv.kek_version AS cvc_kek_version
         FROM vault_cards c JOIN vault_cvcs v ON v.card_id = c.id
         JOIN vault_data_keys k ON k.id = c.data_key_id JOIN vault_data_keys kv ON kv.id = v.data_key_id
        WHERE c.id = $1`,
      [card_id],
    );
    const stored =
      JSON.stringify(rows[0]) +
      (rows[0].pan as Buffer).toString('latin1') +
      (rows[0].cvc as Buffer).toString('latin1');
    expect(stored).not.toContain('4242424242424242');
    // Under batch data keys, the number's and the CVC's apart, each wrapped under KEK version 1.
    expect(rows[0]).toMatchObject({ pan_kek_version: 1, cvc_kek_version: 1, wrapped_key: null });
    expect(rows[0].data_key_id).not.toBe(rows[0].cvc_data_key_id);

    const seen = await vault.useCard(scope, use(card_id), async (card) => ({ ...card }));
    expect(seen).toEqual({ number: '4242424242424242', cvc: '123' });
    const audit = await pool.query(
      "SELECT actor, outcome, object_id, details FROM audit_log WHERE action = 'vault.card.use' AND object_id = $1",
      [card_id],
    );
    expect(audit.rows).toEqual([
      {
        actor: actor.actor,
        outcome: 'success',
        object_id: card_id,
        details: { purpose: 'authorization', consume_cvc: false },
      },
    ]);
  });

  it('destroys the CVC after the authorization that used it, even when that authorization failed', async () => {
    const vault = new Vault(pool, new EnvKeyProvider(`1:${key()}`, key()), { cvc_ttl_s: 3600, log });
    const card_id = await storeCard(vault, '5555555555554444', '737');
    await expect(
      vault.useCard(scope, use(card_id, true), async () => {
        throw new Error('acquirer timed out');
      }),
    ).rejects.toThrow('acquirer timed out');
    expect(await vault.hasCvc(card_id)).toBe(false);
    expect(await vault.useCard(scope, use(card_id, true), async (card) => card.cvc)).toBeNull();
  });

  it('reads that arrive together share one statement: each opens its own card, takes only its own CVC, and is audited', async () => {
    // Counts the statements the vault sends (the pool itself, seen through a proxy).
    let reads = 0;
    const counting = new Proxy(pool, {
      get(target, prop, receiver) {
        if (prop !== 'query') return Reflect.get(target, prop, receiver);
        return (statement: { name?: string }, ...rest: unknown[]) => {
          if (statement?.name === 'moneta_vault_read_cards') reads += 1;
          return (target.query as (...a: unknown[]) => unknown)(statement, ...rest);
        };
      },
    });
    const vault = new Vault(counting, new EnvKeyProvider(`1:${key()}`, key()), { cvc_ttl_s: 3600, log });
    const numbers = ['4242424242424242', '5555555555554444', '378282246310005', '6011111111111117'];
    const cards = await Promise.all(numbers.map((n, i) => storeCard(vault, n, `${100 + i}`)));
    const not_theirs = await storeCard(vault, '4000056655665556', null);
    const elsewhere = {
      merchant_id: (await createMerchant(pool, { name: 'Other' })).merchant.id,
      livemode: false,
    };
    const [seen, foreign] = await Promise.all([
      Promise.all(
        cards.map((card_id, i) =>
          vault.useCard(scope, use(card_id, i % 2 === 0), async (card) => ({ ...card })),
        ),
      ),
      vault.useCard(elsewhere, use(not_theirs), async () => 'opened').catch((err) => err),
    ]);
    expect(reads).toBe(1);
    expect(seen).toEqual(numbers.map((number, i) => ({ number, cvc: `${100 + i}` })));
    expect(foreign).toBeInstanceOf(CardNotInVault);
    // The consuming reads (0 and 2) took their CVCs; the others kept theirs.
    expect(await Promise.all(cards.map((c) => vault.hasCvc(c)))).toEqual([false, true, false, true]);
    const audit = await pool.query(
      `SELECT object_id, merchant_id, outcome, details->>'consume_cvc' AS consume
         FROM audit_log WHERE action = 'vault.card.use' AND object_id = ANY($1) ORDER BY seq`,
      [[...cards, not_theirs]],
    );
    expect(audit.rows).toHaveLength(5);
    expect(audit.rows).toEqual(
      expect.arrayContaining([
        ...cards.map((object_id, i) => ({
          object_id,
          merchant_id: scope.merchant_id,
          outcome: 'success',
          consume: String(i % 2 === 0),
        })),
        { object_id: not_theirs, merchant_id: elsewhere.merchant_id, outcome: 'failure', consume: 'false' },
      ]),
    );
  });

  it('destroys CVCs nobody used once they expire', async () => {
    const vault = new Vault(pool, new EnvKeyProvider(`1:${key()}`, key()), { cvc_ttl_s: 60, log });
    const card_id = await storeCard(vault, '4000056655665556', '321');
    await pool.query("UPDATE vault_cvcs SET expires_at = now() - interval '1 second' WHERE card_id = $1", [
      card_id,
    ]);
    expect(await vault.useCard(scope, use(card_id), async (card) => card.cvc)).toBeNull();
    expect(await vault.expireCvcs(10)).toBeGreaterThanOrEqual(1);
    expect((await pool.query('SELECT 1 FROM vault_cvcs WHERE card_id = $1', [card_id])).rowCount).toBe(0);
  });

  it('a data key moved to another key row opens nothing', async () => {
    const vault = new Vault(pool, new EnvKeyProvider(`1:${key()}`, key()), { cvc_ttl_s: 60, log });
    const other = new Vault(pool, vault.keys, { cvc_ttl_s: 60, log });
    const a = await storeCard(vault, '4242424242424242', null);
    const b = await storeCard(other, '5555555555554444', null);
    const { rows } = await pool.query('SELECT id, data_key_id FROM vault_cards WHERE id = ANY($1)', [[a, b]]);
    const dek = Object.fromEntries(rows.map((r) => [r.id, r.data_key_id]));
    // The wrapped key of b's batch copied over a's: it is bound to its own id.
    await pool.query(
      'UPDATE vault_data_keys SET wrapped_key = (SELECT wrapped_key FROM vault_data_keys WHERE id = $1) WHERE id = $2',
      [dek[b], dek[a]],
    );
    const fresh = new Vault(pool, vault.keys, { cvc_ttl_s: 60, log }); // nothing cached
    await expect(fresh.useCard(scope, use(a), async (c) => c.number)).rejects.toBeInstanceOf(
      VaultIntegrityError,
    );
  });

  it('a ciphertext moved to another card, or another merchant asking, opens nothing', async () => {
    const vault = new Vault(pool, new EnvKeyProvider(`1:${key()}`, key()), { cvc_ttl_s: 60, log });
    const a = await storeCard(vault, '4242424242424242', null);
    const b = await storeCard(vault, '5555555555554444', null);
    await pool.query(
      'UPDATE vault_cards SET pan = (SELECT pan FROM vault_cards WHERE id = $1), data_key_id = (SELECT data_key_id FROM vault_cards WHERE id = $1) WHERE id = $2',
      [a, b],
    );
    await expect(vault.useCard(scope, use(b), async (c) => c.number)).rejects.toBeInstanceOf(
      VaultIntegrityError,
    );
    const other = { merchant_id: scope.merchant_id, livemode: true };
    await expect(vault.useCard(other, use(a), async (c) => c.number)).rejects.toThrow(/not in the vault/);
    const denied = await pool.query(
      "SELECT outcome FROM audit_log WHERE object_id = $1 AND outcome = 'failure'",
      [a],
    );
    expect(denied.rowCount).toBe(1);
  });

  it('refuses to start with a keyring that is not the one the database was written with', async () => {
    await pool.query('DELETE FROM vault_kek_versions');
    const file = await keyringFile();
    const { provider } = await FileKeyProvider.open(file);
    const vault = new Vault(pool, provider, { cvc_ttl_s: 60, log });
    await vault.checkKeyring();
    // A fresh keyring has version 1 too, but its check value does not open.
    const stranger = new Vault(pool, (await FileKeyProvider.open(await keyringFile())).provider, {
      cvc_ttl_s: 60,
      log,
    });
    await expect(stranger.checkKeyring()).rejects.toBeInstanceOf(KeyringMismatch);
    // A keyring without a version that still wraps cards names the fix.
    await pool.query(
      'UPDATE vault_data_keys SET kek_version = 7 WHERE id = (SELECT id FROM vault_data_keys LIMIT 1)',
    );
    await pool.query("INSERT INTO vault_kek_versions (version, check_value) VALUES (7, '\\x00')");
    await expect(vault.checkKeyring()).rejects.toBeInstanceOf(UnknownKekVersion);
    await pool.query('DELETE FROM vault_kek_versions WHERE version = 7');
    await pool.query('UPDATE vault_data_keys SET kek_version = 1 WHERE kek_version = 7');
    // The keyring file is private to its owner and says it is for development.
    expect((await stat(file)).mode & 0o777).toBe(0o600);
    expect(JSON.parse(await readFile(file, 'utf8')).warning).toMatch(/Production needs a managed/);
  });

  it('deleting a card destroys it with its CVC, and payment methods no longer point at it', async () => {
    const vault = new Vault(pool, new EnvKeyProvider(`1:${key()}`, key()), { cvc_ttl_s: 60, log });
    const card = checkCard({ number: '4242424242424242', exp_month: 12, exp_year: 2034, cvc: '123' });
    const sealed = await vault.sealCard(scope, card);
    const { row, insert } = newPaymentMethod(scope, { card }, sealed);
    await withTransaction(pool, (tx) => tx.commit([...sealed.writes, insert]));
    // Another merchant cannot delete it.
    expect(
      await vault.deleteCard({ ...scope, merchant_id: 'acct_other' }, { ...actor, card_id: sealed.card_id }),
    ).toBe(false);
    expect(await vault.deleteCard(scope, { ...actor, card_id: sealed.card_id })).toBe(true);
    const left = await pool.query(
      `SELECT (SELECT count(*) FROM vault_cards WHERE id = $1)::int AS cards,
              (SELECT count(*) FROM vault_cvcs WHERE card_id = $1)::int AS cvcs,
              (SELECT vault_card_id FROM payment_methods WHERE id = $2) AS reference`,
      [sealed.card_id, row.id],
    );
    expect(left.rows[0]).toEqual({ cards: 0, cvcs: 0, reference: null });
    await expect(vault.useCard(scope, use(sealed.card_id), async (c) => c.number)).rejects.toBeInstanceOf(
      CardNotInVault,
    );
    const audit = await pool.query(
      "SELECT outcome FROM audit_log WHERE action = 'vault.card.delete' AND object_id = $1 ORDER BY seq",
      [sealed.card_id],
    );
    expect(audit.rows.map((r) => r.outcome)).toEqual(['failure', 'success']);
  });

  it('seals under one data key per batch: 10,000 numbers share one, the next gets a new one, made once for concurrent callers', async () => {
    const vault = new Vault(pool, new EnvKeyProvider(`1:${key()}`, key()), { cvc_ttl_s: 60, log });
    const keyOf = (s: { writes: { values: unknown[] }[] }) => s.writes[0]!.values[3] as string;
    // Concurrent first seals wait for one key, not one each.
    const first = await Promise.all(
      Array.from({ length: 50 }, () => vault.sealCard(scope, { number: '4242424242424242', cvc: '123' })),
    );
    expect(new Set(first.map(keyOf)).size).toBe(1);
    expect(new Set(first.map((s) => s.writes[1]!.values[1])).size).toBe(1); // the CVCs' own key
    expect(first[0]!.writes[1]!.values[1]).not.toBe(keyOf(first[0]!));
    let last = first[0]!;
    for (let i = 50; i <= 10_000; i += 1)
      last = await vault.sealCard(scope, { number: '5555555555554444', cvc: null });
    expect(keyOf(last)).not.toBe(keyOf(first[0]!));
    const keys = await pool.query('SELECT id, purpose FROM vault_data_keys WHERE id = ANY($1)', [
      [keyOf(first[0]!), keyOf(last)],
    ]);
    expect(keys.rows.map((r) => r.purpose)).toEqual(['pan', 'pan']);
    // Both open: the first batch's card and the one under the key made ahead.
    await withTransaction(pool, (tx) => tx.commit([...first[0]!.writes, ...last.writes]));
    expect(await vault.useCard(scope, use(first[0]!.card_id), async (c) => c.number)).toBe(
      '4242424242424242',
    );
    expect(await vault.useCard(scope, use(last.card_id), async (c) => c.number)).toBe('5555555555554444');
  });

  it('fingerprints are keyed: the same card gives the same value per merchant and reveals nothing', async () => {
    const keys: KeyProvider = new EnvKeyProvider(`1:${key()}`, key());
    const vault = new Vault(pool, keys, { cvc_ttl_s: 60, log });
    const again = new Vault(pool, new EnvKeyProvider(`1:${key()}`, key()), { cvc_ttl_s: 60, log });
    const f = vault.fingerprint(scope, '4242424242424242');
    expect(vault.fingerprint(scope, '4242424242424242')).toBe(f);
    expect(vault.fingerprint({ ...scope, merchant_id: 'acct_other' }, '4242424242424242')).not.toBe(f);
    expect(again.fingerprint(scope, '4242424242424242')).not.toBe(f);
  });
});

function key(): string {
  return randomBytes(32).toString('base64');
}
