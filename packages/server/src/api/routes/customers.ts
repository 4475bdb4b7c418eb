import type { FastifyInstance, FastifyRequest } from 'fastify';
import {
  type CustomerInput,
  type CustomerListParams,
  checkCustomerId,
  checkCustomerInput,
  createCustomerOperation,
  deleteCustomer,
  listCustomers,
  retrieveCustomer,
  serializeCustomer,
  updateCustomerOperation,
} from '../../customers/index.ts';
import type { Pool } from '../../db/pool.ts';
import { scopeOf } from '../plugins/operations.ts';
import {
  addressProperties,
  createdFilterSchema,
  expandSchema,
  idParam,
  listQueryProperties,
  metadataSchema,
  noQuery,
  rejectExpand,
  str,
} from '../schemas.ts';

const addressSchema = {
  anyOf: [
    {
      type: 'object',
      properties: addressProperties,
      additionalProperties: false,
    },
    { type: 'string', maxLength: 0 },
  ],
} as const;

const customerBody = {
  type: 'object',
  properties: {
    email: str(512),
    name: str(256),
    phone: str(40),
    description: str(1000),
    address: addressSchema,
    metadata: metadataSchema,
    expand: expandSchema,
  },
  additionalProperties: false,
} as const;

const listQuery = {
  type: 'object',
  properties: { ...listQueryProperties, email: str(512), created: createdFilterSchema },
  additionalProperties: false,
} as const;

type Body = CustomerInput & { expand?: string[] };

function customerInput(body: Body): CustomerInput {
  const { expand, ...input } = body;
  rejectExpand(expand);
  checkCustomerInput(input);
  return input;
}

export async function customerRoutes(app: FastifyInstance, opts: { pool: Pool }) {
  const { pool } = opts;

  app.post('/customers', { schema: { body: customerBody, querystring: noQuery } }, async (req, reply) =>
    app.runOperation(req, reply, createCustomerOperation, customerInput(req.body as Body)),
  );

  app.get('/customers/:id', { schema: { params: idParam, querystring: noQuery } }, async (req, reply) => {
    const { id } = req.params as { id: string };
    rejectExpand((req.query as { expand?: string[] }).expand);
    return app.sendJson(reply, 200, serializeCustomer(await retrieveCustomer(pool, scopeOf(req), id)));
  });

  app.post(
    '/customers/:id',
    { schema: { params: idParam, body: customerBody, querystring: noQuery } },
    async (req, reply) => {
      const { id } = req.params as { id: string };
      checkCustomerId(id);
      return app.runOperation(req, reply, updateCustomerOperation, {
        id,
        input: customerInput(req.body as Body),
      });
    },
  );

  app.delete(
    '/customers/:id',
    { schema: { params: idParam, querystring: noQuery } },
    async (req: FastifyRequest, reply) => {
      const { id } = req.params as { id: string };
      const deleted = await deleteCustomer(pool, scopeOf(req), id);
      return app.sendJson(reply, 200, { id: deleted.id, object: 'customer', deleted: true });
    },
  );

  app.get('/customers', { schema: { querystring: listQuery } }, async (req, reply) => {
    const query = req.query as CustomerListParams & { expand?: string[] };
    rejectExpand(query.expand);
    const page = await listCustomers(pool, scopeOf(req), query);
    return app.sendList(reply, '/v1/customers', page, serializeCustomer);
  });
}
