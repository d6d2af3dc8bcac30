import type { CacheRepair } from '../core/sessions/session-service.js';
import type { Logger } from '../platform/logger.js';
import type { JobQueue } from './job-queue.js';
import { QUEUES } from './queues.js';

/**
 * Cache repair through the `cache-sync` queue: a worker rewrites the entries once Redis is back
 * (retried with back-off, then dead-lettered). The revocation itself is already committed and
 * effective; only the negative cache missed it, so a failure to enqueue is logged, never thrown.
 */
export class CacheRepairJobs implements CacheRepair {
  constructor(
    private readonly jobs: Pick<JobQueue, 'send'>,
    private readonly log: Logger,
  ) {}

  schedule(sessionIds: string[]): void {
    this.jobs.send(QUEUES.cacheSync, { sessionIds }).catch((err: unknown) => this.log.warn('cache repair not queued', { event: 'cache.sync_not_queued', err }));
  }
}
