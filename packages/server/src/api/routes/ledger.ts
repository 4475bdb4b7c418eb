import type { FastifyInstance, FastifyRequest } from 'fastify';
import {
  AccountFlags,
  type AccountJson,
  accountFromJson,
  accountsByUserData,
  accountToJson,
  balancesAt,
  type Ledger,
  listAccountTransfers,
  MAX_BATCH,
  makeLedgerOperations,
  TransferFlags,
  type TransferJson,
  transferFromJson,
  transfersByUserData,
  transferToJson,
} from '../../ledger/index.ts';
import { invalidRequest, permissionError, resourceMissing } from '../../lib/errors.ts';
import { MAX_LIST_LIMIT } from '../../lib/list.ts';
import { noQuery } from '../schemas.ts';

const UUID = {
  type: 'string',
  pattern: '^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$',
} as const;
const INT32 = { type: 'integer', minimum: 0, maximum: 2_147_483_647 } as const;
// The string form first: ajv coerces in the first branch it tries, and a long decimal string
// coerced to a number would lose digits before the second branch saw it.
const INT63 = {
  anyOf: [
    { type: 'string', pattern: '^[0-9]{1,19}$' },
    { type: 'integer', minimum: 0, maximum: Number.MAX_SAFE_INTEGER },
  ],
} as const;
const flagList = (names: string[]) =>
  ({
    type: 'array',
    maxItems: names.length,
    uniqueItems: true,
    items: { type: 'string', enum: names },
  }) as const;

const accountSchema = {
  type: 'object',
  properties: {
    id: UUID,
    ledger: INT32,
    code: INT32,
    flags: flagList(Object.keys(AccountFlags)),
    user_data_128: UUID,
    user_data_64: INT63,
    user_data_32: INT32,
  },
  required: ['id', 'ledger', 'code'],
  additionalProperties: false,
} as const;

const transferSchema = {
  type: 'object',
  properties: {
    id: UUID,
    debit_account_id: UUID,
    credit_account_id: UUID,
    amount: INT63,
    pending_id: UUID,
    ledger: INT32,
    code: INT32,
    flags: flagList(Object.keys(TransferFlags)),
    timeout: { type: 'integer', minimum: 0, maximum: 4_294_967_295 },
    user_data_128: UUID,
    user_data_64: INT63,
    user_data_32: INT32,
  },
  required: ['id'],
  additionalProperties: false,
} as const;

const batchBody = (key: string, item: object) =>
  ({
    type: 'object',
    properties: { [key]: { type: 'array', minItems: 1, maxItems: MAX_BATCH, items: item } },
    required: [key],
    additionalProperties: false,
  }) as const;

const uuidParam = {
  type: 'object',
  properties: { id: UUID },
  required: ['id'],
  additionalProperties: false,
} as const;

const pageQuery = {
  type: 'object',
  properties: {
    limit: { type: 'integer', minimum: 1, maximum: MAX_LIST_LIMIT, default: 10 },
    starting_after: UUID,
    ending_before: UUID,
  },
  additionalProperties: false,
} as const;

/**
 * The ledger for operators and internal services: only the platform's own secret keys
 * (`moneta merchants create --platform`) may use it, in the key's mode.
 */
