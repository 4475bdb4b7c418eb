/**
 * Differential property test: random sequences of create_accounts / create_transfers calls go,
 * one call at a time, through the real ledger (PostgreSQL) and through the in-memory reference
 * model (reference.ts); every result and every account's four balances must match exactly.
 */
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase } from '../../test/helpers.ts';
import { transferInput as fixtureTransfer } from '../../test/ledger-fixtures.ts';
import { migrate } from '../db/migrate.ts';
import { createPool, type Pool } from '../db/pool.ts';
import {
  AccountFlags,
  type AccountInput,
  AMOUNT_MAX,
  Ledger,
  ledgerId,
  MAX_ID,
  TransferFlags,
  type TransferInput,
  ZERO_ID,
} from './index.ts';
import { ReferenceLedger } from './reference.ts';

let pool: Pool;
let drop: () => Promise<void>;
let ledger: Ledger;

beforeAll(async () => {
  const db = await createTestDatabase();
  drop = db.drop;
  pool = createPool({ connection_string: db.url, max_connections: 4, application_name: 'ledger-reference' });
  await migrate(pool);
  ledger = new Ledger(pool);
});
afterAll(async () => {
  await pool?.end();
  await drop?.();
});

const USD = 840;
const EUR = 978;
const RESERVED_BIT = 1 << 12;
const TIMEOUT_S = 3_600; // far longer than a run: nothing expires while the test looks

// ---------------------------------------------------------------------------------------------
// Generators. Operations are abstract (indices, kinds, variants); they are turned into concrete
// inputs while the run executes, so they can refer to accounts and transfers made earlier.

const accountKind = fc.constantFrom(
  'none',
  'none',
  'none',
  'dmnec',
  'dmnec',
  'cmned',
  'cmned',
  'history',
  'closed',
  'invalid',
);
type AccountKind = 'none' | 'dmnec' | 'cmned' | 'history' | 'closed' | 'invalid';

/** The first three accounts: valid, on USD, unlinked, so most transfers have somewhere to go. */
const coreAccountSpec = fc.record({
  kind: fc.constantFrom('none', 'none', 'dmnec', 'cmned', 'history'),
  eur: fc.constant(false),
  invalid: fc.constant('reserved'),
  linked: fc.constant(false),
  ud: fc.nat(2),
});

const accountSpec = fc.record({
  kind: accountKind,
  eur: fc.nat(5).map((n) => n === 0), // one in six on the other ledger
  invalid: fc.constantFrom('reserved', 'zero_id', 'max_id', 'both_limits', 'ledger0', 'code0'),
  linked: fc.nat(7).map((n) => n === 0),
  ud: fc.nat(2),
});
type AccountSpec = typeof accountSpec extends fc.Arbitrary<infer T> ? T : never;

const accountRetry = fc.record({
  pick: fc.nat(1_000),
  change: fc.constantFrom(
    'same',
    'same',
    'linked',
    'flags',
    'user_data_128',
    'user_data_64',
    'user_data_32',
    'ledger',
    'code',
    'ledger0',
    'code0',
    'both_limits',
  ),
});

const transferKind = fc.constantFrom(
  'plain',
  'plain',
  'plain',
  'pending',
  'pending',
  'post',
  'post',
  'void',
  'balancing_debit',
  'balancing_credit',
  'retry',
  'retry',
  'odd',
);

const transferOp = fc.record({
  kind: transferKind,
  // Mostly two different core accounts; sometimes any slot (an extra account, an invalid or
  // unknown one, the same account twice).
  accounts: fc.oneof(
    {
      weight: 5,
      arbitrary: fc.tuple(fc.nat(2), fc.nat(1)).map(([d, o]) => ({ dr: d, cr: (d + 1 + o) % 3 })),
    },
    { weight: 1, arbitrary: fc.record({ dr: fc.nat(20), cr: fc.nat(20) }) },
  ),
  amount: fc.oneof(
    { weight: 8, arbitrary: fc.bigInt(1n, 100n) },
    { weight: 1, arbitrary: fc.bigInt(101n, 1_000n) },
  ),
  linked: fc.nat(5).map((n) => n === 0),
  timeout: fc.boolean(),
  pick: fc.nat(1_000),
  variant: fc.nat(1_000),
  ud: fc.nat(2),
});
type TransferOp = typeof transferOp extends fc.Arbitrary<infer T> ? T : never;

