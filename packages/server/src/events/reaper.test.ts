import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase } from '../../test/helpers.ts';
import { migrate } from '../db/migrate.ts';
import { createPool, type Pool } from '../db/pool.ts';
import { pgHandledStore, reapEvents, reapHandledEvents } from './index.ts';

let pool: Pool;
let drop: () => Promise<void>;

beforeAll(async () => {
  const db = await createTestDatabase();
  drop = db.drop;
  pool = createPool({ connection_string: db.url, max_connections: 4, application_name: 'reaper-test' });
  await migrate(pool);
});
afterAll(async () => {
  await pool?.end();
  await drop?.();
});

describe('old events', () => {
  it('go after 30 days with their deliveries and attempts, once dispatched and published', async () => {
    const event = (id: string, age_days: number, done: boolean) =>
      pool.query(
        `INSERT INTO events (id, merchant_id, livemode, type, object_id, data, created_at, dispatched_at, published_at)
         VALUES ($1, 'acct_1', false, 'payment_intent.created', 'pi_1', '{}',
                 now() - make_interval(days => $2), CASE WHEN $3 THEN now() END, CASE WHEN $3 THEN now() END)`,
        [id, age_days, done],
      );
    await event('evt_old_done', 40, true);
    await event('evt_old_waiting', 40, false); // still in the outbox: never dropped unsent
    await event('evt_recent', 2, true);
    for (const id of ['evt_old_done', 'evt_recent']) {
      await pool.query(
        `INSERT INTO webhook_deliveries (endpoint_id, event_id, merchant_id, livemode, status)
         VALUES ('we_1', $1, 'acct_1', false, 'succeeded')`,
        [id],
      );
      await pool.query(
        `INSERT INTO webhook_attempts (endpoint_id, event_id, attempt, status_code, latency_ms)
         VALUES ('we_1', $1, 1, 200, 12)`,
        [id],
      );
    }
    expect(await reapEvents(pool, 5)).toBe(1);
    const left = async (table: string) =>
      (
        await pool.query(`SELECT ${table === 'events' ? 'id' : 'event_id'} AS id FROM ${table} ORDER BY 1`)
      ).rows.map((r) => r.id);
    expect(await left('events')).toEqual(['evt_old_waiting', 'evt_recent']);
    expect(await left('webhook_deliveries')).toEqual(['evt_recent']);
    expect(await left('webhook_attempts')).toEqual(['evt_recent']);
  });
});

describe('handled marks of NATS consumers', () => {
  it('are deleted once their stream can no longer redeliver the event, and kept until then', async () => {
    const store = pgHandledStore(pool, 'ledger-sync');
    for (let i = 0; i < 12; i += 1) await store.add(`evt_${i}`);
    // Eight marks from before the streams' max_age (30 days), four from this week.
    await pool.query(
      `UPDATE nats_handled_events
          SET handled_at = now() - make_interval(days => CASE WHEN substr(event_id, 5)::int < 8 THEN 45 ELSE 3 END)`,
    );
    expect(await reapHandledEvents(pool, 10)).toBe(8);
    expect(await Promise.all([0, 7, 8, 11].map((i) => store.has(`evt_${i}`)))).toEqual([
      false,
      false,
      true,
      true,
    ]);
    expect(await reapHandledEvents(pool, 10)).toBe(0);
  });
});
