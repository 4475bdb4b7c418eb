/**
 * Request validation. Strict on purpose: the simulator exists to test Moneta's connector, so a
 * misspelt or unexpected field is an error (400) rather than something silently ignored.
 * Messages name the parameter, never its value (it could be a card number).
 */
import type { CardData } from './cards.ts';
import { ApiError, badParam } from './errors.ts';
import {
  MAX_AMOUNT,
  MAX_KEY_LENGTH,
  MAX_REFERENCE_LENGTH,
  MAX_STATEMENT_DESCRIPTOR_LENGTH,
} from './limits.ts';

export interface AuthorizeInput {
  reference: string;
  amount: number;
  currency: string;
  card: CardData;
  statement_descriptor: string | null;
  /** Capture the full amount with the approval (a sale): one call instead of two. */
  capture: boolean;
}

export interface CaptureInput {
  reference: string;
  /** null: the full approved amount. */
  amount: number | null;
}

export interface VoidInput {
  reference: string;
}

export interface RefundInput {
  reference: string;
  amount: number;
}

type Fields = Record<string, unknown>;

function object(value: unknown, param: string): Fields {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw badParam(param, `${param} must be a JSON object.`);
  }
  return value as Fields;
}

function onlyKnown(fields: Fields, known: readonly string[], prefix: string): void {
  for (const key of Object.keys(fields)) {
    if (!known.includes(key)) {
      throw new ApiError(400, 'parameter_unknown', `Unknown parameter: ${prefix}${key}.`, `${prefix}${key}`);
    }
  }
}

function required(fields: Fields, key: string, param: string): unknown {
  const value = fields[key];
  if (value === undefined || value === null) {
    throw new ApiError(400, 'parameter_missing', `Missing required parameter: ${param}.`, param);
  }
  return value;
}

/** Printable text without control characters (references end up in CSV rows and URLs). */
function text(value: unknown, param: string, max: number): string {
  if (typeof value !== 'string' || value.length === 0 || value.length > max) {
    throw badParam(param, `${param} must be a non-empty string of at most ${max} characters.`);
  }
  // biome-ignore lint/suspicious/noControlCharactersInRegex: rejecting control characters is the point
  if (/[\u0000-\u001f\u007f]/.test(value))
    throw badParam(param, `${param} must not contain control characters.`);
  return value;
}

export function reference(value: unknown, param = 'reference'): string {
  return text(value, param, MAX_REFERENCE_LENGTH);
}

function amount(value: unknown, param: string): number {
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value <= 0 || value > MAX_AMOUNT) {
    throw badParam(param, `${param} must be an integer from 1 to ${MAX_AMOUNT} (minor units).`);
  }
  return value;
}

function integerIn(value: unknown, param: string, min: number, max: number): number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > max) {
    throw badParam(param, `${param} must be an integer from ${min} to ${max}.`);
  }
  return value;
}

function card(value: unknown): CardData {
  const fields = object(value, 'card');
  onlyKnown(fields, ['number', 'exp_month', 'exp_year', 'cvc'], 'card.');
  const number = required(fields, 'number', 'card.number');
  if (typeof number !== 'string' || !/^\d{12,19}$/.test(number)) {
    throw badParam('card.number', 'card.number must be a string of 12 to 19 digits.');
  }
  const cvc = fields['cvc'] ?? null;
  if (cvc !== null && (typeof cvc !== 'string' || !/^\d{3,4}$/.test(cvc))) {
    throw badParam('card.cvc', 'card.cvc must be a string of 3 or 4 digits, or null.');
  }
  return {
    number,
    exp_month: integerIn(required(fields, 'exp_month', 'card.exp_month'), 'card.exp_month', 1, 12),
    exp_year: integerIn(required(fields, 'exp_year', 'card.exp_year'), 'card.exp_year', 1970, 9999),
    cvc,
  };
}

export function authorizeInput(body: unknown): AuthorizeInput {
  const fields = object(body, 'body');
  onlyKnown(fields, ['reference', 'amount', 'currency', 'card', 'statement_descriptor', 'capture'], '');
  const capture = fields['capture'] ?? false;
  if (typeof capture !== 'boolean') throw badParam('capture', 'capture must be true or false.');
  const currency = required(fields, 'currency', 'currency');
  if (typeof currency !== 'string' || !/^[a-z]{3}$/.test(currency)) {
    throw badParam('currency', 'currency must be a lowercase three-letter ISO 4217 code.');
  }
  const descriptor = fields['statement_descriptor'] ?? null;
  return {
    reference: reference(required(fields, 'reference', 'reference')),
    amount: amount(required(fields, 'amount', 'amount'), 'amount'),
    currency,
    card: card(required(fields, 'card', 'card')),
    statement_descriptor:
      descriptor === null ? null : text(descriptor, 'statement_descriptor', MAX_STATEMENT_DESCRIPTOR_LENGTH),
    capture,
  };
}

export function captureInput(body: unknown): CaptureInput {
  const fields = object(body, 'body');
  onlyKnown(fields, ['reference', 'amount'], '');
  const value = fields['amount'] ?? null;
  return {
    reference: reference(required(fields, 'reference', 'reference')),
    amount: value === null ? null : amount(value, 'amount'),
  };
}

export function voidInput(body: unknown): VoidInput {
  const fields = object(body, 'body');
  onlyKnown(fields, ['reference'], '');
  return { reference: reference(required(fields, 'reference', 'reference')) };
}

export function refundInput(body: unknown): RefundInput {
  const fields = object(body, 'body');
  onlyKnown(fields, ['reference', 'amount'], '');
  return {
    reference: reference(required(fields, 'reference', 'reference')),
    amount: amount(required(fields, 'amount', 'amount'), 'amount'),
  };
}

export function idempotencyKey(header: string | string[] | undefined): string {
  if (header === undefined) {
    throw new ApiError(400, 'idempotency_key_missing', 'The Idempotency-Key header is required.');
  }
  if (typeof header !== 'string' || header.length === 0 || header.length > MAX_KEY_LENGTH) {
    throw new ApiError(
      400,
      'idempotency_key_invalid',
      `The Idempotency-Key header must be one value of 1 to ${MAX_KEY_LENGTH} characters.`,
    );
  }
  return header;
}

/** A settlement day, YYYY-MM-DD, that exists in the calendar. */
export function reportDate(value: string): string {
  const match = /^(\d{4})-(\d{2})-(\d{2})$/.exec(value);
  const date = match ? new Date(`${value}T00:00:00Z`) : null;
  if (date === null || Number.isNaN(date.getTime()) || date.toISOString().slice(0, 10) !== value) {
    throw badParam('date', 'The report date must be a calendar day written YYYY-MM-DD.');
  }
  return value;
}
