import { createRequire } from 'node:module';
import type { Knex } from 'knex';
import pg from 'pg';
import { PgBoss, fromKnex, type Db as BossDb, type JobWithMetadata } from 'pg-boss';
import type { Config } from '../config/schema.js';
import { AppError } from '../platform/errors.js';
import type { Logger } from '../platform/logger.js';
import { statementTimeouts } from '../store/pg/db.js';
import { isUnavailableError, translateDbError } from '../store/pg/errors.js';
import { QUEUES, QUEUE_NAMES, queueSpecs, type JobPayloads, type QueueName } from './queues.js';

export interface JobQueueOptions {
  config: Config;
  log: Logger;
  /**
   * How often a worker looks for attempts that outlived their queue's `expireInSeconds` (e.g. of
   * a worker that died) to retry them; pg-boss's default is 60 s. Tests shorten it.
   */
  superviseIntervalSeconds?: number;
}

/** What a handler learns about the job it runs. */
export interface JobInfo {
  id: string;
  name: string;
  /** 0 on the first attempt. */
  retryCount: number;
  retryLimit: number;
  /** Aborted when pg-boss gives up on the attempt (shutdown timeout, expiry). */
  signal: AbortSignal;
}

/** Handles one job; throwing fails the attempt (pg-boss retries, then dead-letters). */
export type JobHandler<N extends QueueName> = (data: JobPayloads[N], job: JobInfo) => Promise<unknown>;

export type JobHandlers = { [N in QueueName]?: JobHandler<N> };

export interface StartWorkersOptions {
  /** Cron schedules to upsert (UTC), e.g. `{ cleanup: '*\/5 * * * *' }`. */
  schedules?: { [N in QueueName]?: string };
  /** How often an idle worker polls for jobs (pg-boss minimum 0.5 s). */
  pollingIntervalSeconds?: number;
  /**
   * Jobs taken at once, per queue (default 1: one job, then the idle poll before the next). Above
   * 1, a batch's jobs run concurrently, each settled (retried, dead-lettered) on its own, and the
   * worker fetches again at once while batches come back full: a backlog drains without waiting.
   */
  batchSize?: { [N in QueueName]?: number };
}

export interface QueueCounts {
  /** Waiting to run (includes retries waiting out their back-off). */
  queued: number;
  active: number;
  /** Failed for good and still retained. On `dead-letter` nothing fails: its jobs stay queued. */
  failed: number;
  total: number;
}

export interface JobStats {
  queues: Record<QueueName, QueueCounts>;
  /** Jobs in `dead-letter` waiting for an operator (`retryDead()`). */
  deadLettered: number;
  /** When the counts were taken; pg-boss may serve counts up to a minute old. */
  capturedAt: Date;
}

export interface InstallResult {
  schema: string;
  version: number | null;
  queues: QueueName[];
  /** pg-boss upgrade steps (concurrent index builds) still queued when install() stopped waiting. */
  asyncPending: number;
}

export interface JobSchemaStatus {
  schema: string;
  installed: boolean;
  version: number | null;
  /** The version this pg-boss expects; `authctl migrate` brings `version` up to it. */
  expected: number | null;
}

type Mode = 'admin' | 'producer' | 'worker';

interface Instance {
  boss: PgBoss;
  pool: pg.Pool;
  mode: Mode;
}

/**
 * The region's job queue: pg-boss in its own schema (`jobs.schema`) of the region's database,
 * over a small pool of its own.
 *
 * Roles, so that only `authctl migrate` ever runs DDL:
 * - `install()` (migrate): creates/upgrades pg-boss's schema and authctl's queues.
 * - `start()` / `send()` / `sendInTransaction()` (servers): producer only, no maintenance, no
 *   cron, no DDL; started lazily on the first send, so a server still starts while PostgreSQL is down.
 * - `startWorkers()` (`authctl worker`, `serve --with-workers`): runs handlers, maintenance
 *   (expiry, retention) and cron schedules.
 *
 * Failures to reach PostgreSQL surface as AppError('unavailable'); a schema that was never
 * installed (or needs an upgrade) as AppError('unavailable') naming `authctl migrate`.
 */
export class JobQueue {
  private instance: Instance | undefined;
  private starting: Promise<Instance> | undefined;
  private closed = false;

  constructor(private readonly opts: JobQueueOptions) {}

  get schema(): string {
    return this.opts.config.jobs.schema;
  }

