import type { FastifyInstance } from 'fastify';
import type { Pool } from '../../db/pool.ts';
import { invalidRequest, resourceMissing } from '../../lib/errors.ts';
import type { MetadataInput } from '../../lib/metadata.ts';
import { checkMetadata } from '../../lib/metadata.ts';
import {
  checkAmount,
  checkCurrency,
  checkIntentId,
  checkPaymentMethodRef,
  findCharge,
  findRefund,
  type IntentInput,
  type IntentListParams,
  listIntents,
  listRefunds,
  type PaymentOperations,
  requireIntent,
  serializeCharge,
  serializeIntent,
  serializeRefund,
} from '../../payments/index.ts';
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
} from '../schemas.ts';

const amount = { type: 'integer', minimum: 1, maximum: 99_999_999 } as const;
const intentFields = {
  amount,
  currency: { type: 'string', pattern: '^[a-z]{3}$' },
  customer: str(255),
  payment_method: str(255),
  capture_method: { type: 'string', enum: ['automatic', 'manual'] },
  description: str(1000),
  statement_descriptor: { type: 'string', maxLength: 22, pattern: '^[^<>\'"*\\\\]*$' },
  metadata: metadataSchema,
  expand: expandSchema,
  // Accepted for Stripe client compatibility; cards are the only payment method type.
  payment_method_types: { type: 'array', items: { type: 'string', enum: ['card'] }, maxItems: 1 },
} as const;

const createBody = {
  type: 'object',
  properties: { ...intentFields, confirm: { type: 'boolean' } },
  required: ['amount', 'currency'],
  additionalProperties: false,
} as const;

const updateBody = { type: 'object', properties: intentFields, additionalProperties: false } as const;

const confirmBody = {
  type: 'object',
  properties: { payment_method: str(255), expand: expandSchema },
  additionalProperties: false,
} as const;

const captureBody = {
  type: 'object',
  properties: { amount_to_capture: amount, expand: expandSchema },
  additionalProperties: false,
} as const;

const cancelBody = {
  type: 'object',
  properties: {
    cancellation_reason: {
      type: 'string',
      enum: ['duplicate', 'fraudulent', 'requested_by_customer', 'abandoned'],
    },
    expand: expandSchema,
  },
  additionalProperties: false,
} as const;

const refundBody = {
  type: 'object',
  properties: {
    payment_intent: str(255),
    amount,
    reason: { type: 'string', enum: ['duplicate', 'fraudulent', 'requested_by_customer'] },
    metadata: metadataSchema,
    expand: expandSchema,
  },
  required: ['payment_intent'],
  additionalProperties: false,
} as const;

const intentListQuery = {
  type: 'object',
  properties: { ...listQueryProperties, customer: str(255), created: createdFilterSchema },
  additionalProperties: false,
} as const;

const refundListQuery = {
  type: 'object',
  properties: { ...listQueryProperties, payment_intent: str(255) },
  additionalProperties: false,
} as const;

type WithExpand<T> = T & { expand?: string[]; payment_method_types?: string[] };

function checkIntentInput(input: Partial<IntentInput>): void {
  if (input.currency !== undefined) checkCurrency(input.currency);
  if (input.amount !== undefined) checkAmount(input.amount);
  checkMetadata(input.metadata);
  checkPaymentMethodRef(input.payment_method);
}