const scenario = fc.record({
  accounts: fc
    .tuple(
      fc.array(coreAccountSpec, { minLength: 3, maxLength: 3 }),
      fc.array(accountSpec, { minLength: 1, maxLength: 3 }),
    )
    .map(([core, extra]) => [...core, ...extra]),
  split: fc.nat(6),
  account_retries: fc.array(accountRetry, { maxLength: 3 }),
  /** Retry in the same call as the second half of the accounts, rather than in a call of its own. */
  retries_with_accounts: fc.boolean(),
  calls: fc.array(fc.array(transferOp, { minLength: 1, maxLength: 6 }), { minLength: 1, maxLength: 10 }),
});

// ---------------------------------------------------------------------------------------------
// Interpretation.

const UD128 = [null, '00000000-0000-7000-8000-000000000001', '00000000-0000-7000-8000-000000000002'];
const UD64 = [null, 1n, 2n];
const UD32 = [null, 1, 2];

function accountInput(s: AccountSpec): AccountInput {
  const flagsByKind: Record<AccountKind, number> = {
    none: 0,
    dmnec: AccountFlags.debits_must_not_exceed_credits,
    cmned: AccountFlags.credits_must_not_exceed_debits,
    history: AccountFlags.history,
    closed: AccountFlags.closed,
    invalid: 0,
  };
  const a: AccountInput = {
    id: ledgerId(),
    ledger: s.eur ? EUR : USD,
    code: 1 + s.ud,
    flags: flagsByKind[s.kind as AccountKind] | (s.linked ? AccountFlags.linked : 0),
    user_data_128: UD128[s.ud]!,
    user_data_64: UD64[s.ud]!,
    user_data_32: UD32[s.ud]!,
  };
  if (s.kind === 'invalid') {
    switch (s.invalid) {
      case 'reserved':
        a.flags |= RESERVED_BIT;
        break;
      case 'zero_id':
        a.id = ZERO_ID;
        break;
      case 'max_id':
        a.id = MAX_ID;
        break;
      case 'both_limits':
        a.flags |= AccountFlags.debits_must_not_exceed_credits | AccountFlags.credits_must_not_exceed_debits;
        break;
      case 'ledger0':
        a.ledger = 0;
        break;
      case 'code0':
        a.code = 0;
        break;
    }
  }
  return a;
}

function retryAccount(a: AccountInput, change: string): AccountInput {
  switch (change) {
    case 'linked':
      return { ...a, flags: a.flags ^ AccountFlags.linked };
    case 'flags':
      return { ...a, flags: a.flags ^ AccountFlags.history };
    case 'user_data_128':
      return { ...a, user_data_128: a.user_data_128 === UD128[1] ? UD128[2]! : UD128[1]! };
    case 'user_data_64':
      return { ...a, user_data_64: a.user_data_64 === 7n ? 8n : 7n };
    case 'user_data_32':
      return { ...a, user_data_32: a.user_data_32 === 7 ? 8 : 7 };
    case 'ledger':
      return { ...a, ledger: a.ledger === USD ? EUR : USD };
    case 'code':
      return { ...a, code: a.code + 10 };
    case 'ledger0':
      return { ...a, ledger: 0 };
    case 'code0':
      return { ...a, code: 0 };
    case 'both_limits':
      return {
        ...a,
        flags:
          a.flags | AccountFlags.debits_must_not_exceed_credits | AccountFlags.credits_must_not_exceed_debits,
      };
    default:
      return { ...a };
  }
}

interface World {
  ref: ReferenceLedger;
  /** Every account id the transfers may name: the generated accounts (valid or not) and one unknown id. */
  slots: string[];
  ledgerOf: Map<string, number>;
  /** Every transfer input submitted so far, in order (including earlier ones of the current call). */
  history: TransferInput[];
  /** Where the current call starts in `history`. */
  call_start: number;
}

function base(over: Partial<TransferInput> = {}): TransferInput {
  return fixtureTransfer(ZERO_ID, ZERO_ID, null, over);
}

