import pg from 'pg';
import { AUDIT_CASTS, AUDIT_COLUMNS, type AuditEntry, auditInsert, auditValues } from '../audit/index.ts';
import { BatchOutcomeUnknown, GroupCommit, type GroupCommitOptions } from '../db/group-commit.ts';
import { deleteInBatches, type Pool, type Statement } from '../db/pool.ts';
import { assert, serviceUnavailable } from '../lib/errors.ts';
import { newId } from '../lib/ids.ts';
import type { Logger } from '../ops/logger.ts';
import { keyedHash, newDataKey, open, seal, VaultIntegrityError } from './crypto.ts';
import { type KeyProvider, KeyringMismatch, kekCheckValue, UnknownKekVersion } from './keys.ts';
import { isRetiredKekWrite } from './rotate.ts';

/** Whose card: every vault operation is scoped to one merchant and mode. */
export interface VaultScope {
  merchant_id: string;
  livemode: boolean;
}

/** Who touches card data, for the audit log (PCI DSS 10.2.1.1). */
export interface VaultActor {
  /** `api_key:<id>`, `operator:<id>`, `job:<name>`, `cli`. */
  actor: string;
  /** IP address, `cli`, `job:<name>`. */
  origin: string;
}

export interface SealedCard {
  card_id: string;
  /** Keyed per merchant: the same card gives the same value, and it reveals nothing. */
  fingerprint: string;
  /** Insert the card (and its CVC); commit them with the rows that refer to the card. */
  writes: Statement[];
}

/** A card in clear, only inside `useCard`'s callback. */
export interface CardInClear {
  number: string;
  /** Null when none was given, or it expired, or an authorization already used it. */
  cvc: string | null;
}

export interface CardUse extends VaultActor {
  card_id: string;
  /** Why the card is opened, e.g. `authorization`; recorded in the audit log. */
  purpose: string;
  /** An authorization: the CVC is destroyed after this use, whatever its outcome. */
  consume_cvc: boolean;
}

export interface VaultOptions {
  /** How long an unused CVC is kept (PCI DSS 3.3.1.2: never after authorization). */
  cvc_ttl_s: number;
  log: Logger;
}

const CVC_DELETE_BATCH = 1_000;
/**
 * A data key seals at most this many values, and for at most this long: far below AES-GCM's
 * limit for random nonces (2^32 per key), and a bound on how much one key opens.
 */
const DATA_KEY_MAX_SEALS = 10_000;
const DATA_KEY_MAX_AGE_MS = 3_600_000;
/** The next data key is made ahead when the current one has this few seals or this long left. */
const DATA_KEY_RENEW_SEALS = 1_000;
const DATA_KEY_RENEW_MS = 300_000;
/** Unwrapped batch keys kept for opening cards (each opens up to DATA_KEY_MAX_SEALS of them). */
const OPEN_KEY_CACHE = 64;

type DataKeyPurpose = 'pan' | 'cvc';

/** The data key this process seals new values of one purpose under. */
interface SealingKey {
  id: string;
  key: Buffer;
  seals_left: number;
  until_ms: number;
}

function usable(key: SealingKey | null): key is SealingKey {
  return key !== null && key.seals_left > 0 && Date.now() < key.until_ms;
}

function nearlySpent(key: SealingKey): boolean {
  return key.seals_left <= DATA_KEY_RENEW_SEALS || Date.now() >= key.until_ms - DATA_KEY_RENEW_MS;
}

/** How a stored value's data key is kept: a batch key by id, or (older rows) a key of its own. */
interface StoredKey {
  data_key_id: string | null;
  kek_version: number;
  wrapped: Buffer;
}

const FINGERPRINT_CHARS = 16;
const BASE62 = '0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz';

/** What each sealed value is bound to (its AES-GCM additional data). */
const panContext = (card_id: string) => `pan:${card_id}`;
const cvcContext = (card_id: string) => `cvc:${card_id}`;
/** What a batch data key is bound to when wrapped under the KEK. */
const dataKeyContext = (id: string) => `dek:${id}`;

