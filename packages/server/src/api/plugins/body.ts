import type { FastifyInstance } from 'fastify';
import fp from 'fastify-plugin';
import qs from 'qs';
import { invalidRequest } from '../../lib/errors.ts';

/**
 * Stripe clients send application/x-www-form-urlencoded with bracket notation
 * (`metadata[order]=42`, `expand[]=x`); the same parser reads query strings. Depth and
 * counts are bounded so a hostile body cannot build a huge object.
 */
const QS_OPTIONS: qs.IParseOptions = {
  depth: 5,
  strictDepth: true,
  parameterLimit: 1000,
  arrayLimit: 100,
  throwOnLimitExceeded: true,
  allowPrototypes: false,
  plainObjects: true,
  charset: 'utf-8',
};

export function parseForm(text: string): Record<string, unknown> {
  try {
    return qs.parse(text, QS_OPTIONS) as Record<string, unknown>;
  } catch (err) {
    throw invalidRequest(`Invalid form-encoded parameters: ${(err as Error).message}`);
  }
}

/** Marks a query string that failed to parse; the router cannot throw, so a hook answers 400. */
export const INVALID_QUERY = Symbol('moneta.invalid_query');

/** Query-string parser for the router: it must never throw (that would crash the server). */
export function parseQuery(text: string): Record<string | symbol, unknown> {
  try {
    return parseForm(text);
  } catch (err) {
    return { [INVALID_QUERY]: (err as Error).message };
  }
}

export const bodyParsing = fp<{ body_limit_bytes: number }>(async (app: FastifyInstance, opts) => {
  app.addContentTypeParser(
    'application/x-www-form-urlencoded',
    { parseAs: 'string', bodyLimit: opts.body_limit_bytes },
    (_req, body, done) => {
      try {
        done(null, parseForm(body as string));
      } catch (err) {
        done(err as Error, undefined);
      }
    },
  );
  // Hooks in callback style: nothing here waits, and an async hook costs a promise per request.
  app.addHook('onRequest', (req, _reply, done) => {
    const problem = (req.query as Record<symbol, unknown>)[INVALID_QUERY];
    if (typeof problem === 'string') {
      done(invalidRequest(problem.replace('form-encoded parameters', 'query string')));
      return;
    }
    done();
  });
  // A POST without a body (curl -X POST) means "no parameters".
  app.addHook('preValidation', (req, _reply, done) => {
    if ((req.method === 'POST' || req.method === 'DELETE') && (req.body === undefined || req.body === null)) {
      req.body = {};
    }
    // PostgreSQL text cannot hold NUL: refused here, naming the parameter, rather than failing in SQL.
    const nul = pathWithNul(req.body, '') ?? pathWithNul(req.query, '') ?? pathWithNul(req.params, '');
    if (nul !== null) {
      done(
        invalidRequest(
          `Invalid ${nul || 'request'}: text cannot contain NUL (\\u0000) characters.`,
          nul || undefined,
        ),
      );
      return;
    }
    done();
  });
});

const MAX_NUL_SCAN_DEPTH = 8;

/** The first parameter (as `a[b][0]`) whose text holds a NUL character, or null. */
function pathWithNul(value: unknown, path: string, depth = 0): string | null {
  if (typeof value === 'string') return value.includes('\u0000') ? path : null;
  if (value === null || typeof value !== 'object' || depth > MAX_NUL_SCAN_DEPTH) return null;
  for (const [key, v] of Object.entries(value)) {
    if (key.includes('\u0000'))
      return path ? `${path}[${key.replaceAll('\u0000', '')}]` : key.replaceAll('\u0000', '');
    const found = pathWithNul(v, path ? `${path}[${key}]` : key, depth + 1);
    if (found !== null) return found;
  }
  return null;
}
