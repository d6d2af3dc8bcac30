import { randomUUID } from 'node:crypto';
import { expect } from 'chai';
import { ManualClock } from '../../src/platform/clock.js';
import { runCacheSync, type SyncableCache } from '../../src/jobs/handlers/cache-sync.js';
import type { JobQueue } from '../../src/jobs/job-queue.js';
import { QUEUES } from '../../src/jobs/queues.js';
import { startWorker } from '../../src/jobs/worker.js';
import type { CacheHealth, CachedSession } from '../../src/store/cache/cache.js';
import { SessionsRepo } from '../../src/store/pg/sessions-repo.js';
import { rejectsWith } from '../helpers/assert.js';
import { captureLogger, sessionAt, setupJobs, waitUntil, type JobsFixture } from './setup.js';

/**
 * Stands in for the region's Redis: health is set by the test (a down Redis reports 'degraded'
 * and drops writes quietly, as the real Cache does). These tests are about pg-boss's retry,
 * dead-letter and shutdown plumbing, not about Redis.
 */
class FakeCache implements SyncableCache {
  state: CacheHealth = 'ok';
  readonly sessions = new Map<string, CachedSession>();
  readonly deleted: string[] = [];
  readonly deletedUsers: string[] = [];

  health(): CacheHealth {
    return this.state;
  }
  async putSession(session: CachedSession): Promise<void> {
    if (this.state === 'ok') this.sessions.set(session.id, session);
    await Promise.resolve();
  }
  async deleteSessions(ids: string[]): Promise<void> {
    if (this.state === 'ok') {
      for (const id of ids) {
        this.deleted.push(id);
        this.sessions.delete(id);
      }
    }
    await Promise.resolve();
  }
  async deleteUser(id: string): Promise<void> {
    if (this.state === 'ok') this.deletedUsers.push(id);
    await Promise.resolve();
  }
}

