import type { Statement } from '../db/pool.ts';
import { assert } from '../lib/errors.ts';
import { newId } from '../lib/ids.ts';

/**
 * The INSERT of an event into the outbox (`events`), not sent: it commits with the change
 * it describes, in the same transaction, or not at all. The dispatcher takes it from there.
 */
/** The statement name of every outbox insert: a phase that commits one has news for the dispatcher. */
export const EVENTS_INSERT = 'moneta_events_insert';

export function eventInsert(
  scope: { merchant_id: string; livemode: boolean },
  type: string,
  object: Record<string, unknown>,
): Statement {
  assert(typeof object.id === 'string', 'an event describes an object with an id');
  return {
    name: EVENTS_INSERT,
    text: `INSERT INTO events (id, merchant_id, livemode, type, object_id, data) VALUES ($1, $2, $3, $4, $5, $6)`,
    values: [newId('evt'), scope.merchant_id, scope.livemode, type, object.id, { object }],
  };
}
