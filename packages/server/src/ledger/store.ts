import { boolArray, int4Array, int8Array, textArray, uuidArray } from '../db/binary.ts';
import type { Queryable, Statement, Tx } from '../db/pool.ts';
import { assert } from '../lib/errors.ts';
import type {
  AccountBatchOutcome,
  HistoryEntry,
  TransferBatchOutcome,
  TransferBatchState,
} from './engine.ts';
import {
  type Account,
  type Balances,
  type PendingRecord,
  type PendingState,
  type Transfer,
  TransferFlags,
  type TransferInput,
  ZERO_ID,
} from './types.ts';

/**
 * PostgreSQL side of the ledger: load and lock what a batch touches, then write the batch's
 * effects with one set-based statement per table (combined into one statement, sent with
 * the COMMIT). Row locks on the accounts, taken in id order, serialize batches of different
 * processes that share an account; a hot account costs one lock per batch, not per transfer.
 */

const ACCOUNT_COLUMNS = `id, livemode, ledger, code, flags, user_data_128, user_data_64, user_data_32,
  debits_pending, debits_posted, credits_pending, credits_posted, timestamp`;
const TRANSFER_COLUMNS = `id, livemode, debit_account_id, credit_account_id, amount, pending_id, ledger, code, flags,
  timeout_s, user_data_128, user_data_64, user_data_32, timestamp`;

type Row = Record<string, unknown>;
const big = (v: unknown): bigint => BigInt(v as string);
const bigOrNull = (v: unknown): bigint | null => (v === null ? null : BigInt(v as string));

export function accountFromRow(r: Row): Account {
  return {
    id: r.id as string,
    livemode: r.livemode as boolean,
    ledger: r.ledger as number,
    code: r.code as number,
    flags: r.flags as number,
    user_data_128: (r.user_data_128 as string | null) ?? null,
    user_data_64: bigOrNull(r.user_data_64),
    user_data_32: (r.user_data_32 as number | null) ?? null,
    debits_pending: big(r.debits_pending),
    debits_posted: big(r.debits_posted),
    credits_pending: big(r.credits_pending),
    credits_posted: big(r.credits_posted),
    timestamp: big(r.timestamp),
  };
}

export function transferFromRow(r: Row): Transfer {
  return {
    id: r.id as string,
    livemode: r.livemode as boolean,
    debit_account_id: r.debit_account_id as string,
    credit_account_id: r.credit_account_id as string,
    amount: big(r.amount),
    pending_id: (r.pending_id as string | null) ?? null,
    ledger: r.ledger as number,
    code: r.code as number,
    flags: r.flags as number,
    timeout_s: Number(r.timeout_s),
    user_data_128: (r.user_data_128 as string | null) ?? null,
    user_data_64: bigOrNull(r.user_data_64),
    user_data_32: (r.user_data_32 as number | null) ?? null,
    timestamp: big(r.timestamp),
  };
}

const isPostOrVoid = (t: TransferInput) =>
  (t.flags & (TransferFlags.post_pending_transfer | TransferFlags.void_pending_transfer)) !== 0;

/**
 * Reads what the batch's rules need and locks it: stored transfers under the batch's ids and
 * pending ids (immutable, so read without locks), then the accounts in id order and the
 * referenced pending rows, both FOR UPDATE. Accounts first, always, so two batches never
 * wait on each other in opposite orders.
 */
export async function loadTransferBatch(
  tx: Queryable,
  inputs: readonly TransferInput[],
  careful: boolean,
  known: ReadonlyMap<string, Account> = new Map(),
): Promise<TransferBatchState> {
  const pending_ids = new Set<string>();
  const account_ids = new Set<string>();
  for (const t of inputs) {
    if (isPostOrVoid(t) && t.pending_id) pending_ids.add(t.pending_id);
    for (const id of [t.debit_account_id, t.credit_account_id]) if (id !== ZERO_ID) account_ids.add(id);
  }
  // Optimistic (not careful): only the pending transfers named by posts and voids are read;
  // a batch's own ids are assumed new, and the writer proves it afterwards (see Ledger).
  const transfer_ids = careful
    ? [...new Set([...inputs.map((t) => t.id), ...pending_ids])]
    : [...pending_ids];
  // Careful means locked: every id read, every account read under FOR UPDATE.
  return loadLedgerState(tx, transfer_ids, pending_ids, account_ids, careful, careful ? new Map() : known);
}