function choose<T>(xs: readonly T[], n: number): T | undefined {
  return xs.length === 0 ? undefined : xs[n % xs.length];
}

function postOrVoid(w: World, o: TransferOp, kind: 'post' | 'void', linked: number): TransferInput {
  const v = o.variant;
  const pendings = w.history.filter((t) => (t.flags & TransferFlags.pending) !== 0);
  const stored = pendings.filter((t) => w.ref.pendingState(t.id) !== undefined);
  // Still pending before this call, or asked for earlier in this call.
  const open = pendings.filter(
    (t) => w.ref.pendingState(t.id) === 'pending' || w.history.indexOf(t) >= w.call_start,
  );
  // Mostly a pending transfer that is still open; sometimes any pending transfer asked for
  // (maybe refused), one already posted or voided, one that was not pending, or an unknown id.
  let target: TransferInput | undefined;
  if (v % 10 === 0) target = choose(w.history, o.pick);
  else if (v % 10 === 2) target = choose(pendings, o.pick);
  else if (v % 10 === 3) target = choose(stored, o.pick) ?? choose(pendings, o.pick);
  else if (v % 10 !== 1) target = choose(open, o.pick) ?? choose(stored, o.pick) ?? choose(pendings, o.pick);
  const pending_id = target?.id ?? ledgerId();
  // What the pending transfer moved, if the reference holds it; else what it asked for.
  const pending_amount = w.ref.transfer(pending_id)?.amount ?? target?.amount ?? o.amount;
  const flag = kind === 'post' ? TransferFlags.post_pending_transfer : TransferFlags.void_pending_transfer;
  const t = base({ pending_id, flags: flag | linked, ledger: 0, code: 0 });
  t.user_data_128 = UD128[o.ud]!;
  t.user_data_64 = UD64[o.ud]!;
  t.user_data_32 = UD32[o.ud]!;
  const pa = pending_amount ?? 1n;
  if (kind === 'post') {
    const amounts = [null, null, pa, pa > 1n ? 1n + (o.amount % (pa - 1n)) : pa, pa + 1n, 0n];
    t.amount = amounts[Math.floor(v / 10) % amounts.length]!;
  } else {
    const amounts = [null, null, null, pa, pa + 1n, pa > 1n ? pa - 1n : 0n];
    t.amount = amounts[Math.floor(v / 10) % amounts.length]!;
  }
  // Explicit fields: matching the pending transfer, or (rarely) not.
  if (target) {
    switch (Math.floor(v / 60) % 14) {
      case 0:
        t.debit_account_id = target.debit_account_id;
        t.credit_account_id = target.credit_account_id;
        t.ledger = target.ledger;
        t.code = target.code;
        break;
      case 1:
        t.debit_account_id = target.credit_account_id;
        break;
      case 2:
        t.credit_account_id = target.debit_account_id;
        break;
      case 3:
        t.ledger = target.ledger === USD ? EUR : USD;
        break;
      case 4:
        t.code = target.code + 1;
        break;
      default:
        break;
    }
  }
  return t;
}

function retry(w: World, o: TransferOp): TransferInput | undefined {
  // Mostly a transfer that was stored (often a post or void); sometimes any earlier one (maybe refused).
  const stored = w.history.filter((t) => w.ref.transfer(t.id) !== undefined);
  const resolving = stored.filter((t) => t.pending_id !== null);
  const original =
    (o.pick % 4 === 1 ? choose(resolving, o.pick) : undefined) ??
    (o.pick % 4 !== 0 ? choose(stored, o.pick) : undefined) ??
    choose(w.history, o.pick);
  if (!original) return undefined;
  const t = { ...original };
  switch (o.variant % 13) {
    case 0:
      t.amount = (t.amount ?? 0n) + 1n;
      break;
    case 1:
      t.amount = t.amount === null ? 5n : t.amount > 1n ? t.amount - 1n : null;
      break;
    case 2:
      t.code = t.code + 1;
      break;
    case 3:
      t.flags ^= TransferFlags.pending;
      break;
    case 4:
      t.flags ^= TransferFlags.linked;
      break;
    case 5:
      t.user_data_64 = t.user_data_64 === 9n ? 8n : 9n;
      break;
    case 6:
      t.user_data_128 = t.user_data_128 === UD128[1] ? UD128[2]! : UD128[1]!;
      break;
    case 7:
      t.user_data_32 = t.user_data_32 === 9 ? 8 : 9;
      break;
    case 8:
      t.debit_account_id = choose(w.slots, o.accounts.dr)!;
      break;
    case 9:
      t.timeout_s = t.timeout_s === 0 ? TIMEOUT_S : 0;
      break;
    case 10: {
      const other = w.history.filter((h) => (h.flags & TransferFlags.pending) !== 0 && h.id !== t.pending_id);
      t.pending_id = choose(other, o.pick)?.id ?? ledgerId();
      break;
    }
    default:
      break; // the same transfer again: exists
  }
  return t;
}

