import type { FastifyInstance } from 'fastify';
import fp from 'fastify-plugin';
import { serviceUnavailable } from '../../lib/errors.ts';
import type { ApiDeps } from '../types.ts';

/**
 * Request-Id on every response (also the `request_id` field of every log line of the
 * request), request metrics by route pattern, and refusal of new work during shutdown.
 */
export const observability = fp<Pick<ApiDeps, 'metrics' | 'is_closing'>>(
  async (app: FastifyInstance, deps) => {
    const starts = new WeakMap<object, bigint>();

    app.addHook('onRequest', async (req, reply) => {
      reply.header('Request-Id', req.id);
      starts.set(req, process.hrtime.bigint());
      deps.metrics.http_in_flight.inc();
      if (deps.is_closing() && !req.url.startsWith('/healthz') && !req.url.startsWith('/readyz')) {
        reply.header('Connection', 'close');
        throw serviceUnavailable(
          'The server is shutting down. Retry the request; another instance will answer it.',
        );
      }
    });

    app.addHook('onResponse', async (req, reply) => {
      deps.metrics.http_in_flight.dec();
      const started = starts.get(req);
      const route = req.routeOptions.url ?? 'unmatched';
      deps.metrics.http_requests.inc({ method: req.method, route, status_code: String(reply.statusCode) });
      if (started !== undefined) {
        const seconds = Number(process.hrtime.bigint() - started) / 1e9;
        deps.metrics.http_duration.observe({ method: req.method, route }, seconds);
      }
    });
  },
);
