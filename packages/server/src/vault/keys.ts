import { randomBytes } from 'node:crypto';
import { chmod, mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { assert } from '../lib/errors.ts';
import { KEY_BYTES, keyedHash, open, seal } from './crypto.ts';

/** A data key as stored: wrapped (sealed) under one version of the key-encryption key. */
export interface WrappedKey {
  kek_version: number;
  wrapped: Buffer;
}

/**
 * Where the key-encryption key (KEK) lives. The vault only ever asks it to wrap and unwrap
 * data keys, so a KMS or HashiCorp Vault's transit engine can stand in for the local
 * keyring: the KEK itself never has to leave it.
 */
export interface KeyProvider {
  /** For messages: where the keys come from (never the keys). */
  readonly source: string;
  /** The version new data keys are wrapped under. */
  currentVersion(): number;
  /** Versions this provider can unwrap. */
  versions(): number[];
  wrap(data_key: Buffer, context: string): Promise<WrappedKey>;
  unwrap(key: WrappedKey, context: string): Promise<Buffer>;
  /** The secret for card fingerprints: separate from the KEK, and never rotated with it. */
  fingerprintKey(): Buffer;
  /** Reads the source again: another process may have added or retired a version. */
  reload(): Promise<void>;
  /** Adds a version and makes it current; throws saying what to do when the source is read-only. */
  addVersion(): Promise<number>;
  /** Destroys the key material of versions nothing is wrapped under any more. */
  retire(versions: readonly number[]): Promise<void>;
}

/** Binds a wrapped data key to its KEK version and to the value it protects. */
function wrapContext(version: number, context: string): string {
  return `moneta-dek:v${version}:${context}`;
}

interface Keyring {
  keys: Map<number, Buffer>;
  fingerprint_key: Buffer;
}

/** Wraps with AES-256-GCM under KEK versions held in this process (from a file or MONETA_KEK). */
abstract class LocalKeyProvider implements KeyProvider {
  protected ring: Keyring;

  constructor(
    readonly source: string,
    ring: Keyring,
  ) {
    assert(ring.keys.size > 0, 'a keyring holds at least one version');
    this.ring = ring;
  }

  currentVersion(): number {
    return Math.max(...this.ring.keys.keys());
  }

  versions(): number[] {
    return [...this.ring.keys.keys()].sort((a, b) => a - b);
  }

  async wrap(data_key: Buffer, context: string): Promise<WrappedKey> {
    const kek_version = this.currentVersion();
    const kek = this.ring.keys.get(kek_version)!;
    return { kek_version, wrapped: seal(kek, data_key, wrapContext(kek_version, context)) };
  }

  async unwrap(key: WrappedKey, context: string): Promise<Buffer> {
    let kek = this.ring.keys.get(key.kek_version);
    if (!kek) {
      // Another process (`moneta keys rotate-kek`) may have added it since we loaded.
      await this.reload();
      kek = this.ring.keys.get(key.kek_version);
    }
    if (!kek) throw new UnknownKekVersion(key.kek_version, this.source);
    return open(kek, key.wrapped, wrapContext(key.kek_version, context));
  }

  fingerprintKey(): Buffer {
    return this.ring.fingerprint_key;
  }

  abstract reload(): Promise<void>;
  abstract addVersion(): Promise<number>;
  abstract retire(versions: readonly number[]): Promise<void>;
}

export class UnknownKekVersion extends Error {
  constructor(version: number, source: string) {
    super(
      `card data is wrapped under KEK version ${version}, which ${source} does not hold; ` +
        'point MONETA_KEK_FILE (or MONETA_KEK) at the keyring this database was written with',
    );
    this.name = 'UnknownKekVersion';
  }
}

export class KeyringMismatch extends Error {
  constructor(version: number, source: string) {
    super(
      `KEK version ${version} of ${source} is not the key this database was written with (its check value ` +
        'does not open); point MONETA_KEK_FILE (or MONETA_KEK) at the keyring used before',
    );
    this.name = 'KeyringMismatch';
  }
}

const KEY_TEXT = /^[A-Za-z0-9+/]{43}=$/;

function decodeKey(text: string, what: string): Buffer {
  if (!KEY_TEXT.test(text)) throw new Error(`${what} is not a base64-encoded 32-byte key`);
  const key = Buffer.from(text, 'base64');
  assert(key.length === KEY_BYTES, 'a decoded key has 32 bytes');
  return key;
}

/** `MONETA_KEK=1:<base64>,2:<base64>`: versions fixed by the environment; the highest is current. */
export function parseKekList(text: string): Map<number, Buffer> {
  const keys = new Map<number, Buffer>();
  for (const part of text.split(',')) {
    const m = /^(\d{1,9}):(.+)$/.exec(part.trim());
    if (!m) throw new Error('MONETA_KEK must be VERSION:BASE64KEY[,VERSION:BASE64KEY…]');
    const version = Number(m[1]);
    if (version < 1 || keys.has(version))
      throw new Error(`MONETA_KEK: version ${m[1]} is invalid or repeated`);
    keys.set(version, decodeKey(m[2]!, `MONETA_KEK version ${version}`));
  }
  return keys;
}

/** Keys from MONETA_KEK and MONETA_FINGERPRINT_KEY: an operator (or their secret manager) owns them. */
export class EnvKeyProvider extends LocalKeyProvider {
  constructor(kek_list: string, fingerprint_key: string) {
    super('MONETA_KEK', {
      keys: parseKekList(kek_list),
      fingerprint_key: decodeKey(fingerprint_key, 'MONETA_FINGERPRINT_KEY'),
    });
  }

  async reload(): Promise<void> {}

  async addVersion(): Promise<number> {
    const next = this.currentVersion() + 1;
    throw new Error(
      `MONETA_KEK is set by the environment, so the vault cannot add a key to it. Add version ${next} ` +
        `(${next}:<32 random bytes, base64>) to MONETA_KEK on every Moneta process, restart them, then run ` +
        '`moneta keys rotate-kek` again: it re-wraps every data key under the highest version.',
    );
  }

  async retire(versions: readonly number[]): Promise<void> {
    // Nothing to destroy here; the operator removes them from the environment.
    for (const v of versions) this.ring.keys.delete(v);
  }
}

interface KeyringFile {
  format: 1;
  warning: string;
  keys: Record<string, string>;
  fingerprint_key: string;
}

const DEV_WARNING =
  'Development keyring generated by Moneta. Production needs a managed key-encryption key ' +
  '(MONETA_KEK from a secret manager, or a KMS-backed KeyProvider) kept apart from the database and its backups.';

/**
 * A keyring file (mode 0600) outside the database directory. Made on first use in
 * development; rotation adds versions to it and retirement removes them. Written to a
 * temporary file and renamed, so a crash never leaves half a keyring.
 */
export class FileKeyProvider extends LocalKeyProvider {
  private constructor(
    private readonly file: string,
    ring: Keyring,
  ) {
    super(`keyring file ${file}`, ring);
  }

  /** Opens the keyring, creating it when absent; `created` says whether it was made now. */
  static async open(file: string): Promise<{ provider: FileKeyProvider; created: boolean }> {
    const existing = await readKeyring(file);
    if (existing) return { provider: new FileKeyProvider(file, existing), created: false };
    const ring: Keyring = {
      keys: new Map([[1, randomBytes(KEY_BYTES)]]),
      fingerprint_key: randomBytes(KEY_BYTES),
    };
    await writeKeyring(file, ring);
    return { provider: new FileKeyProvider(file, ring), created: true };
  }

  async reload(): Promise<void> {
    const ring = await readKeyring(this.file);
    if (ring) this.ring = ring;
  }

  async addVersion(): Promise<number> {
    await this.reload();
    const version = this.currentVersion() + 1;
    const keys = new Map(this.ring.keys).set(version, randomBytes(KEY_BYTES));
    await writeKeyring(this.file, { ...this.ring, keys });
    this.ring = { ...this.ring, keys };
    return version;
  }

  async retire(versions: readonly number[]): Promise<void> {
    await this.reload();
    const keys = new Map(this.ring.keys);
    for (const v of versions) keys.delete(v);
    assert(keys.has(this.currentVersion()), 'the current version is never retired');
    await writeKeyring(this.file, { ...this.ring, keys });
    this.ring = { ...this.ring, keys };
  }
}

async function readKeyring(file: string): Promise<Keyring | null> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw err;
  }
  const parsed = JSON.parse(text) as Partial<KeyringFile>;
  if (parsed.format !== 1 || !parsed.keys || !parsed.fingerprint_key) {
    throw new Error(`${file} is not a Moneta keyring (format 1)`);
  }
  const keys = new Map<number, Buffer>();
  for (const [v, k] of Object.entries(parsed.keys)) keys.set(Number(v), decodeKey(k, `${file} version ${v}`));
  return { keys, fingerprint_key: decodeKey(parsed.fingerprint_key, `${file} fingerprint_key`) };
}

