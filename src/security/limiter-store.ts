import type { Knex } from 'knex';
import { RateLimiterMemory, RateLimiterPostgres, RateLimiterRedis, type RateLimiterAbstract } from 'rate-limiter-flexible';
import type { Config } from '../config/schema.js';
import { redisBreaker, type CircuitBreaker } from '../store/cache/circuit-breaker.js';
import { connectRedis, type RedisClient } from '../store/cache/redis-connection.js';

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
  // Fails fast instead of queueing while Redis is away: the insurance answers instead. Each
  // counter is one key (one slot), so the limiters work on a Redis Cluster as they are.
  const client = connectRedis(cache.redisUrl!, { cluster: cache.cluster, commandTimeoutMs: cache.commandTimeoutMs, keyPrefix: `${cache.keyPrefix}:rl:` });
  // Reconnection is automatic; while it is down the insurance limiter answers.
  client.on('error', () => undefined);
  const storeClient = behindBreaker(client, redisBreaker());
  return {
    kind: 'redis+postgres',
    create(spec) {
      return new RateLimiterRedis({ ...spec, storeClient, rejectIfRedisNotReady: true, insuranceLimiter: postgresLimiter(spec, writer) });
    },
    async close() {
      client.disconnect();
      return Promise.resolve();
    },
  };
}

/**
 * The client as the limiters see it: their commands (the counter script, transactions, DEL) go
 * through `breaker`. A disconnected client already sends the limiters to the insurance at once
 * (`rejectIfRedisNotReady`), but a Redis Cluster stays "ready" while a failed master's slots are
 * unserved: without the breaker every login would wait out the command timeout on each of its
 * counters until the failover ends.
 */
function behindBreaker(client: RedisClient, breaker: CircuitBreaker): RedisClient {
  const guarded = new Set<PropertyKey>(['rlflxIncr', 'del']);
  return new Proxy(client, {
    get(target, prop) {
      const value: unknown = Reflect.get(target, prop, target);
      if (typeof value !== 'function' || prop === 'constructor') return value;
      const method = value as (...args: unknown[]) => unknown;
      if (guarded.has(prop)) return (...args: unknown[]) => breaker.run(() => method.apply(target, args) as Promise<unknown>);
      if (prop !== 'multi') return method.bind(target);
      return (...args: unknown[]) => {
        const tx = method.apply(target, args) as { exec: (...a: unknown[]) => Promise<unknown> };
        const exec = tx.exec.bind(tx);
        tx.exec = (...a: unknown[]) => breaker.run(() => exec(...a));
        return tx;
      };
    },
  });
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