/**
 * The one place card numbers exist. Card numbers and CVCs are sealed under data keys (one
 * for numbers, one for CVCs, each used for a bounded batch), which are wrapped under the
 * current KEK version; the database holds only ciphertext and wrapped keys, and the KEK
 * never enters it. Card data leaves only through `useCard`, which
 * records every use in the audit log.
 */
export class Vault {
  private refresh_timer: NodeJS.Timeout | null = null;
  /**
   * Card reads that arrive together share one statement, which also takes their CVCs and
   * appends their audit rows: one by one, each read was a commit of its own and its audit
   * row another, and the audit chain's lock paced every payment.
   */
  private readonly reads: GroupCommit<CardRead, CardRow | null>;
  private readonly sealing: Record<DataKeyPurpose, SealingKey | null> = { pan: null, cvc: null };
  /** Made ahead, committed, and current once `sealing` is spent. */
  private readonly upcoming: Record<DataKeyPurpose, SealingKey | null> = { pan: null, cvc: null };
  private readonly creating: Record<DataKeyPurpose, Promise<void> | null> = { pan: null, cvc: null };
  private readonly open_keys = new Map<string, Buffer>();

  constructor(
    private readonly pool: Pool,
    readonly keys: KeyProvider,
    private readonly opts: VaultOptions,
  ) {
    this.reads = new GroupCommit(
      CARD_READ_BATCH,
      (jobs) =>
        this.readCards(jobs).catch((err) => {
          // No answer from the database: the statement may have committed (CVCs taken, uses
          // audited), so its reads must not run again; each fails with the error instead.
          throw err instanceof pg.DatabaseError ? err : new BatchOutcomeUnknown(err);
        }),
      async (job) => (await this.readCards([job]))[0]!,
      (job) => job.use.card_id,
    );
  }

  /**
   * Notices, within `interval_ms`, a KEK version that a rotation in another process added,
   * so new cards are wrapped under it (the rotation waits at least this long before it
   * forbids the old version).
   */
  startRefresh(interval_ms: number): void {
    assert(this.refresh_timer === null, 'one refresh timer');
    this.refresh_timer = setInterval(() => {
      this.refreshKeys().catch((err) => this.opts.log.warn({ err }, 'could not check for a new KEK version'));
    }, interval_ms);
    this.refresh_timer.unref();
  }

  stop(): void {
    if (this.refresh_timer) clearInterval(this.refresh_timer);
    this.refresh_timer = null;
  }

  async refreshKeys(): Promise<void> {
    const { rows } = await this.pool.query(
      'SELECT max(version) AS version FROM vault_kek_versions WHERE retired_at IS NULL',
    );
    const newest = rows[0]?.version as number | null;
    if (newest !== null && newest > this.keys.currentVersion()) await this.keys.reload();
  }

  /**
   * Checks at start that the keyring is the one this database was written with (each
   * version's check value opens), and records the current version if it is new.
   */
  async checkKeyring(): Promise<void> {
    const { rows } = await this.pool.query(
      'SELECT version, check_value FROM vault_kek_versions WHERE retired_at IS NULL ORDER BY version',
    );
    for (const row of rows) {
      const version = row.version as number;
      if (!this.keys.versions().includes(version)) await this.keys.reload();
      if (!this.keys.versions().includes(version)) {
        const used = await this.pool.query(
          `SELECT 1 FROM vault_data_keys WHERE kek_version = $1
           UNION ALL SELECT 1 FROM vault_cards WHERE kek_version = $1 LIMIT 1`,
          [version],
        );
        if (used.rowCount) throw new UnknownKekVersion(version, this.keys.source);
        continue;
      }
      try {
        await this.keys.unwrap(
          { kek_version: version, wrapped: row.check_value as Buffer },
          `check:v${version}`,
        );
      } catch (err) {
        if (err instanceof VaultIntegrityError) throw new KeyringMismatch(version, this.keys.source);
        throw err;
      }
    }
    await this.recordVersion(this.keys.currentVersion());
  }

  /** Stores the check value of `version` (the current one) unless it is there already. */
  async recordVersion(version: number): Promise<void> {
    assert(version === this.keys.currentVersion(), 'only the current version is recorded');
    await this.pool.query(
      'INSERT INTO vault_kek_versions (version, check_value) VALUES ($1, $2) ON CONFLICT (version) DO NOTHING',
      [version, await kekCheckValue(this.keys, version)],
    );
  }

