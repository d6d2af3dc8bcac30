import type { Clock } from '../../platform/clock.js';
import type { Logger } from '../../platform/logger.js';
import type { Cache, CachedSession } from '../../store/cache/cache.js';
import type { SessionsRepo } from '../../store/pg/sessions-repo.js';
import type { CacheSyncData } from '../queues.js';

/** The part of the region's Cache that cache-sync writes through. */
export type SyncableCache = Pick<Cache, 'health' | 'putSession' | 'deleteSessions' | 'deleteUser'>;

export interface CacheSyncDeps {
  sessions: Pick<SessionsRepo, 'findById'>;
  cache: SyncableCache;
  clock: Clock;
  log: Logger;
}

export interface CacheSyncResult {
  put: number;
  deleted: number;
  users: number;
}

/** Thrown while the cache cannot be written: pg-boss retries the job with back-off, then dead-letters it. */
export class CacheUnavailableError extends Error {
  constructor(health: string) {
    super(`the cache is ${health}; cache-sync will be retried`);
    this.name = 'CacheUnavailableError';
  }
}

/**
 * The `cache-sync` job: makes the cache agree with PostgreSQL for the sessions and users it
 * names. Sessions are re-read from the writer (never a replica: the entry must not go back in
 * time) and written whole; a session that is gone, orphaned or expired is removed instead. Users'
 * cached profiles are dropped (the next read refills them). Idempotent.
 *
 * Cache methods are best effort and resolve quietly while the cache is down, so health is checked
 * before and after the writes, and the job fails unless it was `ok` throughout.
 */
export async function runCacheSync(deps: CacheSyncDeps, data: CacheSyncData): Promise<CacheSyncResult> {
  const { sessionIds, userIds } = parseCacheSyncData(data);
  assertHealthy(deps.cache);
  const now = deps.clock.now().getTime();
  const stale: string[] = [];
  let put = 0;
  for (const id of sessionIds) {
    const row = await deps.sessions.findById(id);
    if (!row || row.userId === null || row.expiresAt.getTime() <= now) {
      stale.push(id);
      continue;
    }
    const entry: CachedSession = {
      id: row.id,
      userId: row.userId,
      counter: row.counter,
      rotatedAt: row.rotatedAt.getTime(),
      expiresAt: row.expiresAt.getTime(),
      revokedAt: row.revokedAt ? row.revokedAt.getTime() : null,
    };
    await deps.cache.putSession(entry);
    put += 1;
  }
  if (stale.length > 0) await deps.cache.deleteSessions(stale);
  for (const id of userIds) await deps.cache.deleteUser(id);
  assertHealthy(deps.cache);
  const result = { put, deleted: stale.length, users: userIds.length };
  deps.log.debug('cache synced', { event: 'cache.synced', ...result });
  return result;
}

function assertHealthy(cache: SyncableCache): void {
  const health = cache.health();
  if (health !== 'ok') throw new CacheUnavailableError(health);
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** Job data comes from the database: checked, so a malformed job fails (and dead-letters) visibly. */
function parseCacheSyncData(data: unknown): { sessionIds: string[]; userIds: string[] } {
  const record = (typeof data === 'object' && data !== null ? data : {}) as Record<string, unknown>;
  const ids = (key: string): string[] => {
    const value = record[key];
    if (value === undefined) return [];
    if (!Array.isArray(value) || !value.every((v): v is string => typeof v === 'string' && UUID.test(v))) {
      throw new TypeError(`cache-sync: ${key} must be an array of UUIDs`);
    }
    return [...new Set(value)];
  };
  return { sessionIds: ids('sessionIds'), userIds: ids('userIds') };
}