  /**
   * Creates or upgrades pg-boss's schema and authctl's queues. Idempotent; the only DDL. An
   * upgrade may queue background index builds (pg-boss "BAM"): they run only in an instance with
   * migrations on, so this waits for them up to `asyncWaitMs` and reports what is left.
   */
  async install(options: { asyncWaitMs?: number } = {}): Promise<InstallResult> {
    const admin = this.create('admin');
    try {
      await guardJobs(admin.boss.start());
      const asyncPending = await this.drainAsyncMigrations(admin.boss, options.asyncWaitMs ?? 300_000);
      const queues: QueueName[] = [];
      for (const { name, ...options } of queueSpecs(this.opts.config.jobs, this.opts.config.mail)) {
        const existing = await guardJobs(admin.boss.getQueue(name));
        if (existing) {
          const { policy: _policy, ...mutable } = options;
          await guardJobs(admin.boss.updateQueue(name, mutable));
        } else {
          await guardJobs(admin.boss.createQueue(name, options));
        }
        queues.push(name);
      }
      const version = await guardJobs(admin.boss.schemaVersion());
      this.opts.log.info('job queue installed', { event: 'jobs.installed', schema: this.schema, version, asyncPending });
      if (asyncPending > 0) {
        this.opts.log.warn('pg-boss upgrade steps still pending; run `authctl migrate` again to finish them', { event: 'jobs.install_pending', asyncPending });
      }
      return { schema: this.schema, version, queues, asyncPending };
    } finally {
      await this.close(admin, { graceful: false });
    }
  }

  /** pg-boss's schema version here, without installing anything (for `migrate status`). */
  async status(): Promise<JobSchemaStatus> {
    const admin = this.create('admin');
    try {
      const installed = await guardJobs(admin.boss.isInstalled());
      const version = installed ? await guardJobs(admin.boss.schemaVersion()) : null;
      return { schema: this.schema, installed, version, expected: expectedSchemaVersion() };
    } finally {
      await this.close(admin, { graceful: false });
    }
  }

  /** Starts the producer side (cheap: no maintenance, no cron). Idempotent. */
  async start(): Promise<void> {
    await this.ensure('producer');
  }

  /** Enqueues outside any transaction; resolves the job id. */
  async send<N extends QueueName>(name: N, data: JobPayloads[N]): Promise<string> {
    const { boss } = await this.ensure('producer');
    return jobId(name, await guardJobs(boss.send(name, data)));
  }

  /**
   * Enqueues inside the caller's transaction: the job row is written on the transaction's own
   * connection, so it exists if and only if the transaction commits.
   */
  async sendInTransaction<N extends QueueName>(trx: Knex.Transaction, name: N, data: JobPayloads[N]): Promise<string> {
    if (trx.isCompleted()) throw new Error(`sendInTransaction(${name}): the transaction has already ended`);
    const { boss } = await this.ensure('producer');
    return jobId(name, await guardJobs(boss.send(name, data, { db: fromKnex(trx) })));
  }

  /**
   * Runs `handlers` (one job at a time per queue) and this process's share of pg-boss's
   * maintenance and cron. A handler that throws on the attempt that exhausts its retries is
   * logged once as `job.dead_lettered` (when its queue has a dead-letter queue).
   */
  async startWorkers(handlers: JobHandlers, options: StartWorkersOptions = {}): Promise<void> {
    const { boss } = await this.ensure('worker');
    const pollingIntervalSeconds = options.pollingIntervalSeconds ?? 2;
    for (const name of QUEUE_NAMES) {
      const handler = handlers[name] as JobHandler<QueueName> | undefined;
      if (!handler) continue;
      const batchSize = options.batchSize?.[name] ?? 1;
      if (batchSize > 1) {
        await guardJobs(
          boss.work(
            name,
            { includeMetadata: true, batchSize, pollingIntervalSeconds, burstWhenBatchFull: true, perJobResults: true },
            async (jobs: Array<JobWithMetadata<JobPayloads[QueueName]>>) =>
              Promise.all(
                jobs.map(async (job) => {
                  try {
                    await this.run(name, handler, job);
                    return { id: job.id, status: 'completed' as const };
                  } catch (err) {
                    return { id: job.id, status: 'failed' as const, output: { message: err instanceof Error ? err.message : String(err) } };
                  }
                }),
              ),
          ),
        );
        continue;
      }
      await guardJobs(
        boss.work(name, { includeMetadata: true, batchSize: 1, pollingIntervalSeconds }, async (jobs: Array<JobWithMetadata<JobPayloads[QueueName]>>) => {
          for (const job of jobs) await this.run(name, handler, job);
        }),
      );
    }
    for (const [name, cron] of Object.entries(options.schedules ?? {})) {
      if (!cron) continue;
      try {
        boss.previewSchedule(cron, { count: 1, from: new Date() });
      } catch (err) {
        throw new AppError('bad_config', `the schedule for ${name} is not a valid cron expression: ${cron}`, { cause: err });
      }
      await guardJobs(boss.schedule(name, cron, null, { tz: 'UTC' }));
    }
  }

