import cors from '@fastify/cors';
import Fastify, {
  type FastifyBaseLogger,
  type FastifyInstance,
  type FastifyReply,
  type FastifyRequest,
  LogController,
} from 'fastify';
import { randomBase62 } from '../lib/random.ts';
import { authentication } from './plugins/auth.ts';
import { bodyParsing, parseQuery } from './plugins/body.ts';
import { errorHandling } from './plugins/errors.ts';
import { observability } from './plugins/observability.ts';
import { operations } from './plugins/operations.ts';
import { customerRoutes } from './routes/customers.ts';
import { eventRoutes } from './routes/events.ts';
import { healthRoutes } from './routes/health.ts';
import { ledgerRoutes } from './routes/ledger.ts';
import { paymentMethodRoutes } from './routes/payment-methods.ts';
import { paymentRoutes } from './routes/payments.ts';
import type { ApiDeps } from './types.ts';

/**
 * One log line per request (at completion, with method, route, status and time) instead of
 * fastify's two: log writes are system calls, and they showed up in profiles.
 */
class OneLinePerRequest extends LogController {
  override incomingRequest() {}
  override requestCompleted(error: Error | null | undefined, request: FastifyRequest, reply: FastifyReply) {
    const fields = {
      method: request.method,
      url: request.url,
      status_code: reply.statusCode,
      response_time_ms: Math.round(reply.elapsedTime * 100) / 100,
    };
    if (error) reply.log.error({ ...fields, err: error }, 'request errored');
    else reply.log.info(fields, 'request completed');
  }
}

/**
 * The HTTP layer: thin. It parses and validates at the edge (JSON schemas), authenticates,
 * rate-limits and hands validated parameters to domain operations.
 */
export async function buildApi(deps: ApiDeps): Promise<FastifyInstance> {
  const app = Fastify({
    loggerInstance: deps.log as FastifyBaseLogger,
    genReqId: () => `req_${randomBase62(16)}`,
    logController: new OneLinePerRequest({ requestIdLogLabel: 'request_id' }),
    bodyLimit: deps.config.body_limit_bytes,
    return503OnClosing: false,
    forceCloseConnections: 'idle',
    routerOptions: {
      ignoreTrailingSlash: true,
      querystringParser: (text: string) => parseQuery(text) as Record<string, unknown>,
      maxParamLength: 300,
    },
    ajv: {
      customOptions: {
        coerceTypes: 'array',
        removeAdditional: false,
        useDefaults: true,
        allErrors: false,
      },
    },
  });

  await app.register(observability, deps);
  await app.register(errorHandling, { body_limit_bytes: deps.config.body_limit_bytes });
  await app.register(bodyParsing, { body_limit_bytes: deps.config.body_limit_bytes });
  await app.register(operations, deps);
  // Browsers tokenize cards with a publishable key straight from the merchant's pages, so the
  // API answers cross-origin requests. Keys travel in the Authorization header, never in
  // cookies, so allowing every origin exposes nothing a page could not already send.
  await app.register(cors, {
    origin: '*',
    methods: ['GET', 'POST', 'DELETE'],
    allowedHeaders: ['Authorization', 'Content-Type', 'Idempotency-Key', 'Stripe-Version', 'Stripe-Account'],
    exposedHeaders: [
      'Request-Id',
      'Idempotency-Key',
      'Idempotent-Replayed',
      'Original-Request',
      'Moneta-Mode',
    ],
    maxAge: 600,
    // An OPTIONS request without preflight headers gets the same empty 204, not a text/plain 400.
    strictPreflight: false,
  });
  await app.register(healthRoutes, deps);
  if (!deps.probes_only) {
    await app.register(
      async (v1) => {
        await v1.register(authentication, deps);
        await v1.register(customerRoutes, { pool: deps.pool });
        await v1.register(ledgerRoutes, { ledger: deps.ledger });
        await v1.register(paymentMethodRoutes, {
          pool: deps.pool,
          operations: deps.payment_method_operations,
        });
        await v1.register(paymentRoutes, { pool: deps.pool, operations: deps.payment_operations });
        await v1.register(eventRoutes, {
          pool: deps.pool,
          operations: deps.endpoint_operations,
          nudge: deps.nudge_dispatcher ?? (() => {}),
        });
      },
      { prefix: '/v1' },
    );
  }
  return app;
}
