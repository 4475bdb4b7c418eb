import { eventInsert } from '../events/index.ts';
import { type IdempotentOperation, jsonResponse } from '../idempotency/index.ts';
import { mergeMetadata } from '../lib/metadata.ts';
import type { IntentInput } from './flows.ts';
import { type IntentStatus, requireIntent, serializeIntent, unexpectedState, updateIntent } from './store.ts';

/** What an update may change: any field of a new intent. */
export type IntentUpdate = Partial<IntentInput>;

const UPDATABLE: readonly IntentStatus[] = ['requires_payment_method', 'requires_confirmation'];

/** Changes an intent before it is confirmed; afterwards only its metadata and description. */
export function makeUpdateOperation(): IdempotentOperation<{ id: string; update: IntentUpdate }> {
  return {
    name: 'payment_intents.update',
    persist_params: true,
    steps: {
      started: (ctx) =>
        ctx.atomicPhase(async (tx) => {
          const { id, update } = ctx.params;
          const intent = await requireIntent(tx, ctx.scope, id, true);
          const money = [
            'amount',
            'currency',
            'customer',
            'payment_method',
            'capture_method',
            'statement_descriptor',
          ] as const;
          if (money.some((k) => update[k] !== undefined) && !UPDATABLE.includes(intent.status)) {
            unexpectedState(intent, 'update', UPDATABLE);
          }
          const fields: Record<string, unknown> = {
            metadata: mergeMetadata(intent.metadata, update.metadata),
          };
          if (update.amount !== undefined) fields.amount = update.amount;
          if (update.currency !== undefined) fields.currency = update.currency;
          if (update.customer !== undefined) fields.customer_id = update.customer || null;
          if (update.capture_method !== undefined) fields.capture_method = update.capture_method;
          if (update.description !== undefined) fields.description = update.description || null;
          if (update.statement_descriptor !== undefined)
            fields.statement_descriptor = update.statement_descriptor || null;
          if (update.payment_method !== undefined) {
            fields.payment_method_id = update.payment_method || null;
            fields.status = update.payment_method ? 'requires_confirmation' : 'requires_payment_method';
          }
          const row = await updateIntent(tx, id, fields);
          return {
            ...jsonResponse(200, serializeIntent(row)),
            writes: [eventInsert(ctx.scope, 'payment_intent.updated', serializeIntent(row))],
          };
        }),
    },
  };
}
