import type { FastifyInstance, FastifyRequest } from 'fastify';
import fp from 'fastify-plugin';
import { authenticationError, permissionError, rateLimited } from '../../lib/errors.ts';
import type { ApiDeps } from '../types.ts';

/** The key from `Authorization: Bearer KEY` or HTTP basic with the key as user name. */
export function keyFromHeader(header: string | undefined): string | null {
  if (!header) return null;
  const space = header.indexOf(' ');
  if (space < 0) return null;
  const scheme = header.slice(0, space).toLowerCase();
  const value = header.slice(space + 1).trim();
  if (scheme === 'bearer') return value || null;
  if (scheme === 'basic') {
    const decoded = Buffer.from(value, 'base64').toString('utf8');
    const user = decoded.split(':')[0] ?? '';
    return user || null;
  }
  return null;
}

function masked(key: string): string {
  return key.length > 12
    ? `${key.slice(0, 8)}${'*'.repeat(Math.min(20, key.length - 12))}${key.slice(-4)}`
    : '****';
}

/**
 * Authenticates every request in the scope it is registered in, then applies the per-key
 * rate limit. 401 and 429 happen before any work, so they are never stored as
 * idempotent responses.
 */
export const authentication = fp<Pick<ApiDeps, 'authenticator' | 'rate_limiter' | 'metrics'>>(
  async (app: FastifyInstance, deps) => {
    app.decorateRequest('auth', null);
    app.addHook('onRequest', async (req: FastifyRequest, reply) => {
      const raw = keyFromHeader(req.headers.authorization);
      if (!raw) {
        throw authenticationError(
          "You did not provide an API key. Send it in the Authorization header as 'Bearer sk_test_…' (or HTTP basic auth with the key as user name).",
        );
      }
      const key = await deps.authenticator.authenticate(raw);
      if (!key) throw authenticationError(`Invalid API Key provided: ${masked(raw)}`);
      if (key.kind === 'publishable' && !req.routeOptions.config.allow_publishable) {
        throw permissionError(
          'This API call cannot be made with a publishable API key (pk_…); publishable keys may only tokenize cards. Use a secret key (sk_…).',
        );
      }
      const decision = await deps.rate_limiter.take(key.api_key_id);
      if (!decision.allowed) {
        deps.metrics.rate_limited.inc();
        throw rateLimited(decision.retry_after_s);
      }
      req.auth = key;
      reply.header('Moneta-Mode', key.livemode ? 'live' : 'test');
    });
  },
  { name: 'moneta-auth' },
);
