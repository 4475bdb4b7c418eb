import { requireLiveCustomer } from '../customers/index.ts';
import { type IdempotentOperation, jsonResponse, onePhaseOperation } from '../idempotency/index.ts';
import { resourceMissing } from '../lib/errors.ts';
import { checkCard } from '../vault/cards.ts';
import type { Vault } from '../vault/index.ts';
import { TEST_CARD_SHORTCUTS } from '../vault/test-cards.ts';
import {
  attachPaymentMethod,
  checkPaymentMethodId,
  detachPaymentMethod,
  newPaymentMethod,
  type PaymentMethodInput,
  serializePaymentMethod,
} from './service.ts';

export interface PaymentMethodOperations {
  create: IdempotentOperation<PaymentMethodInput>;
  attach: IdempotentOperation<{ id: string; customer: string }>;
  detach: IdempotentOperation<{ id: string }>;
}

/**
 * Tokenizing a card is one atomic phase and one statement: the sealed card, its CVC and
 * the payment method row commit together with the idempotency key, or nothing does. The
 * params hold the card number, so they are never stored (no completer: a crashed request
 * simply never happened) and the request fingerprint is keyed (HMAC), not a plain hash.
 */
export function makePaymentMethodOperations(vault: Vault): PaymentMethodOperations {
  const create: IdempotentOperation<PaymentMethodInput> = {
    name: 'payment_methods.create',
    persist_params: false,
    // The params hold the card number and CVC: the request fingerprint is keyed.
    fingerprint_key: () => vault.keys.fingerprintKey(),
    steps: {
      started: (ctx) =>
        ctx.atomicPhase(async () => {
          const sealed = await vault.sealCard(ctx.scope, ctx.params.card);
          const { row, insert } = newPaymentMethod(ctx.scope, ctx.params, sealed);
          return { ...jsonResponse(200, serializePaymentMethod(row)), writes: [...sealed.writes, insert] };
        }),
    },
  };

  const attach: IdempotentOperation<{ id: string; customer: string }> = {
    name: 'payment_methods.attach',
    persist_params: true,
    steps: {
      started: (ctx) =>
        ctx.atomicPhase(async (tx) => {
          const { id, customer } = ctx.params;
          const shortcut = TEST_CARD_SHORTCUTS[id];
          if (shortcut === undefined) {
            return jsonResponse(
              200,
              serializePaymentMethod(await attachPaymentMethod(tx, ctx.scope, id, customer)),
            );
          }
          // Stripe's test shortcuts (`pm_card_visa`…) make a new payment method each time.
          if (ctx.scope.livemode) throw resourceMissing('payment_method', id);
          await requireLiveCustomer(tx, ctx.scope, customer);
          const card = checkCard(shortcut);
          const sealed = await vault.sealCard(ctx.scope, card);
          const { row, insert } = newPaymentMethod(ctx.scope, { card }, sealed, customer);
          return { ...jsonResponse(200, serializePaymentMethod(row)), writes: [...sealed.writes, insert] };
        }),
    },
  };

  const detach = onePhaseOperation<{ id: string }>('payment_methods.detach', async (tx, ctx) => {
    checkPaymentMethodId(ctx.params.id);
    return serializePaymentMethod(await detachPaymentMethod(tx, ctx.scope, ctx.params.id));
  });
  return { create, attach, detach };
}
