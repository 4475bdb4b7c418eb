import { Redis } from 'ioredis';
import type { Logger } from 'pino';

export interface RateDecision {
  allowed: boolean;
  /** Whole seconds until one token is available again (for Retry-After). */
  retry_after_s: number;
}

export interface RateLimiter {
  take(key: string): Promise<RateDecision>;
  close(): Promise<void>;
}

export interface BucketOptions {
  rate_per_second: number;
  burst: number;
}

/** Keys tracked in memory at most; past this, the least recently refilled half is dropped. */
const MAX_MEMORY_BUCKETS = 100_000;

/** A token bucket per key, in this process's memory: the default for one instance. */
export class MemoryTokenBucket implements RateLimiter {
  private readonly buckets = new Map<string, { tokens: number; updated_ms: number }>();

  constructor(private readonly opts: BucketOptions) {}

  async take(key: string, now_ms = Date.now()): Promise<RateDecision> {
    let bucket = this.buckets.get(key);
    if (!bucket) {
      if (this.buckets.size >= MAX_MEMORY_BUCKETS) this.evict();
      bucket = { tokens: this.opts.burst, updated_ms: now_ms };
      this.buckets.set(key, bucket);
    }
    const elapsed_s = Math.max(0, now_ms - bucket.updated_ms) / 1000;
    bucket.tokens = Math.min(this.opts.burst, bucket.tokens + elapsed_s * this.opts.rate_per_second);
    bucket.updated_ms = now_ms;
    if (bucket.tokens >= 1) {
      bucket.tokens -= 1;
      return { allowed: true, retry_after_s: 0 };
    }
    return {
      allowed: false,
      retry_after_s: Math.max(1, Math.ceil((1 - bucket.tokens) / this.opts.rate_per_second)),
    };
  }

  private evict(): void {
    const entries = [...this.buckets.entries()].sort((a, b) => a[1].updated_ms - b[1].updated_ms);
    for (const [k] of entries.slice(0, entries.length / 2)) this.buckets.delete(k);
  }

  async close(): Promise<void> {}
}

/**
 * The same token bucket kept in Redis, so several API processes share one limit per key.
 * The refill-and-take runs as one Lua script: atomic without a round trip per step.
 */
const TAKE_SCRIPT = `
local rate = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local t = redis.call('TIME')
local now_ms = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local state = redis.call('HMGET', KEYS[1], 'tokens', 'updated_ms')
local tokens = tonumber(state[1]) or burst
local updated = tonumber(state[2]) or now_ms
local elapsed = math.max(0, now_ms - updated) / 1000
tokens = math.min(burst, tokens + elapsed * rate)
local allowed = 0
if tokens >= 1 then
  tokens = tokens - 1
  allowed = 1
end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'updated_ms', now_ms)
redis.call('PEXPIRE', KEYS[1], math.ceil(burst / rate * 1000) + 1000)
local wait_s = 0
if allowed == 0 then wait_s = math.max(1, math.ceil((1 - tokens) / rate)) end
return {allowed, wait_s}
`;

export class RedisTokenBucket implements RateLimiter {
  private readonly redis: Redis;
  private last_warning_ms = 0;

  constructor(
    url: string,
    private readonly opts: BucketOptions,
    private readonly log: Logger,
  ) {
    // A bounded command timeout: a slow Redis must not stall payments; past it we fail open.
    this.redis = new Redis(url, { maxRetriesPerRequest: 1, commandTimeout: 250, enableOfflineQueue: true });
    this.redis.on('error', (err) => this.warn(err));
    this.redis.defineCommand('monetaTake', { numberOfKeys: 1, lua: TAKE_SCRIPT });
  }

  async take(key: string): Promise<RateDecision> {
    try {
      const [allowed, wait_s] = (await (
        this.redis as unknown as { monetaTake(k: string, r: number, b: number): Promise<[number, number]> }
      ).monetaTake(`moneta:rl:${key}`, this.opts.rate_per_second, this.opts.burst)) as [number, number];
      return { allowed: allowed === 1, retry_after_s: wait_s };
    } catch (err) {
      // Redis down: keep taking payments (fail open) and say so in the log, at most every 10 s.
      this.warn(err);
      return { allowed: true, retry_after_s: 0 };
    }
  }

  private warn(err: unknown): void {
    const now = Date.now();
    if (now - this.last_warning_ms < 10_000) return;
    this.last_warning_ms = now;
    this.log.warn({ err }, 'rate limiter cannot reach Redis; requests are not limited until it is back');
  }

  async close(): Promise<void> {
    this.redis.disconnect();
  }
}

export function createRateLimiter(
  redis_url: string | undefined,
  opts: BucketOptions,
  log: Logger,
): RateLimiter {
  return redis_url ? new RedisTokenBucket(redis_url, opts, log) : new MemoryTokenBucket(opts);
}
