import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { NatsConnection } from 'nats';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { call, startTestMoneta, type TestMoneta } from '../../test/helpers.ts';
import { connectNats, consumeEvents, pgHandledStore, streamName } from './index.ts';

/**
 * Events on a real NATS JetStream server: started here from the `nats-server` binary when it
 * is installed (Debian's package; `.ci/run` installs it), so the test can restart it. With
 * neither the binary nor NATS_URL the tests are skipped, and say why.
 */
const BINARY = ['/usr/sbin/nats-server', '/usr/bin/nats-server', '/usr/local/bin/nats-server'].find((p) =>
  existsSync(p),
);
const SKIP = BINARY === undefined;
if (SKIP) {
  console.warn('nats.test.ts skipped: no nats-server binary (apt-get install nats-server, or run .ci/run)');
}

async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as { port: number }).port;
  await new Promise((r) => server.close(r));
  return port;
}

/** A JetStream server of our own, on a fixed port and store directory so it can be restarted. */
class NatsServer {
  private child: ChildProcess | null = null;
  constructor(
    readonly port: number,
    readonly store: string,
  ) {}
  get url(): string {
    return `nats://127.0.0.1:${this.port}`;
  }
  async start(): Promise<void> {
    this.child = spawn(BINARY!, ['-js', '-a', '127.0.0.1', '-p', String(this.port), '-sd', this.store], {
      stdio: 'ignore',
    });
    const deadline = Date.now() + 10_000;
    for (;;) {
      try {
        execFileSync(process.execPath, [
          '-e',
          `require('net').connect(${this.port},'127.0.0.1').on('connect',()=>process.exit(0)).on('error',()=>process.exit(1))`,
        ]);
        return;
      } catch {
        if (Date.now() > deadline) throw new Error('nats-server did not start');
        await new Promise((r) => setTimeout(r, 50));
      }
    }
  }
  async stop(): Promise<void> {
    const child = this.child;
    this.child = null;
    if (!child || child.exitCode !== null) return;
    child.kill('SIGTERM');
    await new Promise((r) => child.once('exit', r));
  }
}

let nats: NatsServer;
let t: TestMoneta;
let nc: NatsConnection;

beforeAll(async () => {
  if (SKIP) return;
  nats = new NatsServer(await freePort(), await mkdtemp(path.join(tmpdir(), 'moneta-nats-')));
  await nats.start();
  t = await startTestMoneta({ NATS_URL: nats.url, MONETA_RATE_LIMIT_PER_SECOND: '100000' });
  await t.moneta.nats_publisher!.ready(); // the streams exist before a consumer is made
  nc = await connectNats(nats.url, 'test-consumer');
});
afterAll(async () => {
  await nc?.close();
  await t?.close();
  await nats?.stop();
});

async function until(what: string, done: () => boolean | Promise<boolean>, limit_ms = 30_000): Promise<void> {
  const deadline = Date.now() + limit_ms;
  while (!(await done())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

async function intents(n: number, amount: number): Promise<string[]> {
  const ids: string[] = [];
  for (let i = 0; i < n; i += 1) {
    const res = await call(t.url, 'POST', '/v1/payment_intents', {
      key: t.secret_key,
      form: `amount=${amount + i}&currency=usd`,
    });
    ids.push(res.body.id);
  }
  return ids;
}

describe.skipIf(SKIP)('NATS JetStream', () => {
  it('each event reaches a consumer once per id, through publisher repeats and a NATS restart', async () => {
    const handled = new Map<string, number>(); // event id → times the handler ran
    const objects = new Set<string>();
    const stop = await consumeEvents(nc, {
      family: 'payments',
      durable: 'test-risk',
      type: 'payment_intent.created',
      handled: pgHandledStore(t.pool, 'test-risk'),
      handle: async (event) => {
        handled.set(event.id, (handled.get(event.id) ?? 0) + 1);
        objects.add(event.data.object.id as string);
      },
    });
    try {
      const first = await intents(30, 2000);
      await until('the first thirty', () => first.every((id) => objects.has(id)));

      // The publisher repeats itself (as after a crash between publishing and marking):
      // JetStream drops the repeats by Nats-Msg-Id, so the stream holds each event once.
      const jsm = await nc.jetstreamManager();
      const before = (await jsm.streams.info(streamName('payments'))).state.messages;
      await t.pool.query(`UPDATE events SET published_at = NULL WHERE type = 'payment_intent.created'`);
      t.moneta.nats_publisher!.nudge();
      await until('the repeats published', async () => {
        const { rows } = await t.pool.query(
          'SELECT count(*)::int AS n FROM events WHERE published_at IS NULL',
        );
        return rows[0].n === 0;
      });
      expect((await jsm.streams.info(streamName('payments'))).state.messages).toBe(before);

      // NATS goes away; payments go on, their events wait in the outbox, and arrive after.
      await nats.stop();
      const during = await intents(20, 3000);
      const { rows: waiting } = await t.pool.query(
        'SELECT count(*)::int AS n FROM events WHERE published_at IS NULL',
      );
      expect(waiting[0].n).toBeGreaterThan(0);
      await nats.start();
      await until(
        'the events committed while NATS was down',
        () => during.every((id) => objects.has(id)),
        60_000,
      );

      expect([...handled.values()].every((n) => n === 1)).toBe(true);
      expect(handled.size).toBe(50);
    } finally {
      await stop();
    }
  });
});
