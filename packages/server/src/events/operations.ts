import { type IdempotentOperation, jsonResponse } from '../idempotency/index.ts';
import { checkEndpointRoom, type EndpointInput, newEndpoint, serializeEndpoint } from './endpoints.ts';

export type EndpointCreateInput = EndpointInput & { url: string; enabled_events: string[] };

/** Creating an endpoint only writes our database: one phase; the answer shows the secret, once. */
export function createEndpointOperation(allow_private: boolean): IdempotentOperation<EndpointCreateInput> {
  return {
    name: 'webhook_endpoints.create',
    persist_params: true,
    steps: {
      started: (ctx) =>
        ctx.atomicPhase(async (tx) => {
          const { row, insert } = newEndpoint(ctx.scope, ctx.params, allow_private);
          await checkEndpointRoom(tx, ctx.scope);
          return { ...jsonResponse(200, serializeEndpoint(row, true)), writes: [insert] };
        }),
    },
  };
}
