import { type IdempotentOperation, jsonResponse } from '../idempotency/index.ts';
import { type CustomerInput, createCustomer, serializeCustomer, updateCustomer } from './service.ts';

/** Creating a customer touches only our database: one atomic phase, then done. */
export const createCustomerOperation: IdempotentOperation<CustomerInput> = {
  name: 'customers.create',
  persist_params: true,
  steps: {
    started: (ctx) =>
      ctx.atomicPhase(async (tx) =>
        jsonResponse(200, serializeCustomer(await createCustomer(tx, ctx.scope, ctx.params))),
      ),
  },
};

export const updateCustomerOperation: IdempotentOperation<{ id: string; input: CustomerInput }> = {
  name: 'customers.update',
  persist_params: true,
  steps: {
    started: (ctx) =>
      ctx.atomicPhase(async (tx) =>
        jsonResponse(
          200,
          serializeCustomer(await updateCustomer(tx, ctx.scope, ctx.params.id, ctx.params.input)),
        ),
      ),
  },
};
