import { mkdtemp } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { call, createTestDatabase, startMonetaProcess } from '../../test/helpers.ts';
import { migrate } from '../db/migrate.ts';
import { createPool, type Pool } from '../db/pool.ts';
import { createMerchant } from '../merchants/index.ts';

/**
 * kill -9 of the process that dispatches webhooks while a batch is being delivered: events
 * are committed, some deliveries are in flight, the process dies. After a restart every
 * committed event reaches the receiver (the leases of the dead process's deliveries run out
 * and they are claimed again), and an event delivered twice carries the same event id.
 */
const EVENTS = 300;

let db: { url: string; drop: () => Promise<void> };
let pool: Pool;
let merchant_id: string;
let secret_key: string;
let env: Record<string, string>;
let receiver: Server;
let receiver_url: string;
/** Event ids as they arrived, duplicates included. */
const arrivals: string[] = [];

beforeAll(async () => {
  db = await createTestDatabase();
  pool = createPool({ connection_string: db.url, max_connections: 4, application_name: 'events-crash-test' });
  await migrate(pool);
  const merchant = await createMerchant(pool, { name: 'Webhook crash' });
  merchant_id = merchant.merchant.id;
  secret_key = merchant.test.secret_key;
  // A receiver that takes 20 ms per delivery, so a batch is still in flight when the process dies.
  receiver = createServer((req, res) => {
    let body = '';
    req.on('data', (c: Buffer) => {
      body += c.toString('utf8');
    });
    req.on('end', () => {
      setTimeout(() => {
        arrivals.push(JSON.parse(body).id as string);
        res.writeHead(200);
        res.end('ok');
      }, 20);
    });
  });
  await new Promise<void>((r) => receiver.listen(0, '127.0.0.1', r));
  receiver_url = `http://127.0.0.1:${(receiver.address() as AddressInfo).port}/hook`;
  env = {
    DATABASE_URL: db.url,
    MONETA_ACQUIRERS: 'acme=http://127.0.0.1:9',
    MONETA_DEMO_MERCHANT: 'false',
    MONETA_WEBHOOK_ALLOW_PRIVATE: 'true',
    MONETA_WEBHOOK_TIMEOUT_MS: '1000',
    // Leases (four timeouts and a scaled minute) run out in about four seconds.
    MONETA_WEBHOOK_RETRY_SCALE: '0.001',
    MONETA_KEK_FILE: path.join(
      await mkdtemp(path.join(tmpdir(), 'moneta-events-crash-keys-')),
      'keyring.json',
    ),
    LOG_LEVEL: 'warn',
  };
});
afterAll(async () => {
  receiver?.closeAllConnections();
  receiver?.close();
  await pool?.end();
  await db?.drop();
});

const startMoneta = () => startMonetaProcess(env);

async function until(what: string, done: () => boolean, limit_ms = 60_000): Promise<void> {
  const deadline = Date.now() + limit_ms;
  while (!done()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

describe('crash of the dispatcher', () => {
  it('kill -9 mid-batch loses no committed event; a repeat carries the same event id', async () => {
    const first = await startMoneta();
    const we = await call(first.url, 'POST', '/v1/webhook_endpoints', {
      key: secret_key,
      form: `url=${encodeURIComponent(receiver_url)}&enabled_events[]=*`,
    });
    expect(we.status).toBe(200);
    // Committed straight to the outbox, as any domain's transaction commits its events.
    const { rows } = await pool.query(
      `INSERT INTO events (id, merchant_id, livemode, type, object_id, data)
       SELECT 'evt_C' || lpad(i::text, 24, '0'), $1, false, 'crash.test', 'obj_' || i,
              jsonb_build_object('object', jsonb_build_object('id', 'obj_' || i))
         FROM generate_series(1, $2) AS i
       RETURNING id`,
      [merchant_id, EVENTS],
    );
    const committed = rows.map((r) => r.id as string);
    await until('some deliveries', () => arrivals.length >= 20);
    first.child.kill('SIGKILL');
    await new Promise((r) => first.child.once('exit', r));
    const before_restart = arrivals.length;
    expect(before_restart).toBeLessThan(EVENTS); // the batch was cut short

    const second = await startMoneta();
    try {
      await until('every committed event', () => committed.every((id) => arrivals.includes(id)));
    } finally {
      second.child.kill('SIGTERM');
      await new Promise((r) => second.child.once('exit', r));
    }
    // Nothing arrived that was not committed, and every committed event arrived.
    expect(new Set(arrivals)).toEqual(new Set(committed));
    const { rows: left } = await pool.query(
      `SELECT count(*)::int AS n FROM events WHERE dispatched_at IS NULL`,
    );
    expect(left[0].n).toBe(0);
  });
});
