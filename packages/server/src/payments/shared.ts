import type { Connectors } from '../connectors/index.ts';
import { combineWrites, type Tx } from '../db/pool.ts';
import { phaseBatchOf } from '../idempotency/index.ts';
import type { Ledger, TransferInput } from '../ledger/index.ts';
import { assert } from '../lib/errors.ts';
import type { Logger } from '../ops/logger.ts';
import type { Vault } from '../vault/index.ts';
import { type PaymentAccounts, paymentAccounts } from './accounts.ts';
import type { IntentRow } from './store.ts';

/** What every payment flow needs: its dependencies, the payment's ledger accounts, and booking transfers in the phase's transaction. */

export interface PaymentDeps {
  ledger: Ledger;
  vault: Vault;
  connectors: Connectors;
  log: Logger;
}

export function accountsOf(
  scope: { merchant_id: string; livemode: boolean },
  intent: Pick<IntentRow, 'id' | 'acquirer' | 'currency'>,
): PaymentAccounts {
  assert(intent.acquirer, 'an intent that reached its acquirer names it');
  return paymentAccounts(scope.merchant_id, intent.acquirer, intent.currency, scope.livemode, intent.id);
}

/**
 * Books `transfers` inside the phase's transaction, so they commit with the payment's state
 * and events or not at all. Their writes are queued at once (the ledger's checked update must
 * be the last part of its own statement) and travel with the commit in one round trip; should
 * they fail, the commit fails. Every transfer must succeed, or exist already (a step redone
 * after a crash). Call it last before the commit: the accounts stay locked until then.
 */
export async function ledgerWrites(deps: PaymentDeps, tx: Tx, transfers: TransferInput[]): Promise<void> {
  // In a batch of phases the booking of all of them is one: their accounts are locked once
  // per batch, not once per payment (see IdempotencyEngine.runTogether for when).
  const batch = phaseBatchOf(tx);
  if (batch) {
    batch.defer(deps.ledger, transfers, (batch_tx, all) => bookTransfers(deps, batch_tx, all));
    return;
  }
  await bookTransfers(deps, tx, transfers);
}

async function bookTransfers(deps: PaymentDeps, tx: Tx, transfers: readonly TransferInput[]): Promise<void> {
  const { results, writes } = await deps.ledger.prepareInTransaction(tx, transfers);
  assert(
    results.every((r) => r === 'ok' || r === 'exists'),
    `payment transfers are booked (${results.join(', ')})`,
  );
  if (writes.length > 0) tx.queue(combineWrites(writes));
}

export type Scope = { merchant_id: string; livemode: boolean };
