import { Cluster, Redis } from 'ioredis';
import type { Knex } from 'knex';
import { RateLimiterMemory, RateLimiterPostgres, RateLimiterRedis, type RateLimiterAbstract } from 'rate-limiter-flexible';
import type { Config } from '../config/schema.js';

/** One counter of rate-limiter-flexible: `points` per `duration` seconds, under `keyPrefix`. */
export interface LimiterSpec {
  keyPrefix: string;
  points: number;
  duration: number;
}

/** Makes limiters on one store; `close()` releases the store's connections. */
export interface LimiterStore {
  readonly kind: 'memory' | 'redis+postgres' | 'postgres';
  create(spec: LimiterSpec): RateLimiterAbstract;
  close(): Promise<void>;
}

/** The table of migration 0004-rate-limits, in the layout RateLimiterPostgres reads and writes. */
export const RATE_LIMITS_TABLE = 'rate_limits';

/**
 * Counters shared by every server of the region: Redis, with each limiter insured by the same
 * counter in PostgreSQL. When Redis is away (down, or not answering within the command timeout)
 * rate-limiter-flexible sends the call to the insurance limiter, so throttling keeps holding
 * while the region runs on PostgreSQL alone (docs/architecture.md#when-a-dependency-fails). The counters in the two stores
 * are separate: an outage starts the fallback's counts afresh, which at worst grants an attacker
 * one extra back-off ladder per outage, never an unlimited run.
 */
export function redisLimiterStore(cache: Config['cache'], writer: Knex): LimiterStore {
  const options = {
    // Fail fast instead of queueing while Redis is away: the insurance answers instead.
    enableOfflineQueue: false,
    commandTimeout: cache.commandTimeoutMs,
    maxRetriesPerRequest: 0,
    keyPrefix: `${cache.keyPrefix}:rl:`,
  };
  const client: Redis | Cluster = cache.cluster
    ? new Cluster([cache.redisUrl!], { enableOfflineQueue: false, keyPrefix: options.keyPrefix, redisOptions: options })
    : new Redis(cache.redisUrl!, options);
  // Reconnection is automatic; while it is down the insurance limiter answers.
  client.on('error', () => undefined);
  return {
    kind: 'redis+postgres',
    create(spec) {
      return new RateLimiterRedis({ ...spec, storeClient: client, rejectIfRedisNotReady: true, insuranceLimiter: postgresLimiter(spec, writer) });
    },
    async close() {
      client.disconnect();
      return Promise.resolve();
    },
  };
}

/** Keys of different limiters share the table; the prefix keeps them apart. */
function postgresLimiter(spec: LimiterSpec, writer: Knex): RateLimiterAbstract {
  return new RateLimiterPostgres({ ...spec, storeClient: writer, storeType: 'knex', tableName: RATE_LIMITS_TABLE, tableCreated: true });
}

/**
 * Counters in PostgreSQL alone: several server processes without Redis (`serve --processes N`)
 * must share them, or every process would grant its own set of failures.
 */
export function postgresLimiterStore(writer: Knex): LimiterStore {
  return {
    kind: 'postgres',
    create: (spec) => postgresLimiter(spec, writer),
    close: () => Promise.resolve(),
  };
}

/** In-process counters: `authctl dev` and single-process servers without Redis. */
export function memoryLimiterStore(): LimiterStore {
  return {
    kind: 'memory',
    create: (spec) => new RateLimiterMemory(spec),
    close: () => Promise.resolve(),
  };
}
