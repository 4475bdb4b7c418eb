import type { FastifyInstance } from 'fastify';
import type { Pool } from '../../db/pool.ts';
import {
  DEFAULT_SECRET_OVERLAP_S,
  deleteEndpoint,
  type EndpointCreateInput,
  type EndpointInput,
  type EndpointOperations,
  type EventListParams,
  listDeliveries,
  listEndpoints,
  listEvents,
  MAX_ENABLED_EVENTS,
  MAX_SECRET_OVERLAP_S,
  resend,
  resendTarget,
  retrieveEndpoint,
  retrieveEvent,
  serializeDelivery,
  serializeEndpoint,
  serializeEvent,
} from '../../events/index.ts';
import type { ListParams } from '../../lib/list.ts';
import { scopeOf } from '../plugins/operations.ts';
import {
  createdFilterSchema,
  expandSchema,
  idParam,
  listQueryProperties,
  metadataSchema,
  noQuery,
  rejectExpand,
  str,
  timestamp,
} from '../schemas.ts';

/** The Events API and webhook endpoints (`/v1/events`, `/v1/webhook_endpoints`). */

const eventTypes = { type: 'array', minItems: 1, maxItems: MAX_ENABLED_EVENTS, items: str(100) } as const;

const endpointFields = {
  url: str(2048),
  enabled_events: eventTypes,
  description: str(5000),
  metadata: metadataSchema,
  expand: expandSchema,
} as const;

const createBody = {
  type: 'object',
  properties: endpointFields,
  required: ['url', 'enabled_events'],
  additionalProperties: false,
} as const;

const updateBody = {
  type: 'object',
  properties: { ...endpointFields, disabled: { type: 'boolean' } },
  additionalProperties: false,
} as const;

const rollBody = {
  type: 'object',
  properties: { expires_in: { type: 'integer', minimum: 0, maximum: MAX_SECRET_OVERLAP_S } },
  additionalProperties: false,
} as const;

const eventListQuery = {
  type: 'object',
  properties: { ...listQueryProperties, type: str(100), created: createdFilterSchema },
  additionalProperties: false,
} as const;

const deliveriesQuery = {
  type: 'object',
  properties: {
    limit: listQueryProperties.limit,
    starting_after: str(255),
    ending_before: str(255),
    status: { type: 'string', enum: ['pending', 'succeeded', 'failed'] },
  },
  additionalProperties: false,
} as const;

const resendBody = {
  type: 'object',
  properties: { event: str(255), since: timestamp, until: timestamp },
  additionalProperties: false,
} as const;

const endpointListQuery = {
  type: 'object',
  properties: listQueryProperties,
  additionalProperties: false,
} as const;

type WithExpand<T> = T & { expand?: string[] };

export async function eventRoutes(
  app: FastifyInstance,
  opts: {
    pool: Pool;
    operations: EndpointOperations;
    /** Tells the dispatcher (if this process runs one) that deliveries are due now. */
    nudge: () => void;
  },
) {
  const { pool } = opts;

  app.get('/events/:id', { schema: { params: idParam, querystring: noQuery } }, async (req, reply) => {
    rejectExpand((req.query as { expand?: string[] }).expand);
    const event = await retrieveEvent(pool, scopeOf(req), (req.params as { id: string }).id);
    return app.sendJson(reply, 200, serializeEvent(event, event.pending_webhooks));
  });

  app.get('/events', { schema: { querystring: eventListQuery } }, async (req, reply) => {
    const query = req.query as WithExpand<EventListParams>;
    rejectExpand(query.expand);
    const page = await listEvents(pool, scopeOf(req), query);
    return app.sendList(reply, '/v1/events', page, (e) => serializeEvent(e, e.pending_webhooks));
  });

  app.post(
    '/webhook_endpoints',
    { schema: { body: createBody, querystring: noQuery } },
    async (req, reply) => {
      const { expand, ...input } = req.body as WithExpand<EndpointCreateInput>;
      rejectExpand(expand);
      return app.runOperation(req, reply, opts.operations.create, input);
    },
  );

  app.get(
    '/webhook_endpoints/:id',
    { schema: { params: idParam, querystring: noQuery } },
    async (req, reply) => {
      rejectExpand((req.query as { expand?: string[] }).expand);
      const row = await retrieveEndpoint(pool, scopeOf(req), (req.params as { id: string }).id);
      return app.sendJson(reply, 200, serializeEndpoint(row));
    },
  );

  app.post(
    '/webhook_endpoints/:id',
    { schema: { params: idParam, body: updateBody, querystring: noQuery } },
    async (req, reply) => {
      const { expand, ...input } = req.body as WithExpand<EndpointInput>;
      rejectExpand(expand);
      return app.runOperation(req, reply, opts.operations.update, {
        id: (req.params as { id: string }).id,
        input,
      });
    },
  );

  // Moneta's addition: a new secret, the old one signing beside it for `expires_in` seconds.
  app.post(
    '/webhook_endpoints/:id/roll_secret',
    { schema: { params: idParam, body: rollBody, querystring: noQuery } },
    async (req, reply) => {
      const { expires_in } = (req.body ?? {}) as { expires_in?: number };
      return app.runOperation(req, reply, opts.operations.roll_secret, {
        id: (req.params as { id: string }).id,
        expires_in: expires_in ?? DEFAULT_SECRET_OVERLAP_S,
      });
    },
  );

  app.delete(
    '/webhook_endpoints/:id',
    { schema: { params: idParam, querystring: noQuery } },
    async (req, reply) => {
      const id = (req.params as { id: string }).id;
      await deleteEndpoint(pool, scopeOf(req), id);
      return app.sendJson(reply, 200, { id, object: 'webhook_endpoint', deleted: true });
    },
  );

  // Moneta's additions for operators: an endpoint's deliveries, and sending events again.
  app.get(
    '/webhook_endpoints/:id/deliveries',
    { schema: { params: idParam, querystring: deliveriesQuery } },
    async (req, reply) => {
      const id = (req.params as { id: string }).id;
      const query = req.query as ListParams & { status?: 'pending' | 'succeeded' | 'failed' };
      const page = await listDeliveries(pool, scopeOf(req), id, query);
      return app.sendList(reply, `/v1/webhook_endpoints/${id}/deliveries`, page, serializeDelivery);
    },
  );

  app.post(
    '/webhook_endpoints/:id/resend',
    { schema: { params: idParam, body: resendBody, querystring: noQuery } },
    async (req, reply) => {
      const id = (req.params as { id: string }).id;
      const body = (req.body ?? {}) as { event?: string; since?: number; until?: number };
      const seconds = (s: number | undefined) => (s === undefined ? undefined : new Date(s * 1000));
      const target = resendTarget({
        event: body.event,
        since: seconds(body.since),
        until: seconds(body.until),
      });
      const queued = await resend(pool, scopeOf(req), id, target);
      opts.nudge();
      return app.sendJson(reply, 200, { object: 'webhook_resend', webhook_endpoint: id, queued });
    },
  );

  app.get('/webhook_endpoints', { schema: { querystring: endpointListQuery } }, async (req, reply) => {
    const query = req.query as WithExpand<ListParams>;
    rejectExpand(query.expand);
    const page = await listEndpoints(pool, scopeOf(req), query);
    return app.sendList(reply, '/v1/webhook_endpoints', page, (row) => serializeEndpoint(row));
  });
}
