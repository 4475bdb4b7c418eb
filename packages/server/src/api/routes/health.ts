import type { FastifyInstance } from 'fastify';
import type { ApiDeps } from '../types.ts';

/** Probes and metrics: no API key, so load balancers and Prometheus can reach them. */
export async function healthRoutes(app: FastifyInstance, deps: Pick<ApiDeps, 'readiness' | 'metrics'>) {
  app.get('/healthz', async (_req, reply) => app.sendJson(reply, 200, { status: 'ok' }));

  app.get('/readyz', async (_req, reply) => {
    const report = await deps.readiness();
    return app.sendJson(reply, report.ready ? 200 : 503, {
      status: report.ready ? 'ready' : 'not_ready',
      checks: report.checks,
    });
  });

  app.get('/metrics', async (_req, reply) => {
    const text = await deps.metrics.registry.metrics();
    return reply.type(deps.metrics.registry.contentType).send(text);
  });
}