  fingerprint(scope: VaultScope, number: string): string {
    const mac = keyedHash(this.keys.fingerprintKey(), 'card', scope.merchant_id, number);
    let n = mac.readBigUInt64BE(0) ^ (mac.readBigUInt64BE(8) << 1n);
    let out = '';
    for (let i = 0; i < FINGERPRINT_CHARS; i += 1) {
      out += BASE62[Number(n % 62n)];
      n /= 62n;
    }
    return out;
  }

  /** Seals a card (and its CVC, if given) and returns the inserts; nothing is written yet. */
  async sealCard(scope: VaultScope, card: { number: string; cvc: string | null }): Promise<SealedCard> {
    assert(/^\d{12,19}$/.test(card.number), 'the card number was validated');
    const card_id = newId('card');
    const pan_key = this.takeSealingKey('pan') ?? (await this.nextSealingKey('pan'));
    const writes: Statement[] = [
      {
        name: 'moneta_vault_insert_card',
        text: `INSERT INTO vault_cards (id, merchant_id, livemode, data_key_id, pan) VALUES ($1, $2, $3, $4, $5)`,
        values: [
          card_id,
          scope.merchant_id,
          scope.livemode,
          pan_key.id,
          sealText(pan_key.key, card.number, panContext(card_id)),
        ],
      },
    ];
    if (card.cvc !== null) {
      const cvc_key = this.takeSealingKey('cvc') ?? (await this.nextSealingKey('cvc'));
      writes.push({
        name: 'moneta_vault_insert_cvc',
        text: `INSERT INTO vault_cvcs (card_id, data_key_id, cvc, expires_at)
               VALUES ($1, $2, $3, now() + make_interval(secs => $4))`,
        values: [
          card_id,
          cvc_key.id,
          sealText(cvc_key.key, card.cvc, cvcContext(card_id)),
          this.opts.cvc_ttl_s,
        ],
      });
    }
    return { card_id, fingerprint: this.fingerprint(scope, card.number), writes };
  }

  /**
   * The current data key for `purpose` with one seal counted (the key made ahead becomes
   * current when this one is spent), or null when there is none to take.
   */
  private takeSealingKey(purpose: DataKeyPurpose): SealingKey | null {
    let current = this.sealing[purpose];
    if (!usable(current)) {
      current = this.upcoming[purpose];
      if (!usable(current)) return null;
      this.sealing[purpose] = current;
      this.upcoming[purpose] = null;
    }
    current.seals_left -= 1;
    // Made ahead, so requests rarely wait for a key's round trip at a roll-over.
    if (nearlySpent(current) && this.upcoming[purpose] === null) {
      this.makeUpcoming(purpose).catch((err) =>
        this.opts.log.warn(
          { err, purpose },
          'could not make the next data key ahead; will retry when needed',
        ),
      );
    }
    return current;
  }

  /** Waits for a new data key when none is current (a first seal, or one made ahead failed). */
  private async nextSealingKey(purpose: DataKeyPurpose): Promise<SealingKey> {
    // Callers that waited for a fresh key take a seal each; DATA_KEY_MAX_SEALS is far above
    // the requests that can be in flight, so one round almost always does.
    for (let round = 0; round < 4; round += 1) {
      await this.makeUpcoming(purpose);
      const key = this.takeSealingKey(purpose);
      if (key) return key;
    }
    throw new Error(`no ${purpose} data key could be made current`);
  }

  /** Makes the next data key for `purpose` (one at a time, however many callers ask). */
  private makeUpcoming(purpose: DataKeyPurpose): Promise<void> {
    this.creating[purpose] ??= this.createDataKey(purpose)
      .then((key) => {
        this.upcoming[purpose] = key;
      })
      .finally(() => {
        this.creating[purpose] = null;
      });
    return this.creating[purpose];
  }

