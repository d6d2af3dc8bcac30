import type { Config } from '../config/schema.js';
import type { Clock } from '../platform/clock.js';
import type { Logger } from '../platform/logger.js';
import type { ReplicationShipping } from '../core/replication/shipper.js';
import type { Cache } from '../store/cache/cache.js';
import type { SessionsRepo } from '../store/pg/sessions-repo.js';
import type { SigningKeysRepo } from '../store/pg/signing-keys-repo.js';
import type { UsageRepo } from '../store/pg/usage-repo.js';
import { runCacheSync } from './handlers/cache-sync.js';
import { runCleanup } from './handlers/cleanup.js';
import type { JobHandlers, JobQueue } from './job-queue.js';
import { QUEUES, type QueueName } from './queues.js';

/** What the workers need from the container (a Container satisfies it). */
export interface WorkerDeps {
  config: Config;
  clock: Clock;
  log: Logger;
  /** The tables the jobs sweep and repair from (the container's repositories). */
  repos: { sessions: SessionsRepo; signingKeys: SigningKeysRepo; usage: UsageRepo };
  cache?: Cache | undefined;
  /** Ships this region's changes to its peers while the worker runs. */
  replication?: { shipping: Pick<ReplicationShipping, 'start' | 'stop'> } | undefined;
}

export interface WorkerOptions {
  /**
   * True when the worker shares the server's process (`serve --with-workers`): cache-sync then
   * also runs on a `memory` cache, which is that process's own. A separate worker process only
   * syncs a shared (Redis) cache.
   */
  inProcess?: boolean;
  /** Idle poll interval (default 2 s). */
  pollingIntervalSeconds?: number;
  /** How long stop() waits for running jobs before failing them (default 30 s). */
  stopTimeoutMs?: number;
}

export interface RunningWorker {
  /** The queues this worker runs. */
  readonly queues: QueueName[];
  /** Graceful: takes no new jobs, waits for running ones (up to stopTimeoutMs), stops pg-boss. */
  stop(): Promise<void>;
}

/**
 * Registers authctl's job handlers on `queue` and starts them: `cleanup` on the `jobs.cleanupCron`
 * schedule, `cache-sync` when there is a cache this process can fix. `dead-letter` is not worked:
 * its jobs stay there for inspection (`JobQueue.stats()`, `retryDead()`), each logged once as
 * `job.dead_lettered` when it failed for good. From here on the worker owns `queue`: stop() stops it.
 */
export async function startWorker(deps: WorkerDeps, queue: JobQueue, options: WorkerOptions = {}): Promise<RunningWorker> {
  const { config, clock, log, cache } = deps;
  const { sessions, signingKeys: keys, usage } = deps.repos;
  const handlers: JobHandlers = {
    [QUEUES.cleanup]: () =>
      runCleanup({
        sessions,
        keys,
        usage,
        clock,
        log,
        horizonSeconds: config.tokens.accessTtl + config.tokens.clockSkew,
        keepRevokedUntilExpiry: config.regions.peers.length > 0,
        batchSize: config.jobs.cleanupBatchSize,
      }),
  };
  if (cache && (cache.driver === 'redis' || options.inProcess)) {
    handlers[QUEUES.cacheSync] = (data) => runCacheSync({ sessions, cache, clock, log }, data);
  } else {
    log.info('cache-sync jobs are left to a process that shares the cache', { event: 'worker.cache_sync_skipped', driver: cache?.driver ?? null });
  }
  await queue.startWorkers(handlers, {
    schedules: { [QUEUES.cleanup]: config.jobs.cleanupCron },
    ...(options.pollingIntervalSeconds !== undefined ? { pollingIntervalSeconds: options.pollingIntervalSeconds } : {}),
  });
  const queues = Object.keys(handlers) as QueueName[];

  // Dead-lettered jobs waiting from earlier runs: said once at start, not on every poll.
  try {
    const { deadLettered } = await queue.stats();
    if (deadLettered > 0) log.warn('dead-lettered jobs are waiting for inspection', { event: 'job.dead_letter_backlog', count: deadLettered });
  } catch (err) {
    log.warn('could not count dead-lettered jobs', { event: 'jobs.error', err });
  }

  await deps.replication?.shipping.start();
  log.info('worker started', { event: 'worker.started', queues, cleanupCron: config.jobs.cleanupCron });
  let stopping: Promise<void> | undefined;
  return {
    queues,
    stop() {
      stopping ??= (async () => {
        log.info('worker stopping', { event: 'worker.stopping' });
        await deps.replication?.shipping.stop();
        await queue.stop({ graceful: true, timeoutMs: options.stopTimeoutMs ?? 30_000 });
        log.info('worker stopped', { event: 'worker.stopped' });
      })();
      return stopping;
    },
  };
}
