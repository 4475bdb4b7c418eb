import { createCipheriv, createDecipheriv, createHmac } from 'node:crypto';
import { assert } from '../lib/errors.ts';
import { takeRandomBytes } from '../lib/random.ts';

/**
 * AES-256-GCM, the vault's only cipher. A sealed value is
 *   format (1 byte) | nonce (12) | tag (16) | ciphertext
 * and is bound to where it belongs by its additional data (`aad`): a ciphertext moved to
 * another row, or a data key moved to another card, fails to open instead of decrypting.
 * Nonces are random; a data key seals at most 10,000 values (see Vault), far below GCM's
 * limit of 2^32 random nonces per key.
 */
const FORMAT = 1;
const NONCE_BYTES = 12;
const TAG_BYTES = 16;
export const KEY_BYTES = 32;
const HEADER_BYTES = 1 + NONCE_BYTES + TAG_BYTES;

export function seal(key: Buffer, plaintext: Buffer, aad: string): Buffer {
  assert(key.length === KEY_BYTES, 'AES-256 key');
  const nonce = takeRandomBytes(NONCE_BYTES);
  const cipher = createCipheriv('aes-256-gcm', key, nonce);
  cipher.setAAD(Buffer.from(aad, 'utf8'));
  const body = Buffer.concat([cipher.update(plaintext), cipher.final()]);
  return Buffer.concat([Buffer.of(FORMAT), nonce, cipher.getAuthTag(), body]);
}

/** Throws when the value was altered, sealed under another key, or belongs elsewhere. */
export function open(key: Buffer, sealed: Buffer, aad: string): Buffer {
  assert(key.length === KEY_BYTES, 'AES-256 key');
  if (sealed.length < HEADER_BYTES || sealed[0] !== FORMAT)
    throw new VaultIntegrityError('unknown ciphertext format');
  const decipher = createDecipheriv('aes-256-gcm', key, sealed.subarray(1, 1 + NONCE_BYTES));
  decipher.setAAD(Buffer.from(aad, 'utf8'));
  decipher.setAuthTag(sealed.subarray(1 + NONCE_BYTES, HEADER_BYTES));
  try {
    return Buffer.concat([decipher.update(sealed.subarray(HEADER_BYTES)), decipher.final()]);
  } catch {
    throw new VaultIntegrityError('ciphertext failed authentication');
  }
}

export function newDataKey(): Buffer {
  return takeRandomBytes(KEY_BYTES);
}

/**
 * A keyed hash (HMAC-SHA256), never a plain one: a card number has so few unknown digits
 * that an unkeyed hash of it is reversed by trying them all (PCI DSS 3.5.1.1).
 */
export function keyedHash(key: Buffer, ...parts: string[]): Buffer {
  const mac = createHmac('sha256', key);
  for (const p of parts) mac.update(`${p.length}:${p}`);
  return mac.digest();
}

/** Raised when stored card data does not decrypt: tampering, a wrong key, or a moved row. */
export class VaultIntegrityError extends Error {
  constructor(message: string) {
    super(`vault integrity: ${message}`);
    this.name = 'VaultIntegrityError';
  }
}