/** Loads stored transfers by id, then locks the named accounts (plus those of the pending transfers) and pending rows. */
/**
 * The state of a batch that needs nothing from the database: no posts or voids, every
 * account in `known`. Synchronous, so nothing can change the cache between this copy and
 * the batch's use of it.
 */
export function cachedTransferBatch(
  inputs: readonly TransferInput[],
  known: ReadonlyMap<string, Account>,
): TransferBatchState {
  const account_ids = new Set<string>();
  for (const t of inputs) {
    assert(!isPostOrVoid(t), 'a batch from the cache posts and voids nothing');
    for (const id of [t.debit_account_id, t.credit_account_id]) if (id !== ZERO_ID) account_ids.add(id);
  }
  const accounts = cachedAccounts(account_ids, known);
  assert(accounts.size === account_ids.size, 'every account of a batch from the cache is cached');
  return { accounts, transfers: new Map(), pending: new Map() };
}

/** Copies of the cached accounts among `ids`. */
function cachedAccounts(ids: ReadonlySet<string>, known: ReadonlyMap<string, Account>): Map<string, Account> {
  const cached = new Map<string, Account>();
  for (const id of ids) {
    const entry = known.get(id);
    if (entry) cached.set(id, { ...entry });
  }
  return cached;
}

export async function loadLedgerState(
  tx: Queryable,
  transfer_ids: readonly string[],
  pending_ids: ReadonlySet<string>,
  account_ids: Set<string>,
  lock = true,
  known: ReadonlyMap<string, Account> = new Map(),
): Promise<TransferBatchState> {
  // Everything the inputs name is asked for at once: on a pipelined connection the three
  // reads are one round trip (they were three, one after the other, in every payment's
  // booking). Accounts this process already knows (the Ledger's cache) are not read again;
  // the checked update proves they did not change. Copied now, before any await: another
  // batch may change or forget the cache meanwhile.
  const cached = cachedAccounts(account_ids, known);
  const [stored, named_accounts, pending_rows] = await Promise.all([
    transfer_ids.length === 0
      ? Promise.resolve({ rows: [] as Row[] })
      : tx.query({
          name: 'moneta_ledger_load_transfers',
          text: `SELECT ${TRANSFER_COLUMNS} FROM ledger_transfers WHERE id = ANY($1::uuid[])`,
          values: [uuidArray(transfer_ids)],
        }),
    readAccounts(
      tx,
      [...account_ids].filter((id) => !cached.has(id)),
      lock,
    ),
    pending_ids.size === 0
      ? Promise.resolve({ rows: [] as Row[] })
      : tx.query({
          name: lock ? 'moneta_ledger_lock_pending' : 'moneta_ledger_read_pending',
          text: `SELECT id, state, expires_at FROM ledger_pending_transfers WHERE id = ANY($1::uuid[]) ORDER BY id${lock ? ' FOR UPDATE' : ''}`,
          values: [uuidArray([...pending_ids])],
        }),
  ]);
  const transfers = new Map<string, Transfer>();
  for (const row of stored.rows) transfers.set(row.id as string, transferFromRow(row));
  const accounts = new Map<string, Account>(cached);
  for (const row of named_accounts.rows) accounts.set(row.id as string, accountFromRow(row));
  // A post or void may name accounts only through its pending transfer: those come second
  // (rare: payments name theirs), locked after the others, so a deadlock is possible and retried.
  const extra = new Set<string>();
  for (const id of pending_ids) {
    const t = transfers.get(id);
    if (!t || (t.flags & TransferFlags.pending) === 0) continue;
    for (const a of [t.debit_account_id, t.credit_account_id]) {
      if (!account_ids.has(a)) extra.add(a);
      account_ids.add(a);
    }
  }
  if (extra.size > 0) {
    const cached_extra = cachedAccounts(extra, known);
    for (const [id, account] of cached_extra) accounts.set(id, account);
    const read = await readAccounts(
      tx,
      [...extra].filter((id) => !cached_extra.has(id)),
      lock,
    );
    for (const row of read.rows) accounts.set(row.id as string, accountFromRow(row));
  }
  const pending = new Map<string, PendingRecord>();
  for (const row of pending_rows.rows) {
    const transfer = transfers.get(row.id as string);
    assert(transfer, 'a pending row has its transfer');
    pending.set(transfer.id, {
      transfer,
      state: row.state as PendingState,
      expires_at: bigOrNull(row.expires_at),
    });
  }
  return { accounts, transfers, pending };
}

