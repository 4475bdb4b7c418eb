import { createHash } from 'node:crypto';
import { randomBase62 } from '../lib/random.ts';

export type KeyKind = 'secret' | 'publishable';

/** 32 base62 characters ≈ 190 bits: unguessable, so a plain SHA-256 is a safe lookup hash. */
const KEY_SECRET_LENGTH = 32;
const KEY_FORMAT = /^(sk|pk)_(test|live)_[0-9A-Za-z]{24,128}$/;

export interface ParsedKey {
  kind: KeyKind;
  livemode: boolean;
}

export function generateApiKey(kind: KeyKind, livemode: boolean): string {
  return `${kind === 'secret' ? 'sk' : 'pk'}_${livemode ? 'live' : 'test'}_${randomBase62(KEY_SECRET_LENGTH)}`;
}

export function parseApiKey(raw: string): ParsedKey | null {
  const m = KEY_FORMAT.exec(raw);
  if (!m) return null;
  return { kind: m[1] === 'sk' ? 'secret' : 'publishable', livemode: m[2] === 'live' };
}

export function hashApiKey(raw: string): Buffer {
  return createHash('sha256').update(raw).digest();
}