function transferInput(w: World, o: TransferOp): TransferInput {
  const linked = o.linked ? TransferFlags.linked : 0;
  const dr = choose(w.slots, o.accounts.dr)!;
  const cr = choose(w.slots, o.accounts.cr)!;
  const plain = (flags: number) =>
    base({
      debit_account_id: dr,
      credit_account_id: cr,
      amount: o.amount,
      ledger: w.ledgerOf.get(dr) ?? USD,
      code: 1 + o.ud,
      flags: flags | linked,
      user_data_128: UD128[o.ud]!,
      user_data_64: UD64[o.ud]!,
      user_data_32: UD32[o.ud]!,
    });
  switch (o.kind) {
    case 'plain':
      return plain(0);
    case 'pending': {
      const t = plain(TransferFlags.pending);
      if (o.timeout) t.timeout_s = TIMEOUT_S;
      return t;
    }
    case 'post':
    case 'void': {
      // Nothing to post or void yet: make something pending first (an unknown id is still tried).
      const any_pending = w.history.some((t) => (t.flags & TransferFlags.pending) !== 0);
      if (!any_pending && o.variant % 10 !== 1) return plain(TransferFlags.pending);
      return postOrVoid(w, o, o.kind, linked);
    }
    case 'balancing_debit':
      return plain(TransferFlags.balancing_debit);
    case 'balancing_credit':
      return plain(TransferFlags.balancing_credit);
    case 'retry':
      return retry(w, o) ?? plain(0);
    default:
      return odd(w, o, plain);
  }
}

/** Shape violations and rarer combinations. */
function odd(w: World, o: TransferOp, plain: (flags: number) => TransferInput): TransferInput {
  const t = plain(0);
  const some_id = choose(w.history, o.pick)?.id ?? ledgerId();
  switch (o.variant % 23) {
    case 0:
      t.flags |= RESERVED_BIT;
      break;
    case 1:
      t.id = ZERO_ID;
      break;
    case 2:
      t.id = MAX_ID;
      break;
    case 3:
      t.flags |= TransferFlags.pending | TransferFlags.post_pending_transfer;
      break;
    case 4:
      t.flags |= TransferFlags.post_pending_transfer | TransferFlags.void_pending_transfer;
      t.pending_id = some_id;
      break;
    case 5:
      t.flags |= TransferFlags.void_pending_transfer | TransferFlags.balancing_debit;
      t.pending_id = some_id;
      break;
    case 6:
      t.pending_id = some_id;
      break;
    case 7:
      t.debit_account_id = ZERO_ID;
      break;
    case 8:
      t.credit_account_id = MAX_ID;
      break;
    case 9:
      t.timeout_s = TIMEOUT_S;
      break;
    case 10:
      t.amount = null;
      break;
    case 11:
      t.amount = 0n;
      break;
    case 12:
      t.ledger = 0;
      break;
    case 13:
      t.code = 0;
      break;
    case 14:
      t.ledger = t.ledger === USD ? EUR : USD;
      break;
    case 15:
      t.flags |= TransferFlags.post_pending_transfer;
      t.pending_id = null;
      break;
    case 16:
      t.flags |= TransferFlags.post_pending_transfer;
      t.pending_id = t.id;
      break;
    case 17:
      t.flags |= TransferFlags.void_pending_transfer;
      t.pending_id = MAX_ID;
      break;
    case 18:
      t.flags |= TransferFlags.pending | TransferFlags.balancing_debit;
      break;
    case 19:
      t.flags |= TransferFlags.balancing_debit | TransferFlags.balancing_credit;
      break;
    case 22:
      // Near the top of the range: later transfers on these accounts overflow.
      t.amount = AMOUNT_MAX - o.amount;
      if (o.timeout) t.flags |= TransferFlags.pending;
      break;
    case 20:
      t.flags |= TransferFlags.balancing_credit;
      t.amount = 0n;
      break;
    default:
      // A post that asks for a timeout.
      return { ...postOrVoid(w, o, 'post', t.flags & TransferFlags.linked), timeout_s: TIMEOUT_S };
  }
  return t;
}

