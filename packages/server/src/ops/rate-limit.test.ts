import net from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { call, countRows, startTestMoneta, type TestMoneta } from '../../test/helpers.ts';
import { createLogger } from './logger.ts';
import { MemoryTokenBucket, RedisTokenBucket } from './rate-limit.ts';

describe('token bucket in memory', () => {
  it('allows a burst, then refills at the rate', async () => {
    const bucket = new MemoryTokenBucket({ rate_per_second: 2, burst: 3 });
    const t0 = 1_000_000;
    for (let i = 0; i < 3; i += 1) expect((await bucket.take('k', t0)).allowed).toBe(true);
    const refused = await bucket.take('k', t0);
    expect(refused).toEqual({ allowed: false, retry_after_s: 1 });
    expect((await bucket.take('k', t0 + 500)).allowed).toBe(true); // 0.5 s × 2/s = 1 token
    expect((await bucket.take('k', t0 + 500)).allowed).toBe(false);
    expect((await bucket.take('other', t0)).allowed).toBe(true); // per key
  });
});

async function redisReachable(url: string): Promise<boolean> {
  const u = new URL(url);
  return new Promise((resolve) => {
    const socket = net.connect({ host: u.hostname, port: Number(u.port || 6379) });
    socket.setTimeout(500);
    socket.on('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.on('error', () => resolve(false));
    socket.on('timeout', () => {
      socket.destroy();
      resolve(false);
    });
  });
}

const REDIS_URL = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';
const haveRedis = await redisReachable(REDIS_URL);

describe.skipIf(!haveRedis)(
  `token bucket shared through Redis (needs Redis at ${REDIS_URL}; skipped when it does not answer)`,
  () => {
    it('two limiters on one Redis share the same bucket', async () => {
      const log = createLogger('silent');
      const a = new RedisTokenBucket(REDIS_URL, { rate_per_second: 1, burst: 4 }, log);
      const b = new RedisTokenBucket(REDIS_URL, { rate_per_second: 1, burst: 4 }, log);
      const key = `test-${Date.now()}-${Math.random()}`;
      const results = [];
      for (let i = 0; i < 6; i += 1) results.push((await (i % 2 ? a : b).take(key)).allowed);
      expect(results.filter(Boolean).length).toBe(4);
      expect(results.slice(4)).toEqual([false, false]);
      await a.close();
      await b.close();
    });
  },
);

describe('429 over HTTP', () => {
  let t: TestMoneta;
  beforeAll(async () => {
    t = await startTestMoneta({ MONETA_RATE_LIMIT_PER_SECOND: '1', MONETA_RATE_LIMIT_BURST: '3' });
  });
  afterAll(async () => t?.close());

  it('answers 429 rate_limit with Retry-After once a key exhausts its bucket, and stores nothing', async () => {
    const responses = [];
    for (let i = 0; i < 5; i += 1) {
      responses.push(
        await call(t.url, 'POST', '/v1/customers', {
          key: t.secret_key,
          form: 'name=R',
          headers: { 'idempotency-key': `rl-${i}` },
        }),
      );
    }
    const limited = responses.filter((r) => r.status === 429);
    expect(limited.length).toBeGreaterThanOrEqual(1);
    const r = limited[0]!;
    expect(r.body.error).toMatchObject({ type: 'invalid_request_error', code: 'rate_limit' });
    expect(Number(r.headers.get('retry-after'))).toBeGreaterThanOrEqual(1);
    const { rows } = await t.pool.query('SELECT idempotency_key FROM idempotency_keys');
    const stored = new Set(rows.map((x) => x.idempotency_key));
    for (const [i, res] of responses.entries()) expect(stored.has(`rl-${i}`)).toBe(res.status === 200);
    expect(await countRows(t.pool, 'customers')).toBe(responses.filter((x) => x.status === 200).length);
    // Another key of the same merchant has its own bucket.
    const live = await call(t.url, 'GET', '/v1/customers', { key: t.live_secret_key });
    expect(live.status).toBe(200);
  });
});
