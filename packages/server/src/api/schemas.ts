import { invalidRequest } from '../lib/errors.ts';
import { MAX_LIST_LIMIT } from '../lib/list.ts';
import { METADATA_MAX_KEYS, METADATA_MAX_VALUE_LENGTH } from '../lib/metadata.ts';

/** Schema pieces shared by routes. Domain code re-checks what schemas cannot express. */
export const str = (maxLength: number) => ({ type: 'string', maxLength }) as const;

export const idParam = {
  type: 'object',
  properties: { id: { type: 'string', minLength: 1, maxLength: 255 } },
  required: ['id'],
  additionalProperties: false,
} as const;

/** metadata: a map of strings, or "" to clear every key. */
export const metadataSchema = {
  anyOf: [
    {
      type: 'object',
      maxProperties: METADATA_MAX_KEYS,
      additionalProperties: { type: 'string', maxLength: METADATA_MAX_VALUE_LENGTH },
    },
    { type: 'string', maxLength: 0 },
  ],
} as const;

/** `expand[]`: accepted for Stripe client compatibility; nothing is expandable yet. */
export const expandSchema = {
  type: 'array',
  maxItems: 20,
  items: { type: 'string', maxLength: 200 },
} as const;

/** Unix seconds, up to the year 9999. */
export const timestamp = { type: 'integer', minimum: 0, maximum: 253402300799 } as const;

export const createdFilterSchema = {
  anyOf: [
    timestamp,
    {
      type: 'object',
      properties: { gt: timestamp, gte: timestamp, lt: timestamp, lte: timestamp },
      additionalProperties: false,
    },
  ],
} as const;

export const listQueryProperties = {
  limit: { type: 'integer', minimum: 1, maximum: MAX_LIST_LIMIT, default: 10 },
  starting_after: str(255),
  ending_before: str(255),
  expand: expandSchema,
} as const;

export const noQuery = {
  type: 'object',
  properties: { expand: expandSchema },
  additionalProperties: false,
} as const;

/** The fields of a postal address (customers, billing details). */
export const addressProperties = {
  city: str(200),
  country: str(200),
  line1: str(200),
  line2: str(200),
  postal_code: str(200),
  state: str(200),
} as const;

/** Nothing is expandable yet; say so instead of silently ignoring `expand[]`. */
export function rejectExpand(expand: string[] | undefined): void {
  const first = expand?.[0];
  if (first !== undefined) throw invalidRequest(`This property cannot be expanded (${first}).`, 'expand[0]');
}