// ---------------------------------------------------------------------------------------------

function show(x: unknown): string {
  return JSON.stringify(x, (_k, v) => (typeof v === 'bigint' ? `${v}n` : v), 2);
}

function flagNames(flags: number, table: Record<string, number>): string {
  const names = Object.entries(table)
    .filter(([, bit]) => (flags & bit) !== 0)
    .map(([n]) => n);
  const known = Object.values(table).reduce((a, b) => a | b, 0);
  if (flags & ~known) names.push(`unknown(${flags & ~known})`);
  return names.join('|') || '0';
}

async function compareBalances(w: World, accountIds: string[], context: () => string): Promise<void> {
  const ids = accountIds.filter((id) => id !== ZERO_ID && id !== MAX_ID);
  const real = await ledger.lookupAccounts(ids);
  const realById = new Map(real.map((a) => [a.id, a]));
  for (const id of ids) {
    const r = realById.get(id);
    const m = w.ref.account(id);
    const pick = (a: typeof r | typeof m) =>
      a
        ? {
            debits_pending: a.debits_pending,
            debits_posted: a.debits_posted,
            credits_pending: a.credits_pending,
            credits_posted: a.credits_posted,
          }
        : null;
    if (show(pick(r)) !== show(pick(m))) {
      throw new Error(
        `balances of account ${id} differ\nreal:      ${show(pick(r))}\nreference: ${show(pick(m))}\n${context()}`,
      );
    }
  }
}

/** Result counts over the whole run, printed with LEDGER_REFERENCE_STATS=1 to see what the generator reaches. */
const seen = new Map<string, number>();
function count(results: readonly string[], prefix: string): void {
  for (const r of results) seen.set(`${prefix}${r}`, (seen.get(`${prefix}${r}`) ?? 0) + 1);
}
afterAll(() => {
  if (process.env.LEDGER_REFERENCE_STATS) {
    console.log(
      [...seen]
        .sort(([a], [b]) => a.localeCompare(b))
        .map(([k, n]) => `${k}: ${n}`)
        .join('\n'),
    );
  }
});