export async function paymentRoutes(
  app: FastifyInstance,
  opts: { pool: Pool; operations: PaymentOperations },
) {
  const { pool, operations } = opts;

  app.post('/payment_intents', { schema: { body: createBody, querystring: noQuery } }, async (req, reply) => {
    const {
      expand,
      confirm,
      payment_method_types: _types,
      ...input
    } = req.body as WithExpand<IntentInput & { confirm?: boolean }>;
    rejectExpand(expand);
    checkIntentInput(input);
    if (confirm && !input.payment_method) {
      throw invalidRequest(
        'A payment_method is required to confirm a PaymentIntent.',
        'payment_method',
        'parameter_missing',
      );
    }
    return app.runOperation(req, reply, operations.create, { input, confirm: confirm ?? false });
  });

  app.get(
    '/payment_intents/:id',
    { schema: { params: idParam, querystring: noQuery } },
    async (req, reply) => {
      const { id } = req.params as { id: string };
      rejectExpand((req.query as { expand?: string[] }).expand);
      return app.sendJson(reply, 200, serializeIntent(await requireIntent(pool, scopeOf(req), id, false)));
    },
  );

  app.post(
    '/payment_intents/:id',
    { schema: { params: idParam, body: updateBody, querystring: noQuery } },
    async (req, reply) => {
      const { id } = req.params as { id: string };
      const {
        expand,
        payment_method_types: _types,
        ...changes
      } = req.body as WithExpand<Partial<IntentInput>>;
      rejectExpand(expand);
      checkIntentId(id);
      checkIntentInput(changes);
      return app.runOperation(req, reply, operations.update, { id, update: changes });
    },
  );

  app.post(
    '/payment_intents/:id/confirm',
    { schema: { params: idParam, body: confirmBody, querystring: noQuery } },
    async (req, reply) => {
      const { id } = req.params as { id: string };
      const b = (req.body ?? {}) as { payment_method?: string; expand?: string[] };
      rejectExpand(b.expand);
      checkIntentId(id);
      checkPaymentMethodRef(b.payment_method);
      return app.runOperation(req, reply, operations.confirm, { id, payment_method: b.payment_method });
    },
  );
  app.post(
    '/payment_intents/:id/capture',
    { schema: { params: idParam, body: captureBody, querystring: noQuery } },
    async (req, reply) => {
      const { id } = req.params as { id: string };
      const b = (req.body ?? {}) as { amount_to_capture?: number; expand?: string[] };
      rejectExpand(b.expand);
      checkIntentId(id);
      return app.runOperation(req, reply, operations.capture, { id, amount_to_capture: b.amount_to_capture });
    },
  );
  app.post(
    '/payment_intents/:id/cancel',
    { schema: { params: idParam, body: cancelBody, querystring: noQuery } },
    async (req, reply) => {
      const { id } = req.params as { id: string };
      const b = (req.body ?? {}) as { cancellation_reason?: string; expand?: string[] };
      rejectExpand(b.expand);
      checkIntentId(id);
      return app.runOperation(req, reply, operations.cancel, {
        id,
        cancellation_reason: b.cancellation_reason,
      });
    },
  );

  app.get('/payment_intents', { schema: { querystring: intentListQuery } }, async (req, reply) => {
    const query = req.query as IntentListParams & { expand?: string[] };
    rejectExpand(query.expand);
    const page = await listIntents(pool, scopeOf(req), query);
    return app.sendList(reply, '/v1/payment_intents', page, serializeIntent);
  });

  app.get('/charges/:id', { schema: { params: idParam, querystring: noQuery } }, async (req, reply) => {
    const { id } = req.params as { id: string };
    const charge = await findCharge(pool, scopeOf(req), id);
    if (!charge) throw resourceMissing('charge', id);
    return app.sendJson(reply, 200, serializeCharge(charge));
  });

  app.post('/refunds', { schema: { body: refundBody, querystring: noQuery } }, async (req, reply) => {
    const { expand, ...input } = req.body as WithExpand<{
      payment_intent: string;
      amount?: number;
      reason?: string;
      metadata?: MetadataInput;
    }>;
    rejectExpand(expand);
    checkIntentId(input.payment_intent, 'payment_intent');
    checkMetadata(input.metadata);
    return app.runOperation(req, reply, operations.refund, input);
  });

  app.get('/refunds/:id', { schema: { params: idParam, querystring: noQuery } }, async (req, reply) => {
    const { id } = req.params as { id: string };
    const refund = await findRefund(pool, scopeOf(req), id);
    if (!refund) throw resourceMissing('refund', id);
    return app.sendJson(reply, 200, serializeRefund(refund));
  });

  app.get('/refunds', { schema: { querystring: refundListQuery } }, async (req, reply) => {
    const query = req.query as Parameters<typeof listRefunds>[2] & { expand?: string[] };
    rejectExpand(query.expand);
    const page = await listRefunds(pool, scopeOf(req), query);
    return app.sendList(reply, '/v1/refunds', page, serializeRefund);
  });
}
