import { AppError } from '../platform/errors.js';
import type { Cache, CachedSession, CacheStats } from '../store/cache/cache.js';

/** How long the cache commands wait for Redis before giving up (exit 69). */
const READY_MS = 3_000;

/** The region's cache as an admin inspects it (`authctl cache …`). */
export class AdminCache {
  constructor(private readonly cache: Cache) {}

  async stats(): Promise<CacheStats> {
    await this.ready();
    return this.cache.stats();
  }

  /** What the cache holds for one session; `not_found` (exit 3) when it holds nothing. */
  async inspect(sessionId: string): Promise<{ session: CachedSession; ttlSeconds: number | null }> {
    await this.ready();
    const { session, ttlSeconds } = await this.cache.inspect(sessionId.toLowerCase());
    if (!session) throw new AppError('not_found', 'that session is not in the cache (a miss falls back to PostgreSQL)');
    return { session, ttlSeconds };
  }

  /** Deletes every entry under the region's key prefix; returns how many. */
  async flush(): Promise<number> {
    await this.ready();
    return this.cache.flush();
  }

  /** Fails with `unavailable` (exit 69) when Redis cannot be reached within a bounded wait. */
  private async ready(): Promise<void> {
    if (!(await this.cache.ready(READY_MS))) {
      throw new AppError('unavailable', 'the cache (Redis) is unavailable: check AUTHCTL_REDIS_URL');
    }
  }
}
