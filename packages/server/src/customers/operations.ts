import { type IdempotentOperation, jsonResponse, onePhaseOperation } from '../idempotency/index.ts';
import { type CustomerInput, newCustomer, serializeCustomer, updateCustomer } from './service.ts';

/**
 * Creating a customer touches only our database: one atomic phase, then done. The phase
 * reads nothing, so it hands its insert to the engine, which sends it with the key row
 * and the COMMIT in one round trip.
 */
export const createCustomerOperation: IdempotentOperation<CustomerInput> = {
  name: 'customers.create',
  persist_params: true,
  steps: {
    started: (ctx) =>
      ctx.atomicPhase(async () => {
        const { row, insert } = newCustomer(ctx.scope, ctx.params);
        return { ...jsonResponse(200, serializeCustomer(row)), writes: [insert] };
      }),
  },
};

export const updateCustomerOperation = onePhaseOperation<{ id: string; input: CustomerInput }>(
  'customers.update',
  async (tx, ctx) => serializeCustomer(await updateCustomer(tx, ctx.scope, ctx.params.id, ctx.params.input)),
);