/** Accounts by id, in id order, locked (FOR UPDATE) when `lock`. */
function readAccounts(tx: Queryable, ids: readonly string[], lock: boolean): Promise<{ rows: Row[] }> {
  if (ids.length === 0) return Promise.resolve({ rows: [] });
  return tx.query({
    name: lock ? 'moneta_ledger_lock_accounts' : 'moneta_ledger_read_accounts',
    text: `SELECT ${ACCOUNT_COLUMNS} FROM ledger_accounts WHERE id = ANY($1::uuid[]) ORDER BY id${lock ? ' FOR UPDATE' : ''}`,
    values: [uuidArray(ids)],
  });
}

/** Pending transfers past their timeout, oldest first. */
export async function findExpiredPending(db: Queryable, now: bigint, limit: number): Promise<string[]> {
  const { rows } = await db.query(
    `SELECT id FROM ledger_pending_transfers WHERE state = $1 AND expires_at <= $2 ORDER BY expires_at LIMIT $3`,
    ['pending', now.toString(), limit],
  );
  return rows.map((r) => r.id as string);
}

/** Raised by the checked update (moneta_assert_rows) when a row changed since the batch read it. */
export const STALE_SQLSTATE = 'MN002';

/**
 * The batch's effects as statements; the caller commits them as one. The last one is checked:
 * it sets each touched account's balances only where they still hold the values the batch
 * started from (`original`), moves each pending row only from `pending`, and raises
 * STALE_SQLSTATE unless every one of those rows matched. So a batch computed from stale
 * balances (another process wrote in between) changes nothing and is redone under locks.
 */
export function transferBatchWrites(
  outcome: TransferBatchOutcome,
  state: TransferBatchState,
  original: ReadonlyMap<string, Balances>,
  resolved_at: bigint,
  transfers_copied = false,
): Statement[] {
  const writes: Statement[] = [];
  if (outcome.created.length > 0 && !transfers_copied) writes.push(insertTransfers(outcome.created));
  if (outcome.history.length > 0) writes.push(insertHistory(outcome.history));
  // In id order, like every other lock the ledger takes, so that two writers meet in the
  // same order (the planner may still choose otherwise; a deadlock is retried).
  const touched = [...outcome.touched].sort();
  const records = [...outcome.pending_changes.values()];
  // Accounts the batch consulted but did not change (a transfer refused for lack of funds,
  // say): their balances must also still be what the batch decided on.
  const consulted = [...state.accounts.keys()].filter((id) => !outcome.touched.has(id));
  // $1..$9 of both statements: the accounts, their new balances, and those they started from.
  const balances = [
    uuidArray(touched),
    ...balanceArrays(touched.map((id) => state.accounts.get(id)!)),
    ...balanceArrays(touched.map((id) => original.get(id)!)),
  ];
  if (records.length === 0 && consulted.length === 0) {
    // The common batch (posted transfers, every account changed): the balances alone, so the
    // statement opens no pending table and joins nothing it does not need.
    writes.push({
      name: 'moneta_ledger_checked_balances',
      text: `WITH moneta_balances AS (${CHECKED_BALANCES} RETURNING 1)
             SELECT moneta_assert_rows((SELECT count(*) FROM moneta_balances), $10, $11) AS ok`,
      values: [...balances, touched.length, STALE_SQLSTATE],
    });
    return writes;
  }
  writes.push({
    name: 'moneta_ledger_checked_update',
    text: `WITH moneta_balances AS (${CHECKED_BALANCES} RETURNING 1),
           moneta_pending AS (
             INSERT INTO ledger_pending_transfers AS p (id, state, expires_at, resolved_at)
             SELECT id, state, expires_at, CASE WHEN state = $13 THEN NULL ELSE $12::bigint END
               FROM unnest($10::uuid[], $11::text[], $14::bigint[]) AS v(id, state, expires_at)
             ON CONFLICT (id) DO UPDATE SET state = excluded.state, resolved_at = excluded.resolved_at
              WHERE p.state = $13
             RETURNING 1),
           moneta_consulted AS (
             SELECT 1 FROM ledger_accounts a
               JOIN unnest($16::uuid[], $17::bigint[], $18::bigint[], $19::bigint[], $20::bigint[])
                    AS v(id, was_dp, was_dpo, was_cp, was_cpo) ON a.id = v.id
              WHERE a.debits_pending = v.was_dp AND a.debits_posted = v.was_dpo
                AND a.credits_pending = v.was_cp AND a.credits_posted = v.was_cpo
                AND a.id = ANY($16::uuid[]))
           SELECT moneta_assert_rows(
                    (SELECT count(*) FROM moneta_balances) + (SELECT count(*) FROM moneta_pending)
                      + (SELECT count(*) FROM moneta_consulted), $15, $21) AS ok`,
    values: [
      ...balances,
      uuidArray(records.map((r) => r.transfer.id)),
      textArray(records.map((r) => r.state)),
      resolved_at.toString(),
      'pending',
      int8Array(records.map((r) => r.expires_at)),
      touched.length + records.length + consulted.length,
      uuidArray(consulted),
      ...balanceArrays(consulted.map((id) => original.get(id)!)),
      STALE_SQLSTATE,
    ],
  });
  return writes;
}

