import { assert } from '../lib/errors.ts';

/**
 * Array parameters in PostgreSQL's binary format, for the set-based statements of hot
 * paths (`unnest($1::uuid[], …)`). node-postgres sends a Buffer parameter as binary, so the
 * server reads each element with a copy instead of parsing text: in the ledger's
 * one-statement batches, parsing text arrays (array_in, strtoull, uuid_in) was about a tenth
 * of the database process's time.
 *
 * The format (array_send): ndim, has-nulls flag, element type oid, then per dimension its
 * length and lower bound, then per element its byte length (-1 for NULL) and its bytes.
 */
const OID = { bool: 16, int8: 20, int4: 23, text: 25, uuid: 2950 } as const;
const HEADER_BYTES = 20;
const UUID_BYTES = 16;
/** Far above any batch (the ledger's is 8,189); bounds the buffer a caller can make us build. */
const MAX_ELEMENTS = 1_000_000;

/**
 * A one-dimensional array of `count` elements: `size(i)` is element i's byte length (-1 for
 * NULL) and `write` puts its bytes at `at`.
 */
function arrayOf(
  oid: number,
  count: number,
  size: (i: number) => number,
  write: (buf: Buffer, at: number, i: number) => void,
): Buffer {
  assert(count <= MAX_ELEMENTS, 'a binary array within MAX_ELEMENTS');
  if (count === 0) {
    // An empty array has no dimensions.
    const empty = Buffer.alloc(12);
    empty.writeInt32BE(oid, 8);
    return empty;
  }
  let bytes = HEADER_BYTES;
  for (let i = 0; i < count; i += 1) bytes += 4 + Math.max(size(i), 0);
  const buf = Buffer.allocUnsafe(bytes);
  let nulls = 0;
  let at = HEADER_BYTES;
  for (let i = 0; i < count; i += 1) {
    const n = size(i);
    buf.writeInt32BE(n, at);
    at += 4;
    if (n < 0) {
      nulls = 1;
      continue;
    }
    write(buf, at, i);
    at += n;
  }
  assert(at === bytes, 'the binary array was sized exactly');
  buf.writeInt32BE(1, 0);
  buf.writeInt32BE(nulls, 4);
  buf.writeInt32BE(oid, 8);
  buf.writeInt32BE(count, 12);
  buf.writeInt32BE(1, 16);
  return buf;
}

/** Elements of one width (NULL where a value is null). */
function fixedWidth<T>(
  oid: number,
  width: number,
  values: readonly (T | null)[],
  write: (buf: Buffer, at: number, value: T) => void,
): Buffer {
  return arrayOf(
    oid,
    values.length,
    (i) => (values[i] == null ? -1 : width),
    (buf, at, i) => write(buf, at, values[i] as T),
  );
}

export function int8Array(values: readonly (bigint | number | null)[]): Buffer {
  return fixedWidth(OID.int8, 8, values, (buf, at, v) => buf.writeBigInt64BE(BigInt(v), at));
}

export function int4Array(values: readonly (number | null)[]): Buffer {
  return fixedWidth(OID.int4, 4, values, (buf, at, v) => buf.writeInt32BE(v, at));
}

export function boolArray(values: readonly boolean[]): Buffer {
  return fixedWidth(OID.bool, 1, values, (buf, at, v) => buf.writeUInt8(v ? 1 : 0, at));
}

/** UUIDs in their canonical text form (`8-4-4-4-12` hex digits); anything else throws. */
export function uuidArray(values: readonly (string | null)[]): Buffer {
  return fixedWidth(OID.uuid, UUID_BYTES, values, (buf, at, v) => writeUuid(v, buf, at));
}

export function textArray(values: readonly (string | null)[]): Buffer {
  const encoded = values.map((v) => (v === null ? null : Buffer.from(v, 'utf8')));
  return arrayOf(
    OID.text,
    values.length,
    (i) => encoded[i]?.length ?? -1,
    (buf, at, i) => encoded[i]!.copy(buf, at),
  );
}

const DASHES = new Set([8, 13, 18, 23]);

function writeUuid(text: string, buf: Buffer, at: number): void {
  assert(text.length === 36, 'a UUID has 36 characters');
  let byte = 0;
  for (let i = 0; i < 36; i += 1) {
    if (DASHES.has(i)) {
      assert(text.charCodeAt(i) === 45, 'a UUID has dashes at 8, 13, 18 and 23');
      continue;
    }
    const hi = hexValue(text.charCodeAt(i));
    i += 1;
    buf[at + byte] = (hi << 4) | hexValue(text.charCodeAt(i));
    byte += 1;
  }
}

function hexValue(c: number): number {
  if (c >= 48 && c <= 57) return c - 48; // 0-9
  if (c >= 97 && c <= 102) return c - 87; // a-f
  if (c >= 65 && c <= 70) return c - 55; // A-F
  throw new Error('a UUID holds only hexadecimal digits');
}
