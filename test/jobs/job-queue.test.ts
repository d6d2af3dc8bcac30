import { randomUUID } from 'node:crypto';
import { expect } from 'chai';
import { JobQueue } from '../../src/jobs/job-queue.js';
import { QUEUES } from '../../src/jobs/queues.js';
import { SessionsRepo } from '../../src/store/pg/sessions-repo.js';
import { rejectsWith } from '../helpers/assert.js';
import { testConfig } from '../helpers/app.js';
import { captureLogger, sessionAt, setupJobs, type JobsFixture } from './setup.js';

describe('JobQueue (pg-boss): install, transactional enqueue, stats', function () {
  let fx: JobsFixture;
  let queue: JobQueue;
  let sessions: SessionsRepo;
  /** cache-sync jobs this file has committed, for the stats assertion. */
  let committed = 0;

  before(async function () {
    fx = await setupJobs('jobs_queue', { overrides: { jobs: { retryLimit: 3, retryDelaySeconds: 7 } } });
    queue = fx.newQueue();
    sessions = new SessionsRepo(fx.container.db);
  });

  after(async function () {
    await fx?.close();
  });

  async function jobExists(id: string): Promise<boolean> {
    return (await queue.findJobs(QUEUES.cacheSync, { id })).length === 1;
  }

  it('install() is idempotent and gives cache-sync the configured retry policy and dead-letter queue', async function () {
    const again = await fx.newQueue().install();
    expect(again.queues).to.have.members([QUEUES.cleanup, QUEUES.cacheSync, QUEUES.mail, QUEUES.emailRequest, QUEUES.deadLetter]);
    expect(again.version).to.be.a('number');
    expect(again.asyncPending).to.equal(0);
    const status = await fx.newQueue().status();
    expect(status).to.include({ schema: 'pgboss', installed: true, version: again.version });
    expect(status.expected).to.equal(again.version);

    const id = await queue.send(QUEUES.cacheSync, { sessionIds: [randomUUID()] });
    committed += 1;
    const [job] = await queue.findJobs(QUEUES.cacheSync, { id });
    expect(job, 'the job').to.exist;
    expect(job).to.include({ retryLimit: 3, retryDelay: 7, retryBackoff: true, deadLetter: QUEUES.deadLetter, state: 'created' });
  });

  it('a job sent in a transaction is invisible until the commit, and exists after it', async function () {
    const session = sessionAt(new Date(), { expiresInSeconds: 3600 });
    let id = '';
    await fx.container.db.transaction(async (trx) => {
      await sessions.insert(session, trx);
      id = await queue.sendInTransaction(trx, QUEUES.cacheSync, { sessionIds: [session.id] });
      // Read through pg-boss's own pool: another connection must not see the uncommitted job.
      expect(await jobExists(id), 'visible before commit').to.equal(false);
    });
    committed += 1;
    expect(await jobExists(id), 'present after commit').to.equal(true);
    const [job] = await queue.findJobs(QUEUES.cacheSync, { id });
    expect(job?.data).to.deep.equal({ sessionIds: [session.id] });
    expect(await sessions.findById(session.id)).to.exist;
  });

  it('a rolled-back transaction leaves neither the change nor the job', async function () {
    const session = sessionAt(new Date(), { expiresInSeconds: 3600 });
    let id = '';
    const boom = new Error('boom');
    let caught: unknown;
    try {
      await fx.container.db.transaction(async (trx) => {
        await sessions.insert(session, trx);
        id = await queue.sendInTransaction(trx, QUEUES.cacheSync, { sessionIds: [session.id] });
        throw boom;
      });
    } catch (err) {
      caught = err;
    }
    expect(caught).to.equal(boom);
    expect(id, 'pg-boss returned an id inside the transaction').to.match(/^[0-9a-f-]{36}$/);
    expect(await jobExists(id), 'job after rollback').to.equal(false);
    expect(await queue.findJobs(QUEUES.cacheSync, { data: { sessionIds: [session.id] } })).to.have.length(0);
    expect(await sessions.findById(session.id), 'session after rollback').to.equal(undefined);
  });

  it('refuses a transaction that has already ended', async function () {
    let finished: Parameters<JobQueue['sendInTransaction']>[0] | undefined;
    await fx.container.db.transaction(async (trx) => {
      finished = trx;
      await Promise.resolve();
    });
    let caught: unknown;
    try {
      await queue.sendInTransaction(finished!, QUEUES.cacheSync, {});
    } catch (err) {
      caught = err;
    }
    expect(String(caught)).to.match(/already ended/);
  });

  it('stats() counts queued jobs per queue', async function () {
    const stats = await queue.stats();
    expect(stats.queues[QUEUES.cacheSync]).to.include({ queued: committed, active: 0, failed: 0 });
    expect(stats.queues[QUEUES.cleanup].queued).to.equal(0);
    expect(stats.deadLettered).to.equal(0);
  });

  it('a stopped queue refuses further sends instead of reopening a pool', async function () {
    const stopped = fx.newQueue();
    await stopped.send(QUEUES.cleanup, {});
    await stopped.stop();
    const err = await rejectsWith(stopped.send(QUEUES.cacheSync, {}), 'unavailable');
    expect(err.detail).to.match(/shut down/);
  });

  it('an unreachable database is `unavailable`, for producers and for install()', async function () {
    const dead = testConfig('postgres://postgres@127.0.0.1:1/nowhere', { database: { connectTimeoutMs: 500 } });
    const { log, events } = captureLogger();
    const producer = new JobQueue({ config: dead, log });
    await rejectsWith(producer.send(QUEUES.cacheSync, {}), 'unavailable');
    await rejectsWith(new JobQueue({ config: dead, log }).install(), 'unavailable');
    await producer.stop();
    expect(
      events('jobs.error').filter((e) => e.level === 'error'),
      'logged as a bug',
    ).to.have.length(0);
  });

  it('a database without the job queue installed is `unavailable` with a hint to migrate', async function () {
    const other = testConfig(fx.db.url, { jobs: { schema: 'not_installed' } });
    const err = await rejectsWith(new JobQueue({ config: other, log: captureLogger().log }).send(QUEUES.cacheSync, {}), 'unavailable');
    expect(err.detail).to.match(/authctl migrate/);
  });
});
