import type { Config } from '../config/schema.js';
import type { MailJobData } from '../mail/composers.js';
import type { EmailRequestData } from '../core/email/email-flows.js';

/** authctl's pg-boss queues. `replicate-<peer>` queues join these with the Regions work. */
export const QUEUES = {
  cleanup: 'cleanup',
  cacheSync: 'cache-sync',
  mail: 'mail',
  emailRequest: 'email-request',
  deadLetter: 'dead-letter',
} as const;

export type QueueName = (typeof QUEUES)[keyof typeof QUEUES];

export const QUEUE_NAMES: readonly QueueName[] = [QUEUES.cleanup, QUEUES.cacheSync, QUEUES.mail, QUEUES.emailRequest, QUEUES.deadLetter];

/** Re-read these sessions from PostgreSQL into the cache; drop these users' cached profiles. */
export interface CacheSyncData {
  sessionIds?: string[];
  userIds?: string[];
}

/** What each queue's jobs carry. */
export interface JobPayloads {
  cleanup: Record<string, never>;
  'cache-sync': CacheSyncData;
  /** References only, never a code, token or link (see MailComposer). */
  mail: MailJobData;
  /** An anonymous forgot / verify request: the address or username it names (looked up by the worker). */
  'email-request': EmailRequestData;
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
  /** With back-off: the longest delay between two attempts, seconds. */
  retryDelayMax?: number;
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
 * - `mail` retries with exponential back-off (`mail.retry*`: about an hour by default), then
 *   dead-letters; an attempt still running after `mail.jobTimeoutSeconds` is retried.
 */
export function queueSpecs(config: Config['jobs'], mail?: Config['mail']): QueueSpec[] {
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
    {
      name: QUEUES.mail,
      retryLimit: mail?.retryLimit ?? 8,
      retryDelay: mail?.retryDelaySeconds ?? 15,
      retryBackoff: true,
      retryDelayMax: mail?.retryDelayMaxSeconds ?? 1_800,
      deadLetter: QUEUES.deadLetter,
      // The row names its recipient: kept a day once done, for inspection, then deleted.
      deleteAfterSeconds: DAY,
      retentionSeconds: 14 * DAY,
      expireInSeconds: mail?.jobTimeoutSeconds ?? 120,
    },
    {
      // Looked up and answered (a challenge and its message) by a worker; retried like cache-sync.
      name: QUEUES.emailRequest,
      retryLimit: config.retryLimit,
      retryDelay: config.retryDelaySeconds,
      retryBackoff: true,
      deadLetter: QUEUES.deadLetter,
      deleteAfterSeconds: DAY,
      retentionSeconds: DAY,
      expireInSeconds: 300,
    },
  ];
}
