import type { Config } from '../config/schema.js';

/** authctl's pg-boss queues. `replicate-<peer>` queues join these with the Regions work. */
export const QUEUES = {
  cleanup: 'cleanup',
  cacheSync: 'cache-sync',
  deadLetter: 'dead-letter',
} as const;

export type QueueName = (typeof QUEUES)[keyof typeof QUEUES];

export const QUEUE_NAMES: readonly QueueName[] = [QUEUES.cleanup, QUEUES.cacheSync, QUEUES.deadLetter];

/** Re-read these sessions from PostgreSQL into the cache; drop these users' cached profiles. */
export interface CacheSyncData {
  sessionIds?: string[];
  userIds?: string[];
}

/** What each queue's jobs carry. */
export interface JobPayloads {
  cleanup: Record<string, never>;
  'cache-sync': CacheSyncData;
  /** A copy of the job that failed for good (pg-boss keeps its source queue, id and error). */
  'dead-letter': object;
}

/** The queue options `install()` creates (or updates) each queue with. */
export interface QueueSpec {
  name: QueueName;
  policy?: 'standard' | 'stately';
  retryLimit: number;
  retryDelay: number;
  retryBackoff: boolean;
  deadLetter?: QueueName;
  /** How long completed/failed jobs stay for inspection. */
  deleteAfterSeconds: number;
  /** How long a job may wait in created/retry state before pg-boss drops it. */
  retentionSeconds: number;
  expireInSeconds: number;
}

const DAY = 86_400;

/**
 * Queue settings, created in dependency order (a dead-letter target must exist first).
 * - `dead-letter` is never worked: its jobs wait there for an operator (`retryDead()` re-queues
 *   them on their source queue), so they are kept a month.
 * - `cleanup` is `stately` (at most one queued and one running): a slow pass never piles up
 *   cron runs; a failed one is simply redone by the next tick, so it is not dead-lettered.
 * - `cache-sync` retries with exponential back-off, then dead-letters.
 */
export function queueSpecs(config: Config['jobs']): QueueSpec[] {
  return [
    {
      name: QUEUES.deadLetter,
      retryLimit: 0,
      retryDelay: 0,
      retryBackoff: false,
      deleteAfterSeconds: 30 * DAY,
      retentionSeconds: 30 * DAY,
      expireInSeconds: 900,
    },
    {
      name: QUEUES.cleanup,
      policy: 'stately',
      retryLimit: 1,
      retryDelay: 30,
      retryBackoff: false,
      deleteAfterSeconds: DAY,
      retentionSeconds: DAY,
      expireInSeconds: 900,
    },
    {
      name: QUEUES.cacheSync,
      retryLimit: config.retryLimit,
      retryDelay: config.retryDelaySeconds,
      retryBackoff: true,
      deadLetter: QUEUES.deadLetter,
      deleteAfterSeconds: DAY,
      retentionSeconds: 14 * DAY,
      expireInSeconds: 300,
    },
  ];
}