async function writeKeyring(file: string, ring: Keyring): Promise<void> {
  const body: KeyringFile = {
    format: 1,
    warning: DEV_WARNING,
    keys: Object.fromEntries([...ring.keys].map(([v, k]) => [String(v), k.toString('base64')])),
    fingerprint_key: ring.fingerprint_key.toString('base64'),
  };
  await mkdir(path.dirname(file), { recursive: true, mode: 0o700 });
  const temporary = `${file}.${process.pid}.tmp`;
  await writeFile(temporary, `${JSON.stringify(body, null, 2)}\n`, { mode: 0o600 });
  await chmod(temporary, 0o600);
  await rename(temporary, file);
}

/** A check value per KEK version, stored in the database: proves a keyring matches it. */
export function kekCheckValue(provider: KeyProvider, version: number): Promise<Buffer> {
  return provider
    .wrap(keyedHash(Buffer.alloc(KEY_BYTES), 'moneta-kek-check'), `check:v${version}`)
    .then((w) => {
      assert(w.kek_version === version, 'check values are made under the current version');
      return w.wrapped;
    });
}

export { DEV_WARNING };

/**
 * The configured provider: MONETA_KEK (+ MONETA_FINGERPRINT_KEY) when set, else the keyring
 * file, made on first start with a warning that production needs a managed key.
 */
export async function openKeyProvider(
  config: { kek: string | undefined; fingerprint_key: string | undefined; kek_file: string },
  warn: (message: string) => void,
): Promise<KeyProvider> {
  if (config.kek !== undefined) {
    assert(
      config.fingerprint_key !== undefined,
      'configuration requires the fingerprint key with MONETA_KEK',
    );
    return new EnvKeyProvider(config.kek, config.fingerprint_key);
  }
  const { provider, created } = await FileKeyProvider.open(config.kek_file);
  if (created) warn(`generated a key-encryption keyring at ${config.kek_file}. ${DEV_WARNING}`);
  return provider;
}