/** Sets each account's balances where they still are what the batch started from ($1..$9). */
const CHECKED_BALANCES = `UPDATE ledger_accounts a
    SET debits_pending = v.dp, debits_posted = v.dpo, credits_pending = v.cp, credits_posted = v.cpo
   FROM unnest($1::uuid[], $2::bigint[], $3::bigint[], $4::bigint[], $5::bigint[],
               $6::bigint[], $7::bigint[], $8::bigint[], $9::bigint[])
        AS v(id, dp, dpo, cp, cpo, was_dp, was_dpo, was_cp, was_cpo)
  WHERE a.id = v.id AND a.debits_pending = v.was_dp AND a.debits_posted = v.was_dpo
    AND a.credits_pending = v.was_cp AND a.credits_posted = v.was_cpo
    -- The ids again, as a filter on the table: a generic plan then finds the accounts by key
    -- instead of scanning them all (which it chose from small-table estimates, and kept).
    AND a.id = ANY($1::uuid[])`;

/** The four balance columns of `rows` as parameter arrays, in the order the statements use. */
function balanceArrays(rows: readonly Balances[]): [Buffer, Buffer, Buffer, Buffer] {
  return [
    int8Array(rows.map((b) => b.debits_pending)),
    int8Array(rows.map((b) => b.debits_posted)),
    int8Array(rows.map((b) => b.credits_pending)),
    int8Array(rows.map((b) => b.credits_posted)),
  ];
}

function insertHistory(h: readonly HistoryEntry[]): Statement {
  return {
    name: 'moneta_ledger_insert_history',
    text: `INSERT INTO ledger_account_balances
             (account_id, timestamp, transfer_id, debits_pending, debits_posted, credits_pending, credits_posted)
           SELECT * FROM unnest($1::uuid[], $2::bigint[], $3::uuid[], $4::bigint[], $5::bigint[], $6::bigint[], $7::bigint[])`,
    values: [
      h.map((e) => e.account_id),
      h.map((e) => e.timestamp.toString()),
      h.map((e) => e.transfer_id),
      ...balanceArrays(h),
    ],
  };
}

export const COPY_TRANSFERS = `COPY ledger_transfers (${TRANSFER_COLUMNS}) FROM STDIN`;

const UUID_TEXT = /^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$/;
const copyId = (id: string | null): string => {
  if (id === null) return '\\N';
  // COPY's text format is safe here only because an id can hold no tab, newline or backslash.
  assert(UUID_TEXT.test(id), 'ledger ids are UUIDs');
  return id;
};
const copyValue = (v: bigint | number | null): string => (v === null ? '\\N' : String(v));

/** The transfers as COPY text rows, in TRANSFER_COLUMNS order. */
export function transfersCopyData(transfers: readonly Transfer[]): string {
  let out = '';
  for (const t of transfers) {
    out += `${copyId(t.id)}\t${t.livemode ? 't' : 'f'}\t${copyId(t.debit_account_id)}\t${copyId(t.credit_account_id)}\t${t.amount}\t${copyId(t.pending_id)}\t${t.ledger}\t${t.code}\t${t.flags}\t${t.timeout_s}\t${copyId(t.user_data_128)}\t${copyValue(t.user_data_64)}\t${copyValue(t.user_data_32)}\t${t.timestamp}\n`;
  }
  return out;
}