  /**
   * A fresh data key, wrapped under the current KEK version and committed before any value
   * names it, so every stored value's key is there to open it. A rotation may have forbidden
   * the version this process holds as current: then reload the keys and wrap again, once.
   */
  private async createDataKey(purpose: DataKeyPurpose): Promise<SealingKey> {
    const id = newId('dek');
    const key = newDataKey();
    const insert = async () => {
      const wrapped = await this.keys.wrap(key, dataKeyContext(id));
      await this.pool.query({
        name: 'moneta_vault_insert_data_key',
        text: 'INSERT INTO vault_data_keys (id, purpose, kek_version, wrapped_key) VALUES ($1, $2, $3, $4)',
        values: [id, purpose, wrapped.kek_version, wrapped.wrapped],
      });
    };
    try {
      await insert();
    } catch (err) {
      if (!isRetiredKekWrite(err)) throw err;
      await this.keys.reload();
      await insert(); // once: a second refusal is an error
    }
    this.keepOpen(id, key);
    return { id, key, seals_left: DATA_KEY_MAX_SEALS, until_ms: Date.now() + DATA_KEY_MAX_AGE_MS };
  }

  /**
   * The only way to card data in clear: opens the card for `fn` (an acquirer call) and
   * records the use in the audit log (durably) before anything is decrypted, so even a use
   * that crashes is on record. With `consume_cvc`, the CVC is taken out of the vault by the
   * statement that reads it, whatever `fn` then does.
   * The clear values live in `fn`'s scope only; JavaScript strings cannot be wiped, so
   * callers must not keep or log them (logs redact card numbers anyway).
   */
  async useCard<T>(scope: VaultScope, use: CardUse, fn: (card: CardInClear) => Promise<T>): Promise<T> {
    // Checked now: a bad entry fails its caller, never the batch it would have joined.
    const audit = auditValues(cardUseEntry(scope, use));
    const row = await this.reads.submit({ scope, use, audit });
    // The statement that read the card recorded its use (durably) before anything is decrypted.
    if (!row) throw new CardNotInVault(use.card_id);
    const number = await this.openValue(
      { data_key_id: row.data_key_id, kek_version: row.kek_version, wrapped: row.wrapped_key },
      row.pan,
      panContext(use.card_id),
    );
    const cvc =
      row.cvc === null
        ? null
        : await this.openValue(
            {
              data_key_id: row.cvc_data_key_id,
              kek_version: row.cvc_kek_version,
              wrapped: row.cvc_wrapped_key,
            },
            row.cvc,
            cvcContext(use.card_id),
          );
    return fn({ number, cvc });
  }

  /** One statement for many reads: each job's card (null when not in the vault), in order. */
  private async readCards(jobs: CardRead[]): Promise<(CardRow | null)[]> {
    const audit = AUDIT_CASTS.map((_, c) => jobs.map((j) => j.audit[c]!));
    const { rows } = await this.pool.query({
      ...READ_CARDS,
      values: [
        jobs.map((j) => j.use.card_id),
        jobs.map((j) => j.scope.merchant_id),
        jobs.map((j) => j.scope.livemode),
        jobs.map((j) => j.use.consume_cvc),
        ...audit,
      ],
    });
    const found: (CardRow | null)[] = jobs.map(() => null);
    for (const row of rows as (CardRow & { n: string })[]) found[Number(row.n) - 1] = row;
    return found;
  }

  /** Whether the card still has a CVC to use (for `cvc_check`). */
  async hasCvc(card_id: string): Promise<boolean> {
    const { rowCount } = await this.pool.query(
      'SELECT 1 FROM vault_cvcs WHERE card_id = $1 AND expires_at > now()',
      [card_id],
    );
    return (rowCount ?? 0) > 0;
  }

