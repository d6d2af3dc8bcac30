import { expect } from 'chai';
import type { Config } from '../../src/config/schema.js';
import { ManualClock } from '../../src/platform/clock.js';
import { runCleanup } from '../../src/jobs/handlers/cleanup.js';
import { hourOf, UsageRecorder, type UsageMetric } from '../../src/core/usage/usage-recorder.js';
import { Db } from '../../src/store/pg/db.js';
import { SessionsRepo } from '../../src/store/pg/sessions-repo.js';
import { UsageRepo, type UsageRow } from '../../src/store/pg/usage-repo.js';
import { testConfig } from '../helpers/app.js';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';
import { TcpProxy } from '../helpers/http-tcp-proxy.js';
import { captureLogger, waitUntil } from '../jobs/setup.js';

const H = 3_600_000;
const T0 = Date.parse('2030-01-15T10:00:00Z');

interface StoredRow {
  region: string;
  hour: string;
  metric: string;
  count: number;
}

describe('usage counters (usage_hourly, UsageRepo, UsageRecorder)', function () {
  let tdb: TestDatabase;
  let config: Config;
  let db: Db;
  let repo: UsageRepo;

  before(async function () {
    tdb = await createTestDatabase('usage');
    config = testConfig(tdb.url);
    db = new Db(config.database);
    await db.migrateLatest();
    repo = new UsageRepo(db);
  });

  after(async function () {
    await db?.close();
    await tdb?.drop();
  });

  beforeEach(async function () {
    await db.writer('usage_hourly').delete();
  });

  async function stored(): Promise<StoredRow[]> {
    const rows = await db
      .writer('usage_hourly')
      .select<Array<{ region: string; hour: Date; metric: string; count: string }>>('region', 'hour', 'metric', 'count')
      .orderBy(['region', 'hour', 'metric']);
    return rows.map((r) => ({ region: r.region, hour: r.hour.toISOString(), metric: r.metric, count: Number(r.count) }));
  }

  function recorder(clock: ManualClock, overrides: Partial<ConstructorParameters<typeof UsageRecorder>[0]> = {}) {
    const capture = captureLogger();
    const rec = new UsageRecorder({ repo, clock, log: capture.log, region: 'local', ...overrides });
    return { rec, capture };
  }

  it('record() only counts in memory; flush() writes one summed row per (hour, metric) in one INSERT … ON CONFLICT', async function () {
    const clock = new ManualClock(T0 + 59 * 60_000); // 10:59
    let adds = 0;
    const counting: Pick<UsageRepo, 'add'> = { add: (region, rows) => ((adds += 1), repo.add(region, rows)) };
    const { rec } = recorder(clock, { repo: counting });

    for (let i = 0; i < 1_000; i++) rec.record('logins');
    for (let i = 0; i < 5; i++) rec.record('refreshes', 3);
    clock.advance(120); // 11:01: the next hour bucket
    for (let i = 0; i < 7; i++) rec.record('logins');
    rec.record('login_failures', 0); // nothing to count
    rec.record('login_failures', -2); // never subtracts
    expect(adds, 'record() must not touch the database').to.equal(0);
    expect(await stored()).to.deep.equal([]);
    expect(rec.pending()).to.deep.equal([
      { hour: new Date(T0), metric: 'logins', count: 1_000 },
      { hour: new Date(T0), metric: 'refreshes', count: 15 },
      { hour: new Date(T0 + H), metric: 'logins', count: 7 },
    ]);

    const statements: string[] = [];
    const onQuery = (q: { sql: string }) => statements.push(q.sql);
    db.writer.on('query', onQuery);
    try {
      await rec.flush();
    } finally {
      db.writer.off('query', onQuery);
    }
    expect(adds).to.equal(1);
    expect(statements, statements.join('\n')).to.have.length(1);
    expect(statements[0])
      .to.match(/^insert into "usage_hourly"/i)
      .and.match(/on conflict \("region", "hour", "metric"\) do update/i);
    expect(rec.pending()).to.deep.equal([]);
    expect(await stored()).to.deep.equal([
      { region: 'local', hour: '2030-01-15T10:00:00.000Z', metric: 'logins', count: 1_000 },
      { region: 'local', hour: '2030-01-15T10:00:00.000Z', metric: 'refreshes', count: 15 },
      { region: 'local', hour: '2030-01-15T11:00:00.000Z', metric: 'logins', count: 7 },
    ]);

    // A second flush adds to the stored rows; an empty flush writes nothing.
    rec.record('logins', 3);
    await rec.flush();
    await rec.flush();
    expect(adds).to.equal(2);
    expect((await stored()).find((r) => r.hour === '2030-01-15T11:00:00.000Z' && r.metric === 'logins')?.count).to.equal(10);
  });

  it('add() merges rows naming the same counter (one statement cannot update a row twice) and skips zeros', async function () {
    const hour = new Date(T0);
    await repo.add('eu', [
      { hour, metric: 'logins', count: 2 },
      { hour, metric: 'logins', count: 3 },
      { hour, metric: 'refreshes', count: 0 },
    ]);
    expect(await stored()).to.deep.equal([{ region: 'eu', hour: hour.toISOString(), metric: 'logins', count: 5 }]);
    let caught: unknown;
    try {
      await repo.add('eu', [{ hour, metric: 'logins', count: -1 }]);
    } catch (err) {
      caught = err;
    }
    expect(caught).to.be.instanceOf(RangeError);
    expect((await stored())[0]?.count).to.equal(5);
  });

  it('concurrent flushes from two recorders (two servers) add up: no lost update, no deadlock', async function () {
    const other = new Db(config.database);
    try {
      const clock = new ManualClock(T0 + 30 * 60_000);
      const a = recorder(clock);
      const b = recorder(clock, { repo: new UsageRepo(other) });
      const metrics: UsageMetric[] = ['logins', 'refreshes', 'login_failures', 'revocations'];
      const rounds = 25;
      for (let round = 0; round < rounds; round++) {
        // Same counters, touched in opposite orders, across two hours.
        for (const [i, metric] of metrics.entries()) {
          a.rec.record(metric, i + 1);
          b.rec.record(metrics[metrics.length - 1 - i]!, 10);
        }
        clock.advance(3_600);
        for (const metric of metrics) {
          a.rec.record(metric);
          b.rec.record(metric, 2);
        }
        clock.advance(-3_600);
        await Promise.all([a.rec.flush(), b.rec.flush(), a.rec.flush(), b.rec.flush()]);
      }
      expect(a.rec.pending(), 'recorder a kept counts: a flush failed').to.deep.equal([]);
      expect(b.rec.pending(), 'recorder b kept counts: a flush failed').to.deep.equal([]);
      expect(a.capture.events('usage.flush_failed')).to.deep.equal([]);
      expect(b.capture.events('usage.flush_failed')).to.deep.equal([]);

      const rows = await stored();
      const count = (hour: number, metric: string) => rows.find((r) => r.hour === new Date(hour).toISOString() && r.metric === metric)?.count;
      for (const [i, metric] of metrics.entries()) {
        expect(count(T0, metric), `${metric} at 10:00`).to.equal(rounds * (i + 1 + 10));
        expect(count(T0 + H, metric), `${metric} at 11:00`).to.equal(rounds * 3);
      }
      expect(rows).to.have.length(metrics.length * 2);
    } finally {
      await other.close();
    }
  });

  it('database down at flush: counts are kept (one warning), and written once it is back', async function () {
    const port = Number(new URL(tdb.url).port || 5432);
    const proxy = new TcpProxy({ host: '127.0.0.1', port });
    await proxy.start();
    const url = new URL(tdb.url);
    url.port = String(proxy.port);
    const proxied = new Db(testConfig(url.toString(), { database: { connectTimeoutMs: 500, statementTimeoutMs: 1_000 } }).database);
    try {
      const clock = new ManualClock(T0 + 5 * 60_000);
      const { rec, capture } = recorder(clock, { repo: new UsageRepo(proxied) });
      await proxy.stop();

      rec.record('logins', 5);
      await rec.flush(); // resolves: the failure is handled
      rec.record('logins', 2);
      rec.record('reuse_detections');
      await rec.flush();
      expect(rec.pending()).to.deep.equal([
        { hour: new Date(T0), metric: 'logins', count: 7 },
        { hour: new Date(T0), metric: 'reuse_detections', count: 1 },
      ]);
      expect(await stored()).to.deep.equal([]);
      expect(capture.events('usage.flush_failed'), 'one warning per outage').to.have.length(1);
      expect(capture.events('usage.flush_failed')[0]?.level).to.equal('warn');

      await proxy.start();
      clock.advance(3_600);
      rec.record('logins');
      await rec.flush();
      expect(rec.pending()).to.deep.equal([]);
      expect(await stored()).to.deep.equal([
        { region: 'local', hour: '2030-01-15T10:00:00.000Z', metric: 'logins', count: 7 },
        { region: 'local', hour: '2030-01-15T10:00:00.000Z', metric: 'reuse_detections', count: 1 },
        { region: 'local', hour: '2030-01-15T11:00:00.000Z', metric: 'logins', count: 1 },
      ]);
      expect(capture.events('usage.flush_recovered')).to.have.length(1);

      // A second outage warns again.
      await proxy.stop();
      rec.record('revocations');
      await rec.flush();
      expect(capture.events('usage.flush_failed')).to.have.length(2);
    } finally {
      await proxied.close();
      await proxy.stop();
    }
  });

  it('start() flushes on its interval; stop() stops it and writes what is left', async function () {
    const clock = new ManualClock(T0);
    const { rec } = recorder(clock, { flushIntervalMs: 50 });
    rec.start();
    rec.start(); // idempotent
    try {
      rec.record('registrations', 4);
      await waitUntil(async () => (await stored()).length === 1, 'the interval flush', 5_000);
      expect(await stored()).to.deep.equal([{ region: 'local', hour: '2030-01-15T10:00:00.000Z', metric: 'registrations', count: 4 }]);
    } finally {
      rec.record('registrations', 1);
      await rec.stop();
    }
    expect(rec.pending()).to.deep.equal([]);
    expect((await stored())[0]?.count).to.equal(5);
    // Stopped: nothing is flushed any more by the timer.
    rec.record('registrations', 1);
    await new Promise((resolve) => setTimeout(resolve, 200));
    expect((await stored())[0]?.count).to.equal(5);
    expect(rec.pending()).to.have.length(1);
  });

  it('sum(region | undefined, since) totals the hour buckets starting at or after since', async function () {
    const rows = (entries: Array<[number, string, number]>): UsageRow[] => entries.map(([hour, metric, count]) => ({ hour: new Date(hour), metric, count }));
    await repo.add(
      'local',
      rows([
        [T0 - 30 * H, 'logins', 100],
        [T0 - 3 * H, 'logins', 11],
        [T0 - 3 * H, 'registrations', 4],
        [T0 - H, 'logins', 2],
        [T0, 'logins', 5],
        [T0, 'refreshes', 7],
      ]),
    );
    await repo.add(
      'eu',
      rows([
        [T0, 'logins', 1_000],
        [T0 - 2 * H, 'revocations', 9],
      ]),
    );

    expect(await repo.sum('local', new Date(T0))).to.deep.equal({ logins: 5, refreshes: 7 });
    expect(await repo.sum('local', new Date(T0 - H))).to.deep.equal({ logins: 7, refreshes: 7 });
    // A since inside an hour excludes that hour's bucket.
    expect(await repo.sum('local', new Date(T0 - H + 1))).to.deep.equal({ logins: 5, refreshes: 7 });
    expect(await repo.sum('local', new Date(T0 - 24 * H))).to.deep.equal({ logins: 18, registrations: 4, refreshes: 7 });
    expect(await repo.sum('local', new Date(T0 - 48 * H))).to.deep.equal({ logins: 118, registrations: 4, refreshes: 7 });
    expect(await repo.sum('eu', new Date(T0 - 24 * H))).to.deep.equal({ logins: 1_000, revocations: 9 });
    expect(await repo.sum(undefined, new Date(T0 - 24 * H))).to.deep.equal({ logins: 1_018, registrations: 4, refreshes: 7, revocations: 9 });
    expect(await repo.sum('local', new Date(T0 + H))).to.deep.equal({});
    expect(await repo.sum('nowhere', new Date(0))).to.deep.equal({});
  });

  it('hourOf() truncates to the UTC hour', function () {
    expect(hourOf(new Date('2030-01-15T10:59:59.999Z')).toISOString()).to.equal('2030-01-15T10:00:00.000Z');
    expect(hourOf(Date.parse('2030-01-15T11:00:00.000Z')).toISOString()).to.equal('2030-01-15T11:00:00.000Z');
    // A non-whole-hour offset: the bucket is still the UTC hour.
    expect(hourOf(new Date('2030-01-15T16:15:00+05:30')).toISOString()).to.equal('2030-01-15T10:00:00.000Z');
  });

  it('the cleanup job deletes usage buckets of hours that started more than 30 days ago', async function () {
    const day = 24 * H;
    await repo.add('local', [
      { hour: new Date(T0 - 31 * day), metric: 'logins', count: 1 },
      { hour: new Date(T0 - 30 * day - H), metric: 'logins', count: 2 },
      { hour: new Date(T0 - 30 * day), metric: 'logins', count: 3 },
      { hour: new Date(T0 - 29 * day), metric: 'logins', count: 4 },
    ]);
    await repo.add('eu', [{ hour: new Date(T0 - 40 * day), metric: 'refreshes', count: 5 }]);
    const { log } = captureLogger();
    const cleanupAt = (at: number) =>
      runCleanup({ sessions: new SessionsRepo(db), usage: repo, clock: new ManualClock(at), log, horizonSeconds: 930, batchSize: 100 });

    // Exactly 30 days after the 10:00 bucket started: it stays (older than, not as old as).
    expect((await cleanupAt(T0)).deleted).to.deep.equal({ sessions: 0, signingKeys: 0, usageRows: 3 });
    expect((await stored()).map((r) => r.count).sort()).to.deep.equal([3, 4]);
    expect((await cleanupAt(T0 + 20 * 60_000)).deleted.usageRows).to.equal(1);
    expect((await stored()).map((r) => r.count)).to.deep.equal([4]);
    expect((await cleanupAt(T0 + day)).deleted.usageRows).to.equal(0);
    expect((await cleanupAt(T0 + day + 1)).deleted.usageRows).to.equal(1);
    expect(await stored()).to.deep.equal([]);
  });

  it('migration 0002-usage rolls back (table gone) and applies again', async function () {
    const exists = async () =>
      (await db.writer.raw<{ rows: Array<{ t: string | null }> }>(`select to_regclass('public.usage_hourly')::text as t`)).rows[0]?.t ?? null;
    expect(await exists()).to.equal('usage_hourly');
    await db.migrateRollback(true);
    expect(await exists()).to.equal(null);
    expect((await db.migrateStatus()).pending).to.include('0002-usage');
    await db.migrateLatest();
    expect(await exists()).to.equal('usage_hourly');
    expect((await db.migrateStatus()).applied).to.include.ordered.members(['0001-initial', '0002-usage']);
  });
});