  /**
   * Stops pg-boss for good (a stopped JobQueue refuses further work). Graceful (the default)
   * waits up to `timeoutMs` for running jobs to finish; what is still running then is failed
   * (and retried later by another worker). Idempotent.
   */
  async stop(options: { graceful?: boolean; timeoutMs?: number } = {}): Promise<void> {
    this.closed = true;
    const starting = this.starting;
    this.starting = undefined;
    const instance = this.instance ?? (await starting?.catch(() => undefined));
    this.instance = undefined;
    if (instance) await this.close(instance, { graceful: options.graceful ?? true, timeoutMs: options.timeoutMs });
  }

  /** Per-queue counts (pg-boss caches them for up to a minute). */
  async stats(): Promise<JobStats> {
    const { boss } = await this.ensure('producer');
    const entries = await Promise.all(
      QUEUE_NAMES.map(async (name) => {
        const [snapshot] = await guardJobs(boss.getQueueStats(name, { force: true }));
        const counts: QueueCounts = {
          queued: snapshot?.queuedCount ?? 0,
          active: snapshot?.activeCount ?? 0,
          failed: snapshot?.failedCount ?? 0,
          total: snapshot?.totalCount ?? 0,
        };
        return [name, counts, snapshot?.capturedOn] as const;
      }),
    );
    const queues = Object.fromEntries(entries.map(([name, counts]) => [name, counts])) as Record<QueueName, QueueCounts>;
    const capturedAt = entries.reduce((oldest, [, , at]) => (at && at < oldest ? at : oldest), new Date());
    return { queues, deadLettered: queues[QUEUES.deadLetter].queued, capturedAt };
  }

  /** Exact jobs of one queue (by id or by data containment), for admin tools and tests. */
  async findJobs<N extends QueueName>(name: N, filter: { id?: string; data?: object } = {}): Promise<Array<JobWithMetadata<JobPayloads[N]>>> {
    const { boss } = await this.ensure('producer');
    return guardJobs(boss.findJobs<JobPayloads[N]>(name, filter));
  }

  /** The cron schedules pg-boss holds (upserted by `startWorkers`). */
  async schedules(): Promise<Array<{ name: string; cron: string; timezone: string }>> {
    const { boss } = await this.ensure('producer');
    const rows = await guardJobs(boss.getSchedules());
    return rows.map((r) => ({ name: r.name, cron: r.cron, timezone: r.timezone }));
  }

  /** Moves every dead-lettered job back to the queue it failed on; returns how many. */
  async retryDead(): Promise<number> {
    const { boss } = await this.ensure('producer');
    let moved = 0;
    for (;;) {
      const batch = await guardJobs(boss.redrive(QUEUES.deadLetter, { limit: 1000 }));
      moved += batch;
      if (batch < 1000) break;
    }
    if (moved > 0) this.opts.log.info('dead-lettered jobs re-queued', { event: 'job.redriven', count: moved });
    return moved;
  }

  private async drainAsyncMigrations(boss: PgBoss, waitMs: number): Promise<number> {
    const deadline = Date.now() + waitMs;
    for (;;) {
      const status = await guardJobs(boss.getBamStatus());
      const pending = status.filter((s) => s.status === 'pending' || s.status === 'in_progress').reduce((sum, s) => sum + Number(s.count), 0);
      if (pending === 0 || Date.now() >= deadline) return pending;
      await new Promise((resolve) => setTimeout(resolve, 1_000));
    }
  }

  private async run(name: QueueName, handler: JobHandler<QueueName>, job: JobWithMetadata<JobPayloads[QueueName]>): Promise<void> {
    const info: JobInfo = { id: job.id, name, retryCount: job.retryCount, retryLimit: job.retryLimit, signal: job.signal };
    const started = performance.now();
    try {
      await handler(job.data ?? {}, info);
      this.opts.log.debug('job done', { event: 'job.completed', queue: name, jobId: job.id, durationMs: Math.round(performance.now() - started) });
    } catch (err) {
      const final = job.retryCount >= job.retryLimit;
      const meta = { queue: name, jobId: job.id, attempt: job.retryCount + 1, retryLimit: job.retryLimit, err };
      if (final && job.deadLetter) {
        this.opts.log.error('job failed for good and was dead-lettered', { event: 'job.dead_lettered', deadLetter: job.deadLetter, ...meta });
      } else {
        this.opts.log.warn(final ? 'job failed for good' : 'job failed; will retry', { event: final ? 'job.failed' : 'job.retrying', ...meta });
      }
      throw err;
    }
  }

