/**
 * Request fingerprints for idempotency: SHA-256 of a canonical JSON of the operation, its
 * target and its validated parameters. The card number and CVC enter only as HMACs under a key
 * derived from the API key (HKDF), so the fingerprint stored in the journal cannot be brute
 * forced from the BIN and last4 without that key, and the same request still matches after a
 * restart.
 */
import { createHash, createHmac, hkdfSync } from 'node:crypto';
import type { CardData } from './cards.ts';

export type FingerprintKey = Buffer;

export function fingerprintKey(apiKey: string): FingerprintKey {
  return Buffer.from(hkdfSync('sha256', apiKey, 'moneta-acquirer-sim', 'idempotency-fingerprint/v1', 32));
}

/** The card as it may enter a fingerprint: sensitive parts replaced by keyed hashes. */
export function cardForFingerprint(key: FingerprintKey, card: CardData): Record<string, unknown> {
  const hmac = (label: string, value: string) =>
    createHmac('sha256', key).update(`${label}:${value}`).digest('hex');
  return {
    number_hmac: hmac('number', card.number),
    cvc_hmac: card.cvc === null ? null : hmac('cvc', card.cvc),
    exp_month: card.exp_month,
    exp_year: card.exp_year,
  };
}

/** JSON with object keys sorted at every level, so field order never changes the hash. */
export function canonicalJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`;
  if (value !== null && typeof value === 'object') {
    const entries = Object.entries(value as Record<string, unknown>)
      .filter(([, v]) => v !== undefined)
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${canonicalJson(v)}`).join(',')}}`;
  }
  return JSON.stringify(value);
}

export function fingerprint(request: Record<string, unknown>): string {
  return createHash('sha256').update(canonicalJson(request)).digest('hex');
}
