/**
 * Explicit bounds. Everything the simulator keeps or queues has a ceiling, so a runaway client
 * or benchmark gets a clear error instead of an out-of-memory crash.
 */

/** Largest request body read (413 beyond). */
export const MAX_BODY_BYTES = 64 * 1024;
/** Idempotency keys and our references (authorization, capture, void, refund). */
export const MAX_KEY_LENGTH = 255;
export const MAX_REFERENCE_LENGTH = 255;
export const MAX_STATEMENT_DESCRIPTOR_LENGTH = 255;
/** Keeps `amount * 29` (the fee) and every sum far inside Number.MAX_SAFE_INTEGER. */
export const MAX_AMOUNT = 999_999_999_999;

/**
 * Memory ceilings. State lives in memory (about 1.5 KiB per authorization with its stored
 * responses), so 1 M authorizations is roughly 1.5 GiB of heap. Past a ceiling new writes are
 * refused with 503 `capacity_exceeded`; start on a fresh data dir to continue.
 */
export const MAX_AUTHORIZATIONS = 1_000_000;
export const MAX_STORED_RESPONSES = 2_000_000;
export const MAX_REFUNDS_PER_AUTHORIZATION = 100;

/** Journal events appended but not yet fsync'ed; beyond it writes get 503 `overloaded`. */
export const MAX_JOURNAL_BACKLOG = 50_000;
/** A journal line longer than this is corruption, not an event. */
export const MAX_JOURNAL_LINE_BYTES = 4 * 1024 * 1024;

/** Ceiling on injected latency and hangs. */
export const MAX_FAULT_DELAY_MS = 600_000;
export const DEFAULT_HANG_MS = 30_000;

/** How long close() lets in-flight requests finish before cutting connections. */
export const CLOSE_GRACE_MS = 5_000;
