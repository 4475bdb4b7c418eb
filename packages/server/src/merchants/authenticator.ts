import type { Queryable } from '../db/pool.ts';
import { type AuthenticatedKey, findActiveKey } from './service.ts';

const MAX_CACHED_KEYS = 10_000;

/**
 * Verifies API keys with a short-lived in-memory cache, so the hot path does not
 * query the database on every request. A key's own expiry is still checked on every
 * hit; a deleted key stops working within `ttl_ms`.
 */
export class Authenticator {
  private readonly cache = new Map<string, { key: AuthenticatedKey | null; cached_until_ms: number }>();

  constructor(
    private readonly db: Queryable,
    private readonly ttl_ms: number,
  ) {}

  async authenticate(raw: string): Promise<AuthenticatedKey | null> {
    const now_ms = Date.now();
    const hit = this.cache.get(raw);
    if (hit && hit.cached_until_ms > now_ms) {
      if (hit.key?.expires_at_ms != null && hit.key.expires_at_ms <= now_ms) return null;
      return hit.key;
    }
    const key = await findActiveKey(this.db, raw, now_ms);
    if (this.ttl_ms > 0) {
      // Bounded: when full, drop everything rather than grow without limit.
      if (this.cache.size >= MAX_CACHED_KEYS) this.cache.clear();
      // Only valid keys are cached; unknown keys always hit the database so a key
      // created a moment ago works at once.
      if (key) this.cache.set(raw, { key, cached_until_ms: now_ms + this.ttl_ms });
    }
    return key;
  }
}
