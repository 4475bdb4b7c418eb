import { invalidRequest } from './errors.ts';

/** Stripe's metadata limits: 50 keys, keys up to 40 characters, values up to 500. */
export const METADATA_MAX_KEYS = 50;
export const METADATA_MAX_KEY_LENGTH = 40;
export const METADATA_MAX_VALUE_LENGTH = 500;

export type Metadata = Record<string, string>;
/** As sent by a client: a map (a value of "" removes that key on update), or "" to clear all. */
export type MetadataInput = Record<string, string> | '';

export function checkMetadata(input: MetadataInput | undefined): void {
  if (input === undefined || input === '') return;
  const keys = Object.keys(input);
  if (keys.length > METADATA_MAX_KEYS) {
    throw invalidRequest(`Metadata can have at most ${METADATA_MAX_KEYS} keys.`, 'metadata');
  }
  for (const key of keys) {
    const param = `metadata[${key}]`;
    if (key.length === 0 || key.length > METADATA_MAX_KEY_LENGTH || /[[\]]/.test(key)) {
      throw invalidRequest(
        `Metadata keys must be 1 to ${METADATA_MAX_KEY_LENGTH} characters without square brackets.`,
        param,
      );
    }
    const value = input[key];
    if (typeof value !== 'string' || value.length > METADATA_MAX_VALUE_LENGTH) {
      throw invalidRequest(
        `Metadata values must be strings of at most ${METADATA_MAX_VALUE_LENGTH} characters.`,
        param,
      );
    }
  }
}

/** New metadata for a create: empty values are dropped. */
export function metadataForCreate(input: MetadataInput | undefined): Metadata {
  return mergeMetadata({}, input);
}

/** Stripe's update rule: keys merge, "" removes a key, metadata="" clears all. */
export function mergeMetadata(current: Metadata, input: MetadataInput | undefined): Metadata {
  if (input === undefined) return current;
  if (input === '') return {};
  const out: Metadata = { ...current };
  for (const [k, v] of Object.entries(input)) {
    if (v === '') delete out[k];
    else out[k] = v;
  }
  if (Object.keys(out).length > METADATA_MAX_KEYS) {
    throw invalidRequest(`Metadata can have at most ${METADATA_MAX_KEYS} keys.`, 'metadata');
  }
  return out;
}

/** Metadata with keys in code-unit order, whatever order the storage returned them in. */
export function orderedMetadata(metadata: Metadata): Metadata {
  const out: Metadata = {};
  for (const key of Object.keys(metadata).sort()) out[key] = metadata[key]!;
  return out;
}
