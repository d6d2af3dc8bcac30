import type { Config } from '../../config/schema.js';
import type { Clock } from '../../platform/clock.js';
import { AppError } from '../../platform/errors.js';
import type { Logger } from '../../platform/logger.js';
import type { Cache } from './cache.js';
import { MemoryCache } from './memory.js';
import { RedisCache } from './redis.js';

export type { Cache, CachedSession, CachedUser, CacheHealth, CacheStats } from './cache.js';

/** Redis when `cache.redisUrl` is set (or `cache.driver` says so), else the in-process cache. */
export function createCache(
  config: Config['cache'],
  deps: { clock: Clock; log: Logger; onLookup?: (kind: 'session' | 'user', result: 'hit' | 'miss' | 'error') => void },
): Cache {
  const driver = config.driver ?? (config.redisUrl ? 'redis' : 'memory');
  if (driver === 'memory') return new MemoryCache({ clock: deps.clock, userTtlSeconds: config.userTtl, ...(deps.onLookup ? { onLookup: deps.onLookup } : {}) });
  if (!config.redisUrl) throw new AppError('bad_config', 'cache.driver is redis but no Redis URL is set: set AUTHCTL_REDIS_URL');
  return new RedisCache({
    url: config.redisUrl,
    cluster: config.cluster,
    keyPrefix: config.keyPrefix,
    commandTimeoutMs: config.commandTimeoutMs,
    userTtlSeconds: config.userTtl,
    log: deps.log,
    ...(deps.onLookup ? { onLookup: deps.onLookup } : {}),
  });
}