  private async ensure(mode: 'producer' | 'worker'): Promise<Instance> {
    // A stopped queue stays stopped: a send during shutdown must not open a new pool (and timers
    // that would keep the process alive).
    if (this.closed) throw new AppError('unavailable', 'the job queue is shut down', { retryAfter: 2 });
    const current = this.instance;
    if (current && (mode === 'producer' || current.mode === 'worker')) return current;
    if (this.starting) {
      const pending = await this.starting;
      if (mode === 'producer' || pending.mode === 'worker') return pending;
    }
    const next = this.create(mode);
    const starting = (async () => {
      try {
        await guardJobs(next.boss.start());
        return next;
      } catch (err) {
        await this.close(next, { graceful: false });
        throw err;
      }
    })();
    this.starting = starting;
    try {
      const started = await starting;
      if (this.closed) throw new AppError('unavailable', 'the job queue is shut down', { retryAfter: 2 });
      if (this.starting === starting) {
        const previous = this.instance;
        this.instance = started;
        // A producer promoted to a worker (serve --with-workers): the producer had no handlers.
        if (previous && previous !== started) await this.close(previous, { graceful: true });
      }
      return started;
    } finally {
      if (this.starting === starting) this.starting = undefined;
    }
  }

  private create(mode: Mode): Instance {
    const { config, log } = this.opts;
    const pool = new pg.Pool({
      connectionString: config.database.url,
      max: 4,
      connectionTimeoutMillis: config.database.connectTimeoutMs,
      // pg-boss's maintenance scans its job table: give it more room than a request gets.
      ...statementTimeouts(config.database, Math.max(config.database.statementTimeoutMs, 60_000)),
      keepAlive: true,
      application_name: `authctl-jobs-${mode}`,
    });
    // An idle connection that dies (database restart) must not crash the process.
    pool.on('error', (err) => log.warn('job queue connection lost', { event: 'jobs.connection_error', err }));
    // Safe behind a transaction pooler as it is: without a `listen()` here pg-boss polls instead
    // of holding a LISTEN connection, its locks are transaction-level (pg_advisory_xact_lock), its
    // multi-statement transactions go out as one query, and node-pg sends unnamed statements.
    const db: BossDb = { executeSql: (text, values) => pool.query(text, values) };
    const boss = new PgBoss({
      db,
      schema: config.jobs.schema,
      migrate: mode === 'admin',
      createSchema: mode === 'admin',
      // Upgrade index builds: picked up every 10 s (pg-boss's minimum) while install() waits.
      ...(mode === 'admin' ? { bamIntervalSeconds: 10 } : {}),
      supervise: mode === 'worker',
      schedule: mode === 'worker',
      ...(mode === 'worker' && this.opts.superviseIntervalSeconds
        ? { superviseIntervalSeconds: this.opts.superviseIntervalSeconds, monitorIntervalSeconds: this.opts.superviseIntervalSeconds }
        : {}),
    });
    boss.on('error', (err) => {
      const level = isUnavailableError(err) ? 'warn' : 'error';
      log.log(level, 'job queue error', { event: 'jobs.error', err });
    });
    boss.on('warning', (warning) => log.warn('job queue warning', { event: 'jobs.warning', message: warning.message, data: warning.data }));
    return { boss, pool, mode };
  }

  private async close(instance: Instance, options: { graceful: boolean; timeoutMs?: number | undefined }): Promise<void> {
    try {
      // Also after a failed start(): pg-boss then still has timers to clear.
      await instance.boss.stop({ graceful: options.graceful, close: false, timeout: options.timeoutMs ?? 30_000 });
    } finally {
      await instance.pool.end().catch(() => undefined);
    }
  }
}

function jobId(name: string, id: string | null): string {
  // Only queue policies with singleton semantics return null; authctl's send() queues have none.
  if (id === null) throw new Error(`pg-boss did not create the ${name} job`);
  return id;
}

/** pg-boss's own failures that mean "run `authctl migrate`" rather than a bug. */
const NOT_INSTALLED = /pg-boss is not installed|requires migrations|Queue \S+ does not exist|relation "[^"]+\.(version|queue|job\w*)" does not exist/;

async function guardJobs<T>(work: Promise<T>): Promise<T> {
  try {
    return await work;
  } catch (err) {
    if (err instanceof AppError) throw err;
    if (err instanceof Error && NOT_INSTALLED.test(err.message)) {
      throw new AppError('unavailable', 'the job queue is not installed or needs an upgrade; run `authctl migrate`', { cause: err, retryAfter: 30 });
    }
    const translated = translateDbError(err);
    if (translated instanceof AppError && translated.code === 'unavailable') {
      throw new AppError('unavailable', 'the job queue is unavailable: its database cannot be reached; try again shortly', { cause: err, retryAfter: 2 });
    }
    throw translated;
  }
}

function expectedSchemaVersion(): number | null {
  try {
    const manifest = createRequire(import.meta.url)('pg-boss/package.json') as { pgboss?: { schema?: unknown } };
    return typeof manifest.pgboss?.schema === 'number' ? manifest.pgboss.schema : null;
  } catch {
    return null;
  }
}