export async function ledgerRoutes(app: FastifyInstance, opts: { ledger: Ledger }) {
  const { ledger } = opts;
  const operations = makeLedgerOperations(ledger);
  app.addHook('preHandler', (req, _reply, done) => {
    if (!req.auth?.platform) {
      done(
        permissionError(
          "The ledger API is for the platform's own keys. Create them with `moneta merchants create --platform --name …`.",
        ),
      );
      return;
    }
    done();
  });
  const livemode = (req: FastifyRequest) => req.auth!.livemode;
  /** The account, or a 404 when it does not exist in the key's mode. */
  const accountInMode = async (req: FastifyRequest, id: string) => {
    const [account] = await ledger.lookupAccounts([id]);
    if (!account || account.livemode !== livemode(req)) throw resourceMissing('ledger account', id);
    return account;
  };

  app.post(
    '/ledger/accounts',
    { schema: { body: batchBody('accounts', accountSchema), querystring: noQuery } },
    async (req, reply) => {
      const { accounts } = req.body as { accounts: AccountJson[] };
      // Parameter errors (a 400 naming the field) before any work.
      for (const [i, a] of accounts.entries()) accountFromJson(a, i, false);
      return app.runOperation(req, reply, operations.create_accounts, {
        items: accounts,
        livemode: livemode(req),
      });
    },
  );

  app.post(
    '/ledger/transfers',
    { schema: { body: batchBody('transfers', transferSchema), querystring: noQuery } },
    async (req, reply) => {
      const { transfers } = req.body as { transfers: TransferJson[] };
      for (const [i, t] of transfers.entries()) transferFromJson(t, i, false);
      return app.runOperation(req, reply, operations.create_transfers, {
        items: transfers,
        livemode: livemode(req),
      });
    },
  );

  app.get(
    '/ledger/accounts/:id',
    { schema: { params: uuidParam, querystring: noQuery } },
    async (req, reply) => {
      const { id } = req.params as { id: string };
      const account = await accountInMode(req, id);
      return app.sendJson(reply, 200, accountToJson(account));
    },
  );

  app.get(
    '/ledger/accounts/:id/transfers',
    { schema: { params: uuidParam, querystring: pageQuery } },
    async (req, reply) => {
      const { id } = req.params as { id: string };
      const query = req.query as { limit: number; starting_after?: string; ending_before?: string };
      if (query.starting_after && query.ending_before) {
        throw invalidRequest('Give starting_after or ending_before, not both.', 'ending_before');
      }
      const account = await accountInMode(req, id);
      const page = await listAccountTransfers(ledger.pool, id, account.livemode, query);
      if (page === 'bad_cursor') {
        const param = query.starting_after ? 'starting_after' : 'ending_before';
        throw invalidRequest(`The ${param} transfer is not a transfer of this account.`, param);
      }
      return app.sendList(reply, `/v1/ledger/accounts/${id}/transfers`, page, transferToJson);
    },
  );

  app.get(
    '/ledger/accounts/:id/balances',
    {
      schema: {
        params: uuidParam,
        querystring: {
          type: 'object',
          properties: { timestamp: { type: 'string', pattern: '^[0-9]{1,19}$' } },
          required: ['timestamp'],
          additionalProperties: false,
        },
      },
    },
    async (req, reply) => {
      const { id } = req.params as { id: string };
      const { timestamp } = req.query as { timestamp: string };
      const account = await accountInMode(req, id);
      if ((account.flags & AccountFlags.history) === 0) {
        throw invalidRequest(
          'This account does not keep history: create it with the `history` flag to read past balances.',
          'id',
        );
      }
      const b = await balancesAt(ledger.pool, id, BigInt(timestamp));
      return app.sendJson(reply, 200, {
        object: 'ledger.balance',
        account_id: id,
        timestamp,
        debits_pending: b.debits_pending.toString(),
        debits_posted: b.debits_posted.toString(),
        credits_pending: b.credits_pending.toString(),
        credits_posted: b.credits_posted.toString(),
      });
    },
  );

  const byUserData = {
    type: 'object',
    properties: {
      user_data_128: UUID,
      limit: { type: 'integer', minimum: 1, maximum: MAX_LIST_LIMIT, default: 10 },
    },
    required: ['user_data_128'],
    additionalProperties: false,
  } as const;

  app.get('/ledger/transfers', { schema: { querystring: byUserData } }, async (req, reply) => {
    const { user_data_128, limit } = req.query as { user_data_128: string; limit: number };
    const page = await transfersByUserData(ledger.pool, livemode(req), user_data_128, limit);
    return app.sendList(reply, '/v1/ledger/transfers', page, transferToJson);
  });

  app.get('/ledger/accounts', { schema: { querystring: byUserData } }, async (req, reply) => {
    const { user_data_128, limit } = req.query as { user_data_128: string; limit: number };
    const page = await accountsByUserData(ledger.pool, livemode(req), user_data_128, limit);
    return app.sendList(reply, '/v1/ledger/accounts', page, accountToJson);
  });

  app.get(
    '/ledger/transfers/:id',
    { schema: { params: uuidParam, querystring: noQuery } },
    async (req, reply) => {
      const { id } = req.params as { id: string };
      const [transfer] = await ledger.lookupTransfers([id]);
      if (!transfer || transfer.livemode !== livemode(req)) throw resourceMissing('ledger transfer', id);
      return app.sendJson(reply, 200, transferToJson(transfer));
    },
  );
}