describe('job workers: retries, dead letters, graceful stop, cleanup on a schedule', function () {
  let fx: JobsFixture;
  let sessions: SessionsRepo;
  const clock = new ManualClock(Date.now());

  before(async function () {
    // One retry, one second apart (with back-off), so a failing job dead-letters within seconds.
    fx = await setupJobs('jobs_workers', { clock, overrides: { jobs: { retryLimit: 1, retryDelaySeconds: 1 } } });
    sessions = new SessionsRepo(fx.container.db);
  });

  after(async function () {
    await fx?.close();
  });

  it('cache-sync fails while the cache is down, is retried with back-off, then dead-lettered (kept, logged once); retryDead() re-runs it', async function () {
    const cache = new FakeCache();
    cache.state = 'degraded';
    const { log, events } = captureLogger();
    const queue = fx.newQueue({ log });
    let attempts = 0;
    await queue.startWorkers(
      {
        [QUEUES.cacheSync]: async (data) => {
          attempts += 1;
          return runCacheSync({ sessions, cache, clock, log }, data);
        },
      },
      { pollingIntervalSeconds: 0.5 },
    );
    const session = sessionAt(clock.now(), { expiresInSeconds: 3_600, userId: await insertUser(clock.now()) });
    const sessionId = session.id;
    const id = await queue.send(QUEUES.cacheSync, { sessionIds: [sessionId] });

    let deadId = '';
    await waitUntil(
      async () => {
        const [dead] = await queue.findJobs(QUEUES.deadLetter, { data: { sessionIds: [sessionId] } });
        deadId = dead?.id ?? '';
        return dead !== undefined;
      },
      'the job to reach dead-letter',
      20_000,
    );

    const [original] = await queue.findJobs(QUEUES.cacheSync, { id });
    expect(original).to.include({ state: 'failed', retryCount: 1 });
    expect(attempts, 'first attempt + one retry').to.equal(2);
    const [dead] = await queue.findJobs(QUEUES.deadLetter, { id: deadId });
    expect(dead, 'kept for inspection, not consumed').to.include({ state: 'created', sourceName: QUEUES.cacheSync, sourceId: id });
    expect(events('job.retrying').map((e) => e.jobId)).to.deep.equal([id]);
    expect(
      events('job.dead_lettered').map((e) => e.jobId),
      'logged once',
    ).to.deep.equal([id]);
    expect(events('job.dead_lettered')[0]).to.include({ level: 'error', queue: QUEUES.cacheSync, deadLetter: QUEUES.deadLetter });

    // Redis is back: an operator re-queues the dead letters, and the job now succeeds.
    cache.state = 'ok';
    await sessions.insert(session);
    expect(await queue.retryDead()).to.equal(1);
    expect(await queue.findJobs(QUEUES.deadLetter, { id: deadId }), 'moved out of dead-letter').to.have.length(0);
    await waitUntil(() => cache.sessions.has(sessionId), 'the redriven job to fill the cache');
    expect(cache.sessions.get(sessionId)).to.deep.include({ id: sessionId, counter: 0, revokedAt: null });
    await queue.stop();
  });

  it('cache-sync writes live sessions (revocation included) and removes missing, orphaned and expired ones', async function () {
    const cache = new FakeCache();
    const now = clock.now();
    const revokedAt = new Date(now.getTime() - 1_000);
    const withOwner = sessionAt(now, { expiresInSeconds: 3_600, userId: await insertUser(now) });
    await sessions.insert(withOwner);
    await sessions.revoke(withOwner.id, 'logout', revokedAt);
    const expired = sessionAt(now, { expiresInSeconds: -10, userId: await insertUser(now) });
    await sessions.insert(expired);
    // A session whose owner was deleted (user_id set null) has no cache entry to keep.
    const orphan = sessionAt(now, { expiresInSeconds: 3_600, userId: await insertUser(now) });
    await sessions.insert(orphan);
    await fx.container.db.writer('users').where({ id: orphan.userId }).delete();
    const missing = randomUUID();
    const user = randomUUID();

    const result = await runCacheSync(
      { sessions, cache, clock, log: captureLogger().log },
      { sessionIds: [withOwner.id, expired.id, orphan.id, missing], userIds: [user] },
    );
    expect(result).to.deep.equal({ put: 1, deleted: 3, users: 1 });
    expect(cache.sessions.get(withOwner.id)).to.deep.equal({
      id: withOwner.id,
      userId: withOwner.userId,
      counter: 0,
      rotatedAt: withOwner.rotatedAt.getTime(),
      expiresAt: withOwner.expiresAt.getTime(),
      revokedAt: revokedAt.getTime(),
    });
    expect([...cache.deleted].sort()).to.deep.equal([expired.id, orphan.id, missing].sort());
    expect(cache.deletedUsers).to.deep.equal([user]);
  });

  it('cache-sync refuses malformed job data (so it fails visibly instead of syncing nothing)', async function () {
    const cache = new FakeCache();
    let caught: unknown;
    try {
      await runCacheSync({ sessions, cache, clock, log: captureLogger().log }, { sessionIds: ['not-a-uuid'] });
    } catch (err) {
      caught = err;
    }
    expect(String(caught)).to.match(/sessionIds must be an array of UUIDs/);
  });

  it('stop() waits for a running job to finish before it resolves', async function () {
    const queue = fx.newQueue({ log: captureLogger().log });
    const order: string[] = [];
    let entered!: () => void;
    const started = new Promise<void>((resolve) => (entered = resolve));
    let release!: () => void;
    const held = new Promise<void>((resolve) => (release = resolve));
    await queue.startWorkers(
      {
        [QUEUES.cleanup]: async () => {
          entered();
          await held;
          order.push('job finished');
        },
      },
      { pollingIntervalSeconds: 0.5 },
    );
    const id = await queue.send(QUEUES.cleanup, {});
    await started;
    const stopping = queue.stop({ graceful: true, timeoutMs: 20_000 }).then(() => order.push('stop resolved'));
    // Let stop() get going (it stops fetching at once), then let the job finish.
    await new Promise((resolve) => setTimeout(resolve, 300));
    release();
    await stopping;
    expect(order).to.deep.equal(['job finished', 'stop resolved']);
    const [job] = await fx.newQueue().findJobs(QUEUES.cleanup, { id });
    expect(job?.state, 'completed, not failed by the shutdown').to.equal('completed');
  });

  it('startWorker() runs cleanup jobs against the database and schedules cleanup on jobs.cleanupCron', async function () {
    const now = clock.now();
    const stale = sessionAt(now, { expiresInSeconds: -86_400 });
    const live = sessionAt(now, { expiresInSeconds: 86_400 });
    await sessions.insert(stale);
    await sessions.insert(live);
    const { log, events } = captureLogger();
    const queue: JobQueue = fx.newQueue({ log });
    const worker = await startWorker({ ...fx.container, log }, queue, { pollingIntervalSeconds: 0.5 });
    try {
      expect(worker.queues).to.include(QUEUES.cleanup);
      expect(events('worker.started')).to.have.length(1);
      expect(await queue.schedules()).to.deep.include({ name: QUEUES.cleanup, cron: '*/5 * * * *', timezone: 'UTC' });
      await queue.send(QUEUES.cleanup, {});
      await waitUntil(() => events('cleanup.done').length > 0, 'a cleanup pass');
      expect(await sessions.findById(stale.id)).to.equal(undefined);
      expect(await sessions.findById(live.id)).to.exist;
    } finally {
      await worker.stop();
    }
    expect(events('worker.stopped')).to.have.length(1);
  });

  it('startWorker() refuses a cleanupCron that is not a cron expression (bad_config)', async function () {
    const queue = fx.newQueue({ log: captureLogger().log });
    const config = { ...fx.container.config, jobs: { ...fx.container.config.jobs, cleanupCron: 'every day at noon' } };
    const err = await rejectsWith(startWorker({ ...fx.container, config }, queue), 'bad_config');
    expect(err.detail).to.match(/every day at noon/);
    await queue.stop();
  });

  async function insertUser(now: Date): Promise<string> {
    const id = randomUUID();
    await fx.container.db
      .writer('users')
      .insert({ id, username: `u${id.slice(0, 8)}`, password_hash: 'x', home_region: 'local', created_at: now, updated_at: now, password_changed_at: now });
    return id;
  }
});
