/** An answer other than 200, in the API's error shape `{"error": {"code", "message"}}`. */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly param?: string,
  ) {
    super(message);
    this.name = 'ApiError';
  }

  body(): string {
    const error: { code: string; message: string; param?: string } = {
      code: this.code,
      message: this.message,
    };
    if (this.param !== undefined) error.param = this.param;
    return JSON.stringify({ error });
  }
}

export function badParam(param: string, message: string): ApiError {
  return new ApiError(400, 'parameter_invalid', message, param);
}

/** A broken internal invariant: a bug or a corrupt journal, never a client error. */
export function assert(condition: unknown, message: string): asserts condition {
  if (!condition) throw new Error(`acquirer-sim invariant violated: ${message}`);
}
