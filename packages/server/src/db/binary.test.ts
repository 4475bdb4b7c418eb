import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase } from '../../test/helpers.ts';
import { boolArray, int4Array, int8Array, textArray, uuidArray } from './binary.ts';
import { createPool, type Pool } from './pool.ts';

let pool: Pool;
let drop: () => Promise<void>;

beforeAll(async () => {
  const db = await createTestDatabase();
  drop = db.drop;
  pool = createPool({ connection_string: db.url, max_connections: 2, application_name: 'binary-test' });
});
afterAll(async () => {
  await pool?.end();
  await drop?.();
});

describe('binary array parameters', () => {
  it('PostgreSQL reads each type back as sent, NULLs and empty arrays included', async () => {
    const ids = ['01a1ffae-32cd-7146-b369-fff80599cb22', null, 'FFFFFFFF-0000-7000-8000-0123456789AB'];
    const big = [0n, -1n, 9_223_372_036_854_775_807n, null];
    const { rows } = await pool.query(
      `SELECT $1::uuid[]::text[] AS ids, $2::bigint[]::text[] AS big, $3::int[] AS ints, $4::boolean[] AS flags,
              $5::text[] AS words, $6::uuid[] AS none`,
      [
        uuidArray(ids),
        int8Array(big),
        int4Array([1, -2_147_483_648, null]),
        boolArray([true, false]),
        textArray(['pending', null, 'é\t"{}"']),
        uuidArray([]),
      ],
    );
    expect(rows[0]).toEqual({
      ids: [ids[0], null, ids[2]!.toLowerCase()],
      big: ['0', '-1', '9223372036854775807', null],
      ints: [1, -2_147_483_648, null],
      flags: [true, false],
      words: ['pending', null, 'é\t"{}"'],
      none: [],
    });
  });

  it('refuses what is not a UUID instead of sending it', () => {
    expect(() => uuidArray(['01a1ffae-32cd-7146-b369-fff80599cb2g'])).toThrow(/hexadecimal/);
    expect(() => uuidArray(['01a1ffae32cd-7146-b369-fff80599cb221'])).toThrow(/dashes/);
    expect(() => uuidArray(['not a uuid'])).toThrow(/36 characters/);
  });
});
