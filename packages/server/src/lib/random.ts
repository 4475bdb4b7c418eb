import { randomBytes } from 'node:crypto';
import { assert } from './errors.ts';

const BASE62 = '0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz';

/**
 * Random bytes drawn from a pooled buffer: one randomBytes call serves many ids, because a
 * call per request id showed up as ~9 % of request CPU in profiles.
 */
const POOL_BYTES = 8192;
let pool = randomBytes(POOL_BYTES);
let offset = 0;

/**
 * `n` random bytes as a view into the pool, valid until the next draw: for ids and other
 * values that are not secret (keys and nonces use takeRandomBytes).
 */
export function nextBytes(n: number): Buffer {
  assert(n > 0 && n <= POOL_BYTES, 'random draw fits the pool');
  if (offset + n > POOL_BYTES) {
    pool = randomBytes(POOL_BYTES);
    offset = 0;
  }
  const out = pool.subarray(offset, offset + n);
  offset += n;
  return out;
}

/**
 * `n` random bytes of their own (a copy), for keys and nonces: drawn from the same pool,
 * whose slice is then zeroed so no copy of a key stays behind in it. One pooled draw costs
 * a fraction of a randomBytes call (a system call each), which showed up in profiles of
 * card tokenization (then two data keys and four nonces per card; now two nonces).
 */
export function takeRandomBytes(n: number): Buffer {
  const slice = nextBytes(n);
  const out = Buffer.from(slice);
  slice.fill(0);
  return out;
}

/** Uniform random base62 string (rejection sampling, so no modulo bias). */
export function randomBase62(length: number): string {
  let out = '';
  while (out.length < length) {
    for (const byte of nextBytes(length * 2)) {
      if (byte >= 248) continue; // 248 = 4 * 62: keep the distribution uniform
      out += BASE62[byte % 62];
      if (out.length === length) break;
    }
  }
  return out;
}

/**
 * A uniform draw from [0, 1) in steps of 1/256, for ulidx's per-character PRNG: its
 * default calls crypto.getRandomValues once per character (16 calls per id), which
 * profiles showed at ~5 % of request CPU. floor(x * 32) over these values is exactly
 * uniform because 256 is a multiple of 32.
 */
export function randomUnit(): number {
  return nextBytes(1)[0]! / 256;
}
