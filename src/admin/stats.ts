import type { Config } from '../config/schema.js';
import type { Clock } from '../platform/clock.js';
import { AppError } from '../platform/errors.js';
import type { JobQueue, QueueCounts } from '../jobs/job-queue.js';
import type { QueueName } from '../jobs/queues.js';
import type { Cache, CacheHealth } from '../store/cache/cache.js';
import type { StatsRepo, DatabaseLoad } from '../store/pg/stats-repo.js';
import { countByFormat, type ForeignHashCounts } from '../core/users/hash-formats.js';
import type { UsageRepo } from '../store/pg/usage-repo.js';
import type { Db } from '../store/pg/db.js';
import { hourOf, USAGE_METRICS, type UsageMetric } from '../core/usage/usage-recorder.js';

const HOUR_MS = 3_600_000;

export interface StatsDeps {
  db: Pick<Db, 'ping'>;
  stats: Pick<StatsRepo, 'userCounts' | 'sessionCounts' | 'databaseLoad' | 'foreignHashCounts'>;
  cache: Cache;
  /** Absent: queues are reported as null. */
  jobs?: Pick<JobQueue, 'stats'> | undefined;
  usage: Pick<UsageRepo, 'sum'>;
  clock: Clock;
  config: Pick<Config, 'region'>;
}

/** Usage counters summed over whole hour buckets: those starting at or after `since`. */
export interface UsageWindow {
  since: Date;
  counts: Record<UsageMetric, number>;
}

export interface CacheSummary {
  driver: 'memory' | 'redis';
  health: CacheHealth;
  /** The rest is null when the cache could not be asked (degraded). */
  hitRatio: number | null;
  hits: number | null;
  misses: number | null;
  keys: { sessions: number; users: number } | null;
  memoryBytes: number | null;
}

export interface QueueSummary {
  depth: Record<QueueName, QueueCounts>;
  deadLettered: number;
  /** pg-boss may serve counts up to a minute old. */
  capturedAt: Date;
}

/** `authctl stats`: one look at a region, from PostgreSQL, Redis and pg-boss (no server needed). */
export interface StatsReport {
  region: string;
  generatedAt: Date;
  /**
   * `foreignHashes`: users whose password hash is still the one they were imported with (bcrypt,
   * scrypt, PBKDF2…: replaced by argon2id at their next login), by format; formats with none are
   * left out, so `{}` once every imported user has logged in. Counted exactly, on the index that
   * holds only those users.
   */
  users: { total: number; disabled: number; foreignHashes: ForeignHashCounts };
  sessions: { active: number; revokedLast24h: number };
  /**
   * The counts above that are PostgreSQL's planner estimate rather than a count (those of
   * 100,000 rows or more, src/store/pg/row-count.ts), by path: e.g. `["users.total", "sessions.active"]`.
   */
  estimated: string[];
  /** Null when the usage table does not exist yet (`authctl migrate` not run since upgrading). */
  usage: { lastHour: UsageWindow; last24h: UsageWindow } | null;
  cache: CacheSummary;
  database: DatabaseLoad;
  /** Null when the job queue is not installed (or cannot be asked). */
  queues: QueueSummary | null;
  /** Why a part is missing or degraded, for humans. */
  warnings: string[];
}

/**
 * Gathers a StatsReport (`authctl stats`). PostgreSQL is required (its failures propagate:
 * AppError 'unavailable' → exit 69); the cache and the job queue are optional and reported
 * degraded / null when they cannot answer. Usage windows are whole hours: "last hour" is the previous hour and the current
 * one so far, "last 24 h" the 24 hours before the current one and the current one so far.
 */
export async function collectStats(deps: StatsDeps): Promise<StatsReport> {
  // The database is required (fail fast, exit 69); the cache only gets a bounded wait.
  await Promise.all([deps.db.ping(), deps.cache.ready(2_000)]);
  const repo = deps.stats;
  const now = deps.clock.now();
  const warnings: string[] = [];
  const [users, foreignHashes, sessions, usage, cache, queues] = await Promise.all([
    repo.userCounts(),
    repo.foreignHashCounts(),
    repo.sessionCounts(now, new Date(now.getTime() - 24 * HOUR_MS)),
    usageWindows(deps.usage, deps.config.region, now, warnings),
    cacheSummary(deps.cache, warnings),
    queueSummary(deps.jobs, warnings),
  ]);
  // Last, alone: the activity it reports is then the region's, not this report's own queries.
  const database = await repo.databaseLoad();
  const counts = {
    'users.total': users.total,
    'users.disabled': users.disabled,
    'sessions.active': sessions.active,
    'sessions.revokedLast24h': sessions.revokedSince,
  };
  return {
    region: deps.config.region,
    generatedAt: now,
    users: { total: users.total.count, disabled: users.disabled.count, foreignHashes: countByFormat(foreignHashes) },
    sessions: { active: sessions.active.count, revokedLast24h: sessions.revokedSince.count },
    estimated: Object.entries(counts)
      .filter(([, c]) => c.estimated)
      .map(([path]) => path),
    usage,
    cache,
    database,
    queues,
    warnings,
  };
}

async function usageWindows(usage: Pick<UsageRepo, 'sum'>, region: string, now: Date, warnings: string[]): Promise<StatsReport['usage']> {
  const window = async (hours: number): Promise<UsageWindow> => {
    const since = hourOf(now.getTime() - hours * HOUR_MS);
    const sums = await usage.sum(region, since);
    const counts = Object.fromEntries(USAGE_METRICS.map((m) => [m, sums[m] ?? 0])) as Record<UsageMetric, number>;
    return { since, counts };
  };
  try {
    const [lastHour, last24h] = await Promise.all([window(1), window(24)]);
    return { lastHour, last24h };
  } catch (err) {
    if (isUndefinedTable(err)) {
      warnings.push('usage counters are not in this database yet: run `authctl migrate`');
      return null;
    }
    throw err;
  }
}

async function cacheSummary(cache: Cache, warnings: string[]): Promise<CacheSummary> {
  const degraded = (reason: string): CacheSummary => {
    warnings.push(reason);
    return { driver: cache.driver, health: 'degraded', hitRatio: null, hits: null, misses: null, keys: null, memoryBytes: null };
  };
  if (cache.health() !== 'ok') return degraded('the cache (Redis) cannot be reached: the region runs on PostgreSQL alone');
  try {
    const stats = await cache.stats();
    if (stats.driver === 'memory') warnings.push("the in-process cache lives inside each server: this process's own is empty");
    return {
      driver: stats.driver,
      health: stats.health,
      hitRatio: stats.hitRatio,
      hits: stats.hits,
      misses: stats.misses,
      keys: stats.keys,
      memoryBytes: stats.memoryBytes,
    };
  } catch {
    return degraded('the cache (Redis) did not answer: the region runs on PostgreSQL alone');
  }
}

async function queueSummary(jobs: Pick<JobQueue, 'stats'> | undefined, warnings: string[]): Promise<QueueSummary | null> {
  if (!jobs) return null;
  try {
    const stats = await jobs.stats();
    return { depth: stats.queues, deadLettered: stats.deadLettered, capturedAt: stats.capturedAt };
  } catch (err) {
    warnings.push(err instanceof AppError ? err.detail : 'the job queue could not be asked');
    return null;
  }
}

function isUndefinedTable(err: unknown): boolean {
  return typeof err === 'object' && err !== null && (err as { code?: unknown }).code === '42P01';
}
