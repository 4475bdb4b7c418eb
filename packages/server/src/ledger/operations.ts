import type { IdempotentOperation } from '../idempotency/index.ts';
import { jsonResponse } from '../idempotency/index.ts';
import { type AccountJson, accountFromJson, type TransferJson, transferFromJson } from './json.ts';
import type { Ledger } from './ledger.ts';

/*
 * The ledger's idempotent operations for the HTTP API. The ledger is idempotent by id on its
 * own, so a request resumed after a crash simply answers `exists` for what already landed.
 */

/** Per-item results of a batch call, in the order of the request. */
function results(kind: string, ids: string[], list: readonly string[]) {
  return {
    object: 'list',
    data: list.map((result, index) => ({ object: `ledger.${kind}_result`, index, id: ids[index], result })),
  };
}

function createAccountsOperation(
  ledger: Ledger,
): IdempotentOperation<{ accounts: AccountJson[]; livemode: boolean }> {
  return {
    name: 'ledger.accounts.create',
    persist_params: true,
    steps: {
      // The ledger is idempotent by id on its own; a resumed request answers `exists`.
      started: async (ctx) => {
        const { accounts, livemode } = ctx.params;
        const outcome = await ledger.createAccounts(accounts.map((a, i) => accountFromJson(a, i, livemode)));
        await ctx.atomicPhase(async () =>
          jsonResponse(
            200,
            results(
              'account',
              accounts.map((a) => a.id),
              outcome,
            ),
          ),
        );
      },
    },
  };
}

function createTransfersOperation(
  ledger: Ledger,
): IdempotentOperation<{ transfers: TransferJson[]; livemode: boolean }> {
  return {
    name: 'ledger.transfers.create',
    persist_params: true,
    steps: {
      started: async (ctx) => {
        const { transfers, livemode } = ctx.params;
        const outcome = await ledger.createTransfers(
          transfers.map((t, i) => transferFromJson(t, i, livemode)),
        );
        await ctx.atomicPhase(async () =>
          jsonResponse(
            200,
            results(
              'transfer',
              transfers.map((t) => t.id),
              outcome,
            ),
          ),
        );
      },
    },
  };
}

export interface LedgerOperations {
  create_accounts: IdempotentOperation<{ accounts: AccountJson[]; livemode: boolean }>;
  create_transfers: IdempotentOperation<{ transfers: TransferJson[]; livemode: boolean }>;
}

/** One set of operations per ledger instance, made once so the engine can register them. */
export const ledgerOperations = new WeakMap<Ledger, LedgerOperations>();

export function makeLedgerOperations(ledger: Ledger): LedgerOperations {
  const made = {
    create_accounts: createAccountsOperation(ledger),
    create_transfers: createTransfersOperation(ledger),
  };
  ledgerOperations.set(ledger, made);
  return made;
}