function insertTransfers(transfers: readonly Transfer[]): Statement {
  return {
    name: 'moneta_ledger_insert_transfers',
    text: `INSERT INTO ledger_transfers (${TRANSFER_COLUMNS})
           SELECT * FROM unnest($1::uuid[], $14::boolean[], $2::uuid[], $3::uuid[], $4::bigint[], $5::uuid[], $6::int[],
                                $7::int[], $8::int[], $9::bigint[], $10::uuid[], $11::bigint[], $12::int[], $13::bigint[])`,
    values: [
      uuidArray(transfers.map((t) => t.id)),
      uuidArray(transfers.map((t) => t.debit_account_id)),
      uuidArray(transfers.map((t) => t.credit_account_id)),
      int8Array(transfers.map((t) => t.amount)),
      uuidArray(transfers.map((t) => t.pending_id)),
      int4Array(transfers.map((t) => t.ledger)),
      int4Array(transfers.map((t) => t.code)),
      int4Array(transfers.map((t) => t.flags)),
      int8Array(transfers.map((t) => t.timeout_s)),
      uuidArray(transfers.map((t) => t.user_data_128)),
      int8Array(transfers.map((t) => t.user_data_64)),
      int4Array(transfers.map((t) => t.user_data_32)),
      int8Array(transfers.map((t) => t.timestamp)),
      boolArray(transfers.map((t) => t.livemode)),
    ],
  };
}

export function insertAccounts(outcome: AccountBatchOutcome): Statement | null {
  const a = outcome.created;
  if (a.length === 0) return null;
  assert(
    a.every((x) => x.debits_pending + x.debits_posted + x.credits_pending + x.credits_posted === 0n),
    'new accounts start at zero (the columns default to it)',
  );
  return {
    name: 'moneta_ledger_insert_accounts',
    text: `INSERT INTO ledger_accounts (id, livemode, ledger, code, flags, user_data_128, user_data_64, user_data_32, timestamp)
           SELECT * FROM unnest($1::uuid[], $2::boolean[], $3::int[], $4::int[], $5::int[], $6::uuid[], $7::bigint[],
                                $8::int[], $9::bigint[])`,
    values: [
      a.map((x) => x.id),
      a.map((x) => x.livemode),
      a.map((x) => x.ledger),
      a.map((x) => x.code),
      a.map((x) => x.flags),
      a.map((x) => x.user_data_128),
      a.map((x) => x.user_data_64?.toString() ?? null),
      a.map((x) => x.user_data_32),
      a.map((x) => x.timestamp.toString()),
    ],
  };
}

export async function lookupAccounts(db: Queryable, ids: readonly string[]): Promise<Account[]> {
  const { rows } = await db.query(
    `SELECT ${ACCOUNT_COLUMNS} FROM ledger_accounts WHERE id = ANY($1::uuid[])`,
    [[...ids]],
  );
  const byId = new Map(rows.map((r) => [r.id as string, accountFromRow(r)]));
  return ids.flatMap((id) => byId.get(id) ?? []);
}

export async function lookupTransfers(db: Queryable, ids: readonly string[]): Promise<Transfer[]> {
  const { rows } = await db.query(
    `SELECT ${TRANSFER_COLUMNS} FROM ledger_transfers WHERE id = ANY($1::uuid[])`,
    [[...ids]],
  );
  const byId = new Map(rows.map((r) => [r.id as string, transferFromRow(r)]));
  return ids.flatMap((id) => byId.get(id) ?? []);
}

export interface TransferPage {
  data: Transfer[];
  has_more: boolean;
}

/**
 * An account's transfers, newest first, `limit` at a time. The cursor is a transfer id of
 * the account (Stripe's `starting_after` / `ending_before`); each side is read through its
 * own (account, timestamp) index and the two are merged.
 */
