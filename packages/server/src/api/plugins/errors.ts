import type { FastifyError, FastifyInstance } from 'fastify';
import fp from 'fastify-plugin';
import FindMyWay from 'find-my-way';
import { internalError, invalidRequest, MonetaError } from '../../lib/errors.ts';
import { redactCardNumbers } from '../../ops/redact.ts';
import { schemaErrorToStripe } from '../validation.ts';

const METHODS = ['GET', 'POST', 'DELETE', 'PUT', 'PATCH'] as const;

function send(reply: import('fastify').FastifyReply, error: MonetaError) {
  const body = error.toBody();
  // Error messages may echo client input; a card number must not come back in one.
  body.error.message = redactCardNumbers(body.error.message);
  if (body.error.param) body.error.param = redactCardNumbers(body.error.param);
  reply.code(error.status_code).headers(error.headers).type('application/json; charset=utf-8');
  return reply.send(JSON.stringify(body));
}

/** Maps fastify's own errors (parsing, limits, media types) onto Stripe's shape. */
function fromFastifyError(err: FastifyError, bodyLimit: number): MonetaError | null {
  if (err.validation) return schemaErrorToStripe(err.validation, err.validationContext ?? 'request');
  switch (err.code) {
    case 'FST_ERR_CTP_BODY_TOO_LARGE':
      return new MonetaError(
        413,
        'invalid_request_error',
        `Request body is larger than ${bodyLimit} bytes.`,
        {
          code: 'request_too_large',
        },
      );
    case 'FST_ERR_CTP_INVALID_MEDIA_TYPE':
      return new MonetaError(
        415,
        'invalid_request_error',
        'Unsupported Content-Type. Send application/x-www-form-urlencoded (as Stripe clients do) or application/json.',
        { code: 'unsupported_media_type' },
      );
    case 'FST_ERR_CTP_EMPTY_JSON_BODY':
      return invalidRequest(
        'The request body is empty but Content-Type is application/json. Send a JSON object.',
      );
    case 'FST_ERR_CTP_INVALID_CONTENT_LENGTH':
      return invalidRequest('Content-Length does not match the body sent.');
    default:
      break;
  }
  if (err instanceof SyntaxError || err.code === 'FST_ERR_CTP_INVALID_JSON_BODY') {
    return invalidRequest(`Invalid JSON body: ${err.message}`, undefined, 'invalid_json');
  }
  const status = err.statusCode ?? 500;
  if (status >= 400 && status < 500) return new MonetaError(status, 'invalid_request_error', err.message);
  return null;
}

/**
 * Every error leaves in Stripe's shape. Unknown URLs answer 404, known URLs with the
 * wrong method 405 with `Allow`; nothing unexpected ever shows a stack trace.
 */
export const errorHandling = fp<{ body_limit_bytes: number }>(async (app: FastifyInstance, opts) => {
  const known = FindMyWay({ ignoreTrailingSlash: true });
  app.addHook('onRoute', (route) => {
    const methods = Array.isArray(route.method) ? route.method : [route.method];
    for (const method of methods) {
      if (method === 'HEAD' || method === 'OPTIONS') continue;
      try {
        known.on(method as 'GET', route.url, () => {});
      } catch {
        // the same route registered twice (fastify would already have refused it)
      }
    }
  });

  app.setErrorHandler((err: FastifyError, req, reply) => {
    if (err instanceof MonetaError) return send(reply, err);
    const mapped = fromFastifyError(err, opts.body_limit_bytes);
    if (mapped) return send(reply, mapped);
    req.log.error({ err }, 'unhandled error');
    return send(reply, internalError());
  });

  app.setNotFoundHandler((req, reply) => {
    const path = req.url.split('?')[0] ?? '/';
    const allowed = METHODS.filter((m) => known.find(m, path) !== null);
    if (allowed.length > 0) {
      reply.header('Allow', allowed.join(', '));
      return send(
        reply,
        new MonetaError(
          405,
          'invalid_request_error',
          `Method ${req.method} is not allowed for ${path}. Allowed: ${allowed.join(', ')}.`,
          {
            code: 'method_not_allowed',
          },
        ),
      );
    }
    return send(
      reply,
      new MonetaError(
        404,
        'invalid_request_error',
        `Unrecognized request URL (${req.method}: ${path}). See the API reference in docs/.`,
        {
          code: 'url_invalid',
        },
      ),
    );
  });
});
