import type { FastifyInstance } from 'fastify';
import { customerExists } from '../../customers/index.ts';
import type { Pool } from '../../db/pool.ts';
import { invalidRequest, resourceMissing } from '../../lib/errors.ts';
import type { MetadataInput } from '../../lib/metadata.ts';
import {
  type BillingDetailsInput,
  checkPaymentMethodId,
  checkPaymentMethodInput,
  listPaymentMethods,
  type PaymentMethodListParams,
  type PaymentMethodOperations,
  retrievePaymentMethod,
  serializePaymentMethod,
} from '../../payment-methods/index.ts';
import { type CardInput, checkCard } from '../../vault/cards.ts';
import { scopeOf } from '../plugins/operations.ts';
import {
  addressProperties,
  expandSchema,
  idParam,
  listQueryProperties,
  metadataSchema,
  noQuery,
  rejectExpand,
  str,
} from '../schemas.ts';

const addressSchema = { type: 'object', properties: addressProperties, additionalProperties: false } as const;

/** Card fields may come as strings (forms) or numbers (JSON); checkCard judges them, schemas only bound them. */
const cardField = { anyOf: [{ type: 'string', maxLength: 40 }, { type: 'integer' }] } as const;

const createBody = {
  type: 'object',
  properties: {
    type: { type: 'string', enum: ['card'] },
    card: {
      type: 'object',
      properties: { number: cardField, exp_month: cardField, exp_year: cardField, cvc: cardField },
      additionalProperties: false,
    },
    billing_details: {
      type: 'object',
      properties: { address: addressSchema, email: str(512), name: str(256), phone: str(40) },
      additionalProperties: false,
    },
    metadata: metadataSchema,
    expand: expandSchema,
  },
  required: ['type'],
  additionalProperties: false,
} as const;

const attachBody = {
  type: 'object',
  properties: { customer: str(255), expand: expandSchema },
  required: ['customer'],
  additionalProperties: false,
} as const;

const actionBody = {
  type: 'object',
  properties: { expand: expandSchema },
  additionalProperties: false,
} as const;

const listQuery = {
  type: 'object',
  properties: { ...listQueryProperties, customer: str(255), type: str(40) },
  additionalProperties: false,
} as const;

const customerListQuery = {
  type: 'object',
  properties: { ...listQueryProperties, type: str(40) },
  additionalProperties: false,
} as const;

interface CreateBody {
  type: 'card';
  card?: CardInput;
  billing_details?: BillingDetailsInput;
  metadata?: MetadataInput;
  expand?: string[];
}

export async function paymentMethodRoutes(
  app: FastifyInstance,
  opts: { pool: Pool; operations: PaymentMethodOperations },
) {
  const { pool, operations } = opts;

  // Publishable keys may call this one route: browsers and apps tokenize cards with it, so
  // the merchant's server never sees a card number.
  app.post(
    '/payment_methods',
    { schema: { body: createBody, querystring: noQuery }, config: { allow_publishable: true } },
    async (req, reply) => {
      const body = req.body as CreateBody;
      rejectExpand(body.expand);
      if (body.card === undefined) {
        throw invalidRequest('Missing required param: card.', 'card', 'parameter_missing');
      }
      const input = {
        card: checkCard(body.card, new Date(), scopeOf(req).livemode),
        billing_details: body.billing_details,
        metadata: body.metadata,
      };
      checkPaymentMethodInput(input);
      return app.runOperation(req, reply, operations.create, input);
    },
  );

  app.get(
    '/payment_methods/:id',
    { schema: { params: idParam, querystring: noQuery } },
    async (req, reply) => {
      const { id } = req.params as { id: string };
      rejectExpand((req.query as { expand?: string[] }).expand);
      return app.sendJson(
        reply,
        200,
        serializePaymentMethod(await retrievePaymentMethod(pool, scopeOf(req), id)),
      );
    },
  );

  app.get('/payment_methods', { schema: { querystring: listQuery } }, async (req, reply) => {
    const query = req.query as PaymentMethodListParams & { expand?: string[] };
    rejectExpand(query.expand);
    if (query.customer !== undefined && !(await customerExists(pool, scopeOf(req), query.customer))) {
      throw resourceMissing('customer', query.customer, 'customer');
    }
    const page = await listPaymentMethods(pool, scopeOf(req), query);
    return app.sendList(reply, '/v1/payment_methods', page, serializePaymentMethod);
  });

  app.post(
    '/payment_methods/:id/attach',
    { schema: { params: idParam, body: attachBody, querystring: noQuery } },
    async (req, reply) => {
      const { id } = req.params as { id: string };
      const { customer, expand } = req.body as { customer: string; expand?: string[] };
      rejectExpand(expand);
      if (!id.startsWith('pm_card_')) checkPaymentMethodId(id);
      return app.runOperation(req, reply, operations.attach, { id, customer });
    },
  );

  app.post(
    '/payment_methods/:id/detach',
    { schema: { params: idParam, body: actionBody, querystring: noQuery } },
    async (req, reply) => {
      const { id } = req.params as { id: string };
      rejectExpand((req.body as { expand?: string[] } | undefined)?.expand);
      checkPaymentMethodId(id);
      return app.runOperation(req, reply, operations.detach, { id });
    },
  );

  app.get(
    '/customers/:id/payment_methods',
    { schema: { params: idParam, querystring: customerListQuery } },
    async (req, reply) => {
      const { id } = req.params as { id: string };
      const query = req.query as PaymentMethodListParams & { expand?: string[] };
      rejectExpand(query.expand);
      if (!(await customerExists(pool, scopeOf(req), id))) throw resourceMissing('customer', id);
      const page = await listPaymentMethods(pool, scopeOf(req), { ...query, customer: id });
      return app.sendList(reply, `/v1/customers/${id}/payment_methods`, page, serializePaymentMethod);
    },
  );
}
