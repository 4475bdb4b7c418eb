import type { IdempotentOperation } from '../idempotency/index.ts';
import { jsonResponse } from '../idempotency/index.ts';
import { type AccountJson, accountFromJson, type TransferJson, transferFromJson } from './json.ts';
import type { Ledger } from './ledger.ts';

/** A batch call's parameters as stored with its idempotency key: the JSON items and the key's mode. */
export interface BatchParams<J> {
  items: J[];
  livemode: boolean;
}

export interface LedgerOperations {
  create_accounts: IdempotentOperation<BatchParams<AccountJson>>;
  create_transfers: IdempotentOperation<BatchParams<TransferJson>>;
}

/**
 * The ledger's idempotent operations for the HTTP API. The ledger is idempotent by id on its
 * own, so a request resumed after a crash simply answers `exists` for what already landed.
 * Stateless: the service registers one set with the engine (for the completer) and the
 * routes make their own.
 */
export function makeLedgerOperations(ledger: Ledger): LedgerOperations {
  return {
    create_accounts: batchOperation('ledger.accounts.create', 'account', (items, livemode) =>
      ledger.createAccounts(items.map((a, i) => accountFromJson(a, i, livemode))),
    ),
    create_transfers: batchOperation('ledger.transfers.create', 'transfer', (items, livemode) =>
      ledger.createTransfers(items.map((t, i) => transferFromJson(t, i, livemode))),
    ),
  };
}

function batchOperation<J extends { id: string }>(
  name: string,
  kind: 'account' | 'transfer',
  create: (items: J[], livemode: boolean) => Promise<readonly string[]>,
): IdempotentOperation<BatchParams<J>> {
  return {
    name,
    persist_params: true,
    steps: {
      started: async (ctx) => {
        const { items, livemode } = ctx.params;
        const outcome = await create(items, livemode);
        // Per-item results, in the order of the request.
        const data = outcome.map((result, index) => ({
          object: `ledger.${kind}_result`,
          index,
          id: items[index]!.id,
          result,
        }));
        await ctx.atomicPhase(async () => jsonResponse(200, { object: 'list', data }));
      },
    },
  };
}
