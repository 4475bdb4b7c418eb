import type { FastifyInstance } from 'fastify';
import fp from 'fastify-plugin';
import type client from 'prom-client';
import { serviceUnavailable } from '../../lib/errors.ts';
import type { ApiDeps } from '../types.ts';

/**
 * Request-Id on every response (also the `request_id` field of every log line of the
 * request), request metrics by route pattern, and refusal of new work during shutdown.
 */
export const observability = fp<Pick<ApiDeps, 'metrics' | 'is_closing'>>(
  async (app: FastifyInstance, deps) => {
    // Labelled children cached by their label values: prom-client hashes the label object on
    // every call otherwise. Bounded: routes are patterns, methods and status codes are few.
    const MAX_SERIES = 2_000;
    const counters = new Map<string, client.Counter.Internal>();
    const timers = new Map<string, client.Histogram.Internal<string>>();
    const series = <T>(cache: Map<string, T>, key: string, make: () => T): T => {
      let child = cache.get(key);
      if (child === undefined) {
        child = make();
        if (cache.size < MAX_SERIES) cache.set(key, child);
      }
      return child;
    };

    // Hooks in callback style: nothing here waits, and an async hook costs a promise per request.
    app.addHook('onRequest', (req, reply, done) => {
      reply.header('Request-Id', req.id);
      deps.metrics.http_in_flight.inc();
      if (deps.is_closing() && !req.url.startsWith('/healthz') && !req.url.startsWith('/readyz')) {
        reply.header('Connection', 'close');
        done(
          serviceUnavailable(
            'The server is shutting down. Retry the request; another instance will answer it.',
          ),
        );
        return;
      }
      done();
    });

    app.addHook('onResponse', (req, reply, done) => {
      deps.metrics.http_in_flight.dec();
      const route = req.routeOptions.url ?? 'unmatched';
      const status_code = String(reply.statusCode);
      series(counters, `${req.method} ${route} ${status_code}`, () =>
        deps.metrics.http_requests.labels(req.method, route, status_code),
      ).inc();
      series(timers, `${req.method} ${route}`, () =>
        deps.metrics.http_duration.labels(req.method, route),
      ).observe(reply.elapsedTime / 1000);
      done();
    });
  },
);