describe('ledger against the reference model', () => {
  it('property: every result and every balance matches the reference', async () => {
    await fc.assert(
      fc.asyncProperty(scenario, async (s) => {
        const ref = new ReferenceLedger();
        const log: string[] = [];
        const context = () => `calls so far:\n${log.join('\n')}`;

        // Accounts: one or two calls, then a call of retries (same or changed fields).
        const accounts = s.accounts.map(accountInput);
        const split = s.split % (accounts.length + 1);
        const retries = s.account_retries.map((r) =>
          retryAccount(accounts[r.pick % accounts.length]!, r.change),
        );
        const account_calls = s.retries_with_accounts
          ? [accounts.slice(0, split), [...accounts.slice(split), ...retries]]
          : [accounts.slice(0, split), accounts.slice(split), retries];
        for (const call of account_calls) {
          if (call.length === 0) continue;
          const expected = ref.createAccounts(call);
          const actual = await ledger.createAccounts(call);
          log.push(
            `createAccounts ${show(call.map((a) => ({ ...a, flags: flagNames(a.flags, AccountFlags) })))}\n  -> real ${show(actual)}\n  -> ref  ${show(expected)}`,
          );
          count(actual, 'account ');
          if (show(actual) !== show(expected)) throw new Error(`createAccounts results differ\n${context()}`);
        }
        const account_ids = accounts.map((a) => a.id);
        await compareBalances({ ref } as World, account_ids, context);

        const unknown = ledgerId();
        const w: World = {
          ref,
          slots: [...account_ids, unknown],
          ledgerOf: new Map(accounts.map((a) => [a.id, a.ledger])),
          history: [],
          call_start: 0,
        };
        for (const ops of s.calls) {
          const call: TransferInput[] = [];
          w.call_start = w.history.length;
          for (const o of ops) {
            const t = transferInput(w, o);
            call.push(t);
            w.history.push(t);
          }
          const expected = ref.createTransfers(call);
          const actual = await ledger.createTransfers(call);
          const name = (id: string | null) => {
            if (id === null) return null;
            const i = w.slots.indexOf(id);
            if (i >= 0) return i === w.slots.length - 1 ? 'acct?' : `acct${i}`;
            const j = w.history.findIndex((t) => t.id === id);
            if (j >= 0) return `t${j}`;
            return id === ZERO_ID ? 'ZERO' : id === MAX_ID ? 'MAX' : id;
          };
          log.push(
            `createTransfers ${show(
              call.map((t) => ({
                id: name(t.id),
                dr: name(t.debit_account_id),
                cr: name(t.credit_account_id),
                amount: t.amount,
                pending_id: name(t.pending_id),
                flags: flagNames(t.flags, TransferFlags),
                ledger: t.ledger,
                code: t.code,
                timeout_s: t.timeout_s,
                ud: [t.user_data_128 ? 'u' : null, t.user_data_64, t.user_data_32],
              })),
            )}\n  -> real ${show(actual)}\n  -> ref  ${show(expected)}`,
          );
          actual.forEach((r, i) => {
            const f = call[i]!.flags;
            const kind =
              f & TransferFlags.post_pending_transfer
                ? 'post'
                : f & TransferFlags.void_pending_transfer
                  ? 'void'
                  : f & TransferFlags.pending
                    ? 'pending'
                    : f & (TransferFlags.balancing_debit | TransferFlags.balancing_credit)
                      ? 'balancing'
                      : 'plain';
            count([r], `${kind} `);
          });
          if (show(actual) !== show(expected))
            throw new Error(`createTransfers results differ\n${context()}`);
          await compareBalances(w, account_ids, context);
        }
      }),
      { numRuns: Number(process.env.FUZZ_RUNS ?? 25) },
    );
  });

  it('the reference model itself: a few fixed cases', () => {
    const ref = new ReferenceLedger();
    const acct = (flags: number): AccountInput => ({
      id: ledgerId(),
      ledger: USD,
      code: 1,
      flags,
      user_data_128: null,
      user_data_64: null,
      user_data_32: null,
    });
    const [a, b, c] = [acct(0), acct(0), acct(AccountFlags.credits_must_not_exceed_debits)];
    expect(ref.createAccounts([a, b, c])).toEqual(['ok', 'ok', 'ok']);
    const tr = (dr: string, cr: string, amount: bigint | null, over: Partial<TransferInput> = {}) =>
      base({ debit_account_id: dr, credit_account_id: cr, amount, ...over });
    expect(
      ref.createTransfers([
        tr(a.id, b.id, 10n, { flags: TransferFlags.linked }),
        tr(b.id, c.id, 10n),
        tr(a.id, b.id, 5n),
        tr(a.id, b.id, 1n, { flags: TransferFlags.linked }),
      ]),
    ).toEqual(['linked_event_failed', 'exceeds_debits', 'ok', 'linked_event_chain_open']);
    expect(ref.account(a.id)!.debits_posted).toBe(5n);
    const p = tr(a.id, b.id, 100n, { flags: TransferFlags.pending });
    const post = (amount: bigint | null) =>
      base({ pending_id: p.id, flags: TransferFlags.post_pending_transfer, ledger: 0, code: 0, amount });
    const partial = post(60n);
    expect(ref.createTransfers([p, post(101n), partial, partial, post(null)])).toEqual([
      'ok',
      'exceeds_pending_transfer_amount',
      'ok',
      'exists',
      'pending_transfer_already_posted',
    ]);
    expect(ref.account(a.id)).toMatchObject({ debits_pending: 0n, debits_posted: 65n });
  });
});