export async function listAccountTransfers(
  db: Queryable,
  account_id: string,
  livemode: boolean,
  page: { limit: number; starting_after?: string | undefined; ending_before?: string | undefined },
): Promise<TransferPage | 'bad_cursor'> {
  const cursor_id = page.starting_after ?? page.ending_before ?? null;
  let cursor: { timestamp: string; id: string } | null = null;
  if (cursor_id) {
    const { rows } = await db.query(
      `SELECT timestamp FROM ledger_transfers
        WHERE id = $1 AND livemode = $3 AND (debit_account_id = $2 OR credit_account_id = $2)`,
      [cursor_id, account_id, livemode],
    );
    if (!rows[0]) return 'bad_cursor';
    cursor = { timestamp: String(rows[0].timestamp), id: cursor_id };
  }
  const before = page.ending_before !== undefined;
  const cmp = before ? '>' : '<';
  const dir = before ? 'ASC' : 'DESC';
  const side = (column: string) => `(SELECT ${TRANSFER_COLUMNS} FROM ledger_transfers
      WHERE ${column} = $1 AND livemode = $2 AND ($3::bigint IS NULL OR (timestamp, id) ${cmp} ($3::bigint, $4::uuid))
      ORDER BY timestamp ${dir}, id ${dir} LIMIT $5)`;
  const { rows } = await db.query(
    `SELECT * FROM (${side('debit_account_id')} UNION ALL ${side('credit_account_id')}) t
      ORDER BY timestamp ${dir}, id ${dir} LIMIT $5`,
    [account_id, livemode, cursor?.timestamp ?? null, cursor?.id ?? null, page.limit + 1],
  );
  const has_more = rows.length > page.limit;
  const data = rows.slice(0, page.limit).map(transferFromRow);
  if (before) data.reverse();
  return { data, has_more };
}

/** True when any of `ids` is a stored transfer. */
export async function anyTransferExists(tx: Tx, ids: readonly string[]): Promise<boolean> {
  const { rows } = await tx.query({
    name: 'moneta_ledger_any_transfer',
    text: 'SELECT 1 FROM ledger_transfers WHERE id = ANY($1::uuid[]) LIMIT 1',
    values: [ids],
  });
  return rows.length > 0;
}

/**
 * An account's balances as they were at `timestamp` (nanoseconds), for accounts with the
 * `history` flag: the balances after the last transfer at or before it, zero before the first.
 */
export async function balancesAt(db: Queryable, account_id: string, timestamp: bigint): Promise<Balances> {
  const { rows } = await db.query(
    `SELECT debits_pending, debits_posted, credits_pending, credits_posted FROM ledger_account_balances
      WHERE account_id = $1 AND timestamp <= $2 ORDER BY timestamp DESC, transfer_id DESC LIMIT 1`,
    [account_id, timestamp.toString()],
  );
  const r = rows[0];
  if (!r) return { debits_pending: 0n, debits_posted: 0n, credits_pending: 0n, credits_posted: 0n };
  return {
    debits_pending: big(r.debits_pending),
    debits_posted: big(r.debits_posted),
    credits_pending: big(r.credits_pending),
    credits_posted: big(r.credits_posted),
  };
}

/** Transfers carrying a `user_data_128` (a payment intent's id, say), newest first. */
export async function transfersByUserData(
  db: Queryable,
  livemode: boolean,
  user_data_128: string,
  limit: number,
): Promise<TransferPage> {
  const { rows } = await db.query(
    `SELECT ${TRANSFER_COLUMNS} FROM ledger_transfers WHERE user_data_128 = $1 AND livemode = $2
      ORDER BY timestamp DESC, id DESC LIMIT $3`,
    [user_data_128, livemode, limit + 1],
  );
  return { data: rows.slice(0, limit).map(transferFromRow), has_more: rows.length > limit };
}

/** Accounts carrying a `user_data_128` (a merchant's id, say), oldest first. */
export async function accountsByUserData(
  db: Queryable,
  livemode: boolean,
  user_data_128: string,
  limit: number,
): Promise<{ data: Account[]; has_more: boolean }> {
  const { rows } = await db.query(
    `SELECT ${ACCOUNT_COLUMNS} FROM ledger_accounts WHERE user_data_128 = $1 AND livemode = $2
      ORDER BY timestamp, id LIMIT $3`,
    [user_data_128, livemode, limit + 1],
  );
  return { data: rows.slice(0, limit).map(accountFromRow), has_more: rows.length > limit };
}
