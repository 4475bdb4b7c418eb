import { type IdempotentOperation, jsonResponse, onePhaseOperation } from '../idempotency/index.ts';
import {
  checkEndpointRoom,
  type EndpointInput,
  newEndpoint,
  rollSecret,
  serializeEndpoint,
  updateEndpoint,
} from './endpoints.ts';

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

export interface EndpointOperations {
  create: IdempotentOperation<EndpointCreateInput>;
  update: IdempotentOperation<{ id: string; input: EndpointInput }>;
  roll_secret: IdempotentOperation<{ id: string; expires_in: number }>;
}

/**
 * The endpoint's writes as idempotent operations: each runs in one transaction (its row lock
 * holds until the commit), and a retry with the same key gets the first answer, so a roll
 * whose answer was lost shows the same new secret again instead of making another.
 */
export function endpointOperations(allow_private: boolean): EndpointOperations {
  return {
    create: createEndpointOperation(allow_private),
    update: onePhaseOperation('webhook_endpoints.update', async (tx, ctx) =>
      serializeEndpoint(await updateEndpoint(tx, ctx.scope, ctx.params.id, ctx.params.input, allow_private)),
    ),
    // The answer holds the new secret; the parameters hold nothing secret.
    roll_secret: onePhaseOperation('webhook_endpoints.roll_secret', async (tx, ctx) =>
      serializeEndpoint(await rollSecret(tx, ctx.scope, ctx.params.id, ctx.params.expires_in), true),
    ),
  };
}