  /**
   * Destroys a card: its ciphertext and CVC go (their data keys stay: they seal other cards
   * too, and without the ciphertext they open nothing); what referred to it keeps its id.
   */
  async deleteCard(scope: VaultScope, use: VaultActor & { card_id: string }): Promise<boolean> {
    // One statement: the card, its CVC and the payment methods' reference go together.
    const { rows } = await this.pool.query(
      `WITH card AS (DELETE FROM vault_cards WHERE id = $1 AND merchant_id = $2 AND livemode = $3 RETURNING id),
            cvc AS (DELETE FROM vault_cvcs WHERE card_id IN (SELECT id FROM card)),
            methods AS (UPDATE payment_methods SET vault_card_id = NULL WHERE vault_card_id IN (SELECT id FROM card))
       SELECT count(*)::int AS deleted FROM card`,
      [use.card_id, scope.merchant_id, scope.livemode],
    );
    const deleted = rows[0].deleted > 0;
    await this.pool.query(
      auditInsert({
        actor: use.actor,
        action: 'vault.card.delete',
        outcome: deleted ? 'success' : 'failure',
        origin: use.origin,
        merchant_id: scope.merchant_id,
        object_type: 'card',
        object_id: use.card_id,
      }),
    );
    return deleted;
  }

  /** Deletes CVCs past their time, at most `max_batches` batches; returns how many. */
  async expireCvcs(max_batches: number): Promise<number> {
    const deleted = await deleteInBatches(
      this.pool,
      `DELETE FROM vault_cvcs WHERE card_id IN
         (SELECT card_id FROM vault_cvcs WHERE expires_at <= now() LIMIT $1)`,
      [],
      CVC_DELETE_BATCH,
      max_batches,
    );
    if (deleted > 0) this.opts.log.info({ deleted }, 'expired CVCs destroyed');
    return deleted;
  }

  /**
   * Opens one sealed value. A batch data key is unwrapped once and then kept (at most
   * OPEN_KEY_CACHE of them): it opens every card sealed in its batch. A value sealed before
   * batch keys had a key of its own, bound to the same context as the value.
   */
  private async openValue(key: StoredKey, sealed: Buffer, context: string): Promise<string> {
    const own = key.data_key_id === null;
    const data_key = own
      ? await this.keys.unwrap({ kek_version: key.kek_version, wrapped: key.wrapped }, context)
      : await this.batchKey(key.data_key_id!, key);
    try {
      const clear = open(data_key, sealed, context);
      const text = clear.toString('utf8');
      clear.fill(0);
      return text;
    } finally {
      if (own) data_key.fill(0);
    }
  }

  private async batchKey(id: string, key: StoredKey): Promise<Buffer> {
    const cached = this.open_keys.get(id);
    if (cached) return cached;
    const data_key = await this.keys.unwrap(
      { kek_version: key.kek_version, wrapped: key.wrapped },
      dataKeyContext(id),
    );
    this.keepOpen(id, data_key);
    return data_key;
  }

  /** Keeps a batch key for opening (the keys this process makes go in too). */
  private keepOpen(id: string, data_key: Buffer): void {
    if (this.open_keys.size >= OPEN_KEY_CACHE) {
      // Oldest first (a Map keeps insertion order). Dropped, not zeroed: an openValue that
      // took it before an await may still be about to use it.
      this.open_keys.delete(this.open_keys.keys().next().value as string);
    }
    this.open_keys.set(id, data_key);
  }
}

/** A use's audit entry; READ_CARDS records `failure` instead when the card is not found. */
function cardUseEntry(scope: VaultScope, use: CardUse): AuditEntry {
  return {
    actor: use.actor,
    action: 'vault.card.use',
    outcome: 'success',
    origin: use.origin,
    merchant_id: scope.merchant_id,
    object_type: 'card',
    object_id: use.card_id,
    details: { purpose: use.purpose, consume_cvc: use.consume_cvc },
  };
}

/** Each value's data key: its batch key when it names one, else the key stored beside it. */
const CARD_COLUMNS = `c.data_key_id, coalesce(k.kek_version, c.kek_version) AS kek_version,
       coalesce(k.wrapped_key, c.wrapped_key) AS wrapped_key, c.pan,
       v.data_key_id AS cvc_data_key_id, coalesce(kv.kek_version, v.kek_version) AS cvc_kek_version,
       coalesce(kv.wrapped_key, v.wrapped_key) AS cvc_wrapped_key, v.cvc`;
const CARD_KEYS = `LEFT JOIN vault_data_keys k ON k.id = c.data_key_id
           LEFT JOIN vault_data_keys kv ON kv.id = v.data_key_id`;

