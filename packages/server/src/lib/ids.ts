import { monotonicFactory } from 'ulidx';
import { randomUnit } from './random.ts';

/**
 * Object ids: a type prefix and a ULID (48-bit millisecond time + 80 random bits,
 * Crockford base32). Monotonic within a process, so ids sort by creation time and
 * list pagination by id is newest-first without a separate sort key.
 */
const nextUlid = monotonicFactory(randomUnit);

export type IdPrefix =
  | 'cus'
  | 'acct'
  | 'key'
  | 'req'
  | 'evt'
  | 'pm'
  | 'card'
  | 'dek'
  | 'pi'
  | 'ch'
  | 're'
  | 'pa'
  | 'we';

export function newId(prefix: IdPrefix): string {
  return `${prefix}_${nextUlid()}`;
}

const ID_BODY = /^[0-9A-HJKMNP-TV-Z]{26}$/;

export function isIdOf(prefix: IdPrefix, value: string): boolean {
  return value.startsWith(`${prefix}_`) && ID_BODY.test(value.slice(prefix.length + 1));
}
