import type { FastifySchemaValidationError } from 'fastify/types/schema.js';
import { invalidRequest, type MonetaError } from '../lib/errors.ts';

/** `/address/city` → `address[city]`: Stripe names nested parameters with brackets. */
export function bracketPath(segments: string[]): string {
  const [head, ...rest] = segments.filter((s) => s.length > 0);
  if (head === undefined) return '';
  return head + rest.map((s) => `[${s}]`).join('');
}

function pointerSegments(pointer: string): string[] {
  return pointer
    .split('/')
    .slice(1)
    .map((s) => s.replace(/~1/g, '/').replace(/~0/g, '~'));
}

/** Turns the first JSON-schema error into a Stripe-shaped 400 that names the parameter. */
export function schemaErrorToStripe(errors: FastifySchemaValidationError[], context: string): MonetaError {
  const e = errors[0];
  if (!e) return invalidRequest('Invalid request.');
  const segments = pointerSegments(e.instancePath);
  const params = e.params as Record<string, unknown>;
  if (e.keyword === 'additionalProperties') {
    const param = bracketPath([...segments, String(params.additionalProperty)]);
    return invalidRequest(`Received unknown parameter: ${param}`, param, 'parameter_unknown');
  }
  if (e.keyword === 'required') {
    const param = bracketPath([...segments, String(params.missingProperty)]);
    return invalidRequest(`Missing required param: ${param}.`, param, 'parameter_missing');
  }
  const param = bracketPath(segments);
  if (param === '') {
    return invalidRequest(
      context === 'body'
        ? 'Invalid request body: send parameters as application/x-www-form-urlencoded or a JSON object.'
        : `Invalid ${context}.`,
    );
  }
  switch (e.keyword) {
    case 'type': {
      const expected = String(params.type);
      const code =
        expected === 'integer'
          ? 'parameter_invalid_integer'
          : expected === 'object'
            ? 'parameter_invalid_hash'
            : 'parameter_invalid';
      const noun = expected === 'object' ? 'hash' : expected === 'array' ? 'array' : expected;
      return invalidRequest(`Invalid ${noun} for ${param}.`, param, code);
    }
    case 'maxLength':
      return invalidRequest(
        `Invalid ${param}: must be at most ${params.limit} characters.`,
        param,
        'parameter_invalid_string',
      );
    case 'minLength':
      return invalidRequest(
        `Invalid ${param}: must be at least ${params.limit} characters.`,
        param,
        'parameter_invalid_empty',
      );
    case 'minimum':
    case 'maximum':
    case 'exclusiveMinimum':
    case 'exclusiveMaximum':
      return invalidRequest(
        `Invalid ${param}: must be ${params.comparison} ${params.limit}.`,
        param,
        'parameter_invalid_integer',
      );
    case 'enum':
      return invalidRequest(
        `Invalid ${param}: must be one of ${(params.allowedValues as unknown[]).join(', ')}.`,
        param,
        'parameter_invalid',
      );
    case 'maxProperties':
      return invalidRequest(
        `Invalid ${param}: at most ${params.limit} keys are allowed.`,
        param,
        'parameter_invalid',
      );
    case 'maxItems':
      return invalidRequest(
        `Invalid ${param}: at most ${params.limit} items are allowed.`,
        param,
        'parameter_invalid',
      );
    case 'propertyNames':
      return invalidRequest(`Invalid key in ${param}.`, param, 'parameter_invalid');
    default:
      return invalidRequest(`Invalid value for ${param}.`, param, 'parameter_invalid');
  }
}
