import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import fp from 'fastify-plugin';
import { type IdempotentOperation, MAX_KEY_LENGTH, type RequestScope } from '../../idempotency/index.ts';
import { assert, invalidRequest } from '../../lib/errors.ts';
import type { ApiDeps } from '../types.ts';

declare module 'fastify' {
  interface FastifyInstance {
    /** Runs a domain operation through the idempotency layer and sends its response. */
    runOperation<P>(
      req: FastifyRequest,
      reply: FastifyReply,
      operation: IdempotentOperation<P>,
      params: P,
    ): Promise<FastifyReply>;
    /** Sends a JSON object (for reads, which need no idempotency). */
    sendJson(reply: FastifyReply, status: number, body: unknown): FastifyReply;
    /** A page of objects in Stripe's list shape: `{object: 'list', url, has_more, data}`. */
    sendList<T>(
      reply: FastifyReply,
      url: string,
      page: { has_more: boolean; data: T[] },
      serialize: (row: T) => unknown,
    ): FastifyReply;
  }
}

const PRINTABLE_ASCII = /^[\x20-\x7e]+$/;

export function scopeOf(req: FastifyRequest): RequestScope {
  assert(req.auth, 'route runs after authentication');
  return {
    merchant_id: req.auth.merchant_id,
    livemode: req.auth.livemode,
    api_key_id: req.auth.api_key_id,
    request_id: req.id,
  };
}

function idempotencyKeyOf(req: FastifyRequest): string | undefined {
  const header = req.headers['idempotency-key'];
  if (header === undefined) return undefined;
  const key = Array.isArray(header) ? header[0] : header;
  if (key === undefined || key.length === 0 || key.length > MAX_KEY_LENGTH || !PRINTABLE_ASCII.test(key)) {
    throw invalidRequest(
      `Idempotency-Key must be 1 to ${MAX_KEY_LENGTH} printable ASCII characters (a UUID is a good choice).`,
      'Idempotency-Key',
      'idempotency_key_invalid',
    );
  }
  return key;
}

export const operations = fp<Pick<ApiDeps, 'engine' | 'metrics'>>(
  async (app: FastifyInstance, deps) => {
    app.decorate('sendJson', (reply: FastifyReply, status: number, body: unknown) =>
      reply.code(status).type('application/json; charset=utf-8').send(JSON.stringify(body)),
    );
    app.decorate(
      'sendList',
      <T>(
        reply: FastifyReply,
        url: string,
        page: { has_more: boolean; data: T[] },
        serialize: (row: T) => unknown,
      ) =>
        app.sendJson(reply, 200, {
          object: 'list',
          url,
          has_more: page.has_more,
          data: page.data.map(serialize),
        }),
    );

    app.decorate('runOperation', async function runOperation<
      P,
    >(req: FastifyRequest, reply: FastifyReply, operation: IdempotentOperation<P>, params: P) {
      const key = req.method === 'POST' ? idempotencyKeyOf(req) : undefined;
      const path = req.url.split('?')[0] ?? req.url;
      let result: Awaited<ReturnType<typeof deps.engine.execute>>;
      try {
        result = await deps.engine.execute(operation, params, scopeOf(req), key, {
          method: req.method,
          path,
        });
      } catch (err) {
        const code = (err as { code?: string; type?: string }).code;
        if ((err as { type?: string }).type === 'idempotency_error') {
          deps.metrics.idempotency.inc({
            outcome: code === 'idempotency_key_in_use' ? 'in_use' : 'mismatch',
          });
        }
        throw err;
      }
      if (key !== undefined) {
        deps.metrics.idempotency.inc({ outcome: result.replayed ? 'replayed' : 'executed' });
        reply.header('Idempotency-Key', key);
      }
      if (result.replayed) {
        reply.header('Idempotent-Replayed', 'true');
        reply.header('Original-Request', result.original_request_id);
      }
      return reply.code(result.status).type('application/json; charset=utf-8').send(result.body);
    });
  },
  { name: 'moneta-operations' },
);
