import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase } from '../../test/helpers.ts';
import { migrate } from '../db/migrate.ts';
import { createPool, type Pool } from '../db/pool.ts';
import { pgHandledStore, reapHandledEvents } from './index.ts';

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