/**
 * Reads cards, one row per card found (`n`: its job's place, from 1), and in the same
 * statement, so in the same commit:
 * - takes out the CVC of each read that consumes it: a CVC serves one authorization
 *   (PCI DSS 3.3.1.2), so it is destroyed as it is read, before the call, not after it. A
 *   repeat of the same call after a crash goes without it; the acquirer's inquiry settles
 *   that attempt by its reference;
 * - appends every read to the audit log, `failure` when the card was not found (another
 *   merchant's, or deleted). Unreferenced, that INSERT runs after the rest: it takes the
 *   audit chain's lock last, so the lock is held only for the commit.
 */
const READ_CARDS = {
  name: 'moneta_vault_read_cards',
  text: `WITH req AS (
           SELECT * FROM unnest($1::text[], $2::text[], $3::boolean[], $4::boolean[],
                                ${AUDIT_CASTS.map((c, i) => `$${i + 5}::${c}[]`).join(', ')})
                    WITH ORDINALITY AS r(card_id, req_merchant_id, req_livemode, consume,
                                         ${AUDIT_COLUMNS.split(', ')
                                           .map((c) => `a_${c}`)
                                           .join(', ')}, n)),
         found AS (
           SELECT r.n, r.consume, c.*
             FROM req r
             JOIN vault_cards c ON c.id = r.card_id AND c.merchant_id = r.req_merchant_id
                               AND c.livemode = r.req_livemode
            -- Said again as a filter on the table, so even a generic plan made while the
            -- table was small looks the cards up by key instead of scanning them all.
            WHERE c.id = ANY($1::text[])),
         taken AS (
           DELETE FROM vault_cvcs d USING found f
            WHERE d.card_id = f.id AND f.consume AND d.card_id = ANY($1::text[])
           RETURNING d.card_id, d.data_key_id, d.kek_version, d.wrapped_key, d.cvc, d.expires_at),
         cvcs AS (
           SELECT card_id, data_key_id, kek_version, wrapped_key, cvc FROM taken WHERE expires_at > now()
           UNION ALL
           SELECT d.card_id, d.data_key_id, d.kek_version, d.wrapped_key, d.cvc
             FROM vault_cvcs d JOIN found f ON d.card_id = f.id AND NOT f.consume
            WHERE d.expires_at > now() AND d.card_id = ANY($1::text[])),
         audit AS (
           INSERT INTO audit_log (${AUDIT_COLUMNS})
           SELECT r.a_actor, r.a_action, CASE WHEN f.n IS NULL THEN 'failure' ELSE 'success' END,
                  r.a_origin, r.a_merchant_id, r.a_object_type, r.a_object_id, r.a_details
             FROM req r LEFT JOIN found f ON f.n = r.n
            ORDER BY r.n)
         SELECT c.n, ${CARD_COLUMNS}
           FROM found c
           LEFT JOIN cvcs v ON v.card_id = c.id
           ${CARD_KEYS}`,
};

/** Card reads at once: enough to cover a batch of payments, few enough to keep a statement short. */
const CARD_READ_BATCH: GroupCommitOptions = {
  max_batch: 64,
  max_in_flight: 2,
  max_queued: 10_000,
  refuse: () => serviceUnavailable('The card vault is behind; retry in a moment.'),
};

interface CardRead {
  scope: VaultScope;
  use: CardUse;
  /** The use's audit entry as column values (its outcome is decided by the read). */
  audit: (string | null)[];
}

// biome-ignore lint/suspicious/noExplicitAny: a row of READ_CARDS, read by column name
type CardRow = Record<string, any>;

/** AES-256-GCM under a batch data key; the clear bytes are wiped (the string cannot be). */
function sealText(key: Buffer, text: string, context: string): Buffer {
  const clear = Buffer.from(text, 'utf8');
  try {
    return seal(key, clear, context);
  } finally {
    clear.fill(0);
  }
}

export class CardNotInVault extends Error {
  constructor(card_id: string) {
    super(`card ${card_id} is not in the vault (deleted, or another merchant's)`);
    this.name = 'CardNotInVault';
  }
}
