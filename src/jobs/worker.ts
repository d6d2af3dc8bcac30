import type { Config } from '../config/schema.js';
import type { Clock } from '../platform/clock.js';
import type { Logger } from '../platform/logger.js';
import type { ReplicationShipping } from '../core/replication/shipper.js';
import type { Cache } from '../store/cache/cache.js';
import type { SessionsRepo } from '../store/pg/sessions-repo.js';
import type { SigningKeysRepo } from '../store/pg/signing-keys-repo.js';
import type { UsageRepo } from '../store/pg/usage-repo.js';
import type { EmailChallengesRepo } from '../store/pg/email-challenges-repo.js';
import type { IdentitiesRepo } from '../store/pg/identities-repo.js';
import type { MfaFactorsRepo } from '../store/pg/mfa-factors-repo.js';
import type { MfaRecoveryCodesRepo } from '../store/pg/mfa-recovery-codes-repo.js';
import type { MfaTokenUsesRepo } from '../store/pg/mfa-token-uses-repo.js';
import type { PasskeysRepo } from '../store/pg/passkeys-repo.js';
import { runCacheSync } from './handlers/cache-sync.js';
import { runCleanup } from './handlers/cleanup.js';
import { runMail } from './handlers/mail.js';
import type { JobHandlers, JobQueue } from './job-queue.js';
import type { MailServices } from './mail.js';
import type { EmailFlows } from '../core/email/email-flows.js';
import { QUEUES, type QueueName } from './queues.js';

/** What the workers need from the container (a Container satisfies it). */
export interface WorkerDeps {
  config: Config;
  clock: Clock;
  log: Logger;
  /** The tables the jobs sweep and repair from (the container's repositories). */
  repos: {
    sessions: SessionsRepo;
    signingKeys: SigningKeysRepo;
    usage: UsageRepo;
    emailChallenges?: EmailChallengesRepo;
    mfaFactors?: MfaFactorsRepo;
    mfaRecoveryCodes?: MfaRecoveryCodesRepo;
    mfaTokenUses?: MfaTokenUsesRepo;
    identities?: IdentitiesRepo;
    passkeys?: PasskeysRepo;
  };
  cache?: Cache | undefined;
  /** Ships this region's changes to its peers while the worker runs. */
  replication?: { shipping: Pick<ReplicationShipping, 'start' | 'stop'> } | undefined;
  /** Sends the `mail` jobs, unless `mail.transport` is "off". */
  mail?: MailServices | undefined;
  /** Answers the `email-request` jobs (forgot, verify/send), when `identity.email` is on. */
  emailFlows?: Pick<EmailFlows, 'enabled' | 'fulfil'> | undefined;
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

/** The second factors' repositories, when the worker was given all three. */
function mfaRepos({ mfaFactors: factors, mfaRecoveryCodes: recoveryCodes, mfaTokenUses: tokenUses }: WorkerDeps['repos']) {
  return factors && recoveryCodes && tokenUses ? { factors, recoveryCodes, tokenUses } : undefined;
}

/**
 * Registers authctl's job handlers on `queue` and starts them: `cleanup` on the `jobs.cleanupCron`
 * schedule, `cache-sync` when there is a cache this process can fix, `mail` when mail is not off
 * (sent through the region's Mailer). `dead-letter` is not worked:
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
        challenges: deps.repos.emailChallenges,
        mfa: mfaRepos(deps.repos),
        identities: deps.repos.identities,
        passkeys: deps.repos.passkeys,
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
  const mail = deps.mail;
  if (mail?.mailer) {
    // Broken override templates stop the worker now (exit 78), not each message later.
    mail.templates.load();
    const deliver = { mailer: mail.mailer, messages: mail.messages, metrics: mail.metrics, log, kinds: () => mail.composers.kinds() };
    handlers[QUEUES.mail] = (data, job) => runMail(deliver, data, job);
    if (!mail.config.tlsRejectUnauthorized) {
      log.warn('mail.tlsRejectUnauthorized is false: any certificate is accepted (development only)', { event: 'mail.tls_unchecked' });
    }
  }
  const emailFlows = deps.emailFlows;
  if (emailFlows?.enabled) handlers[QUEUES.emailRequest] = (data) => emailFlows.fulfil(data);
  await queue.startWorkers(handlers, {
    schedules: { [QUEUES.cleanup]: config.jobs.cleanupCron },
    // Mail is I/O: up to 10 messages in flight per worker, and a backlog drains without idle polls.
    // So are e-mail requests (a look-up and one short transaction each): one at a time, a burst of
    // forgot requests would wait minutes for its messages.
    batchSize: { [QUEUES.mail]: 10, [QUEUES.emailRequest]: 10 },
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

  // Said once at start, without holding it up: a mail server that is down only delays mail.
  if (mail?.mailer) {
    const mailer = mail.mailer;
    mailer.verify().then(
      () => log.info('mail server answers', { event: 'mail.ready', transport: mailer.transport, endpoint: mailer.endpoint }),
      (err: unknown) =>
        log.warn('mail server not usable yet; mail waits in the queue and is retried', {
          event: 'mail.unreachable',
          endpoint: mailer.endpoint,
          reason: (err as { detail?: string }).detail ?? String(err),
        }),
    );
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
