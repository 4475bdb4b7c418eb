/**
 * Errors in Stripe's shape. Domain code throws these; the HTTP layer turns them into
 * `{"error": {...}}` bodies. Nothing here knows about fastify.
 */
export type ErrorType =
  | 'api_error'
  | 'card_error'
  | 'idempotency_error'
  | 'invalid_request_error'
  | 'authentication_error'
  | 'permission_error'
  | 'rate_limit_error';

export interface StripeErrorBody {
  type: ErrorType;
  message: string;
  code?: string;
  param?: string;
  decline_code?: string;
  doc_url?: string;
  request_log_url?: string;
}

export class MonetaError extends Error {
  readonly status_code: number;
  readonly type: ErrorType;
  readonly code: string | undefined;
  readonly param: string | undefined;
  readonly headers: Record<string, string>;

  constructor(
    status_code: number,
    type: ErrorType,
    message: string,
    opts: { code?: string; param?: string; headers?: Record<string, string> } = {},
  ) {
    super(message);
    this.name = 'MonetaError';
    this.status_code = status_code;
    this.type = type;
    this.code = opts.code;
    this.param = opts.param;
    this.headers = opts.headers ?? {};
  }

  toBody(): { error: StripeErrorBody } {
    const error: StripeErrorBody = { type: this.type, message: this.message };
    if (this.code !== undefined) error.code = this.code;
    if (this.param !== undefined) error.param = this.param;
    return { error };
  }
}

export function invalidRequest(message: string, param?: string, code?: string): MonetaError {
  const opts: { code?: string; param?: string } = {};
  if (param !== undefined) opts.param = param;
  if (code !== undefined) opts.code = code;
  return new MonetaError(400, 'invalid_request_error', message, opts);
}

export function resourceMissing(objectName: string, id: string, param = 'id'): MonetaError {
  return new MonetaError(404, 'invalid_request_error', `No such ${objectName}: '${id}'`, {
    code: 'resource_missing',
    param,
  });
}

export function authenticationError(message: string): MonetaError {
  return new MonetaError(401, 'invalid_request_error', message, { code: 'api_key_invalid' });
}

export function permissionError(message: string): MonetaError {
  return new MonetaError(403, 'invalid_request_error', message, { code: 'secret_key_required' });
}

export function idempotencyMismatch(key: string): MonetaError {
  return new MonetaError(
    400,
    'idempotency_error',
    `Keys for idempotent requests can only be used with the same parameters they were first used with. ` +
      `Try using a key other than '${key}' if you meant to execute a different request.`,
  );
}

export function idempotencyKeyInUse(key: string): MonetaError {
  return new MonetaError(
    409,
    'idempotency_error',
    `There is currently another in-progress request using this Idempotency-Key ('${key}'). ` +
      'Retry this request later, or use a different key.',
    { code: 'idempotency_key_in_use' },
  );
}

export function rateLimited(retry_after_s: number): MonetaError {
  return new MonetaError(
    429,
    'invalid_request_error',
    'Too many requests hit the API too quickly. Retry after the time given in Retry-After, with exponential backoff.',
    { code: 'rate_limit', headers: { 'Retry-After': String(retry_after_s) } },
  );
}

export function internalError(): MonetaError {
  return new MonetaError(
    500,
    'api_error',
    'An unexpected error occurred on our side. Retry the request; if it persists, contact the operator with the Request-Id.',
  );
}

export function serviceUnavailable(message: string): MonetaError {
  return new MonetaError(503, 'api_error', message);
}

/** Fails loudly when an invariant of our own code does not hold (TigerBeetle style). */
export function assert(condition: unknown, message: string): asserts condition {
  if (!condition) throw new Error(`assertion failed: ${message}`);
}
