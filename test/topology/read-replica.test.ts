import { expect } from 'chai';
import type { SessionView } from '../../src/core/auth/auth-service.js';
import { migrateDatabase, startTestApp, type TestApp } from '../helpers/app.js';
import { createAccount, login, type Account } from '../helpers/http-assert.js';
import { TcpProxy } from '../helpers/http-tcp-proxy.js';
import { LogCapture } from '../helpers/log-capture.js';
import { findPostgresBin, PgCluster } from '../helpers/pg-cluster.js';

interface Readiness {
  status: string;
  checks: Record<string, string>;
  failing?: string[];
}

// A real primary and a real streaming hot standby (pg_basebackup -R -X stream), the app with
// database.url = primary and database.readUrl = standby. Lag is made visible by pausing the
// standby's replay; an outage is the standby stopped with `pg_ctl stop -m immediate`.
describe('topology: a streaming read replica as database.readUrl', function () {
  this.timeout(30_000);
  const bin = findPostgresBin();
  const logs = new LogCapture();
  let cluster: PgCluster | undefined;
  let app: TestApp;

  before(async function () {
    if (!bin) {
      console.log('    skipped: PostgreSQL server binaries (initdb, pg_basebackup) not found: apt-get install postgresql, or set AUTHCTL_TEST_PG_BIN');
      this.skip();
    }
    cluster = await PgCluster.start({ bin, standby: true });
    await cluster.primary.query('create database authctl');
    const url = cluster.primary.url('authctl');
    await migrateDatabase(url);
    // The app's first read must not find the standby still without the tables.
    await cluster.waitForReplay();
    app = await startTestApp('read-replica', {
      // The cluster's directory goes as a whole in after().
      db: { name: 'authctl', url, drop: () => Promise.resolve() },
      overrides: { database: { readUrl: cluster.standby.url('authctl') }, log: { level: 'info' } },
      logSink: logs,
    });
  });

  after(async function () {
    await app?.close();
    await cluster?.stop();
  });

  afterEach(async function () {
    // A failed test must not leave the standby paused for the next one.
    await cluster?.standby.query('select pg_wal_replay_resume()').catch(() => undefined);
  });

  const standby = () => cluster!.standby;
  const pauseReplay = async () => {
    await standby().query('select pg_wal_replay_pause()');
  };
  const resumeReplay = async () => {
    await standby().query('select pg_wal_replay_resume()');
  };
  /** Whether the standby has the user's row yet: the lag the app's reads are exposed to. */
  const standbyHasUser = async (userId: string) => (await standby().query('select 1 from users where id = $1', [userId], 'authctl')).length > 0;
  const listed = async (username: string, on = app) => (await on.container.admin.users.list({ limit: 10, search: username })).users.map((u) => u.username);
  const userTotal = async () => (await app.container.admin.stats()).users.total;
  const sessionIds = async (accessToken: string): Promise<string[]> => {
    const res = await app.request('/v1/sessions', { token: accessToken });
    const text = await res.text();
    expect(res.status, `GET /v1/sessions: ${text}`).to.equal(200);
    return (JSON.parse(text) as { sessions: SessionView[] }).sessions.map((s) => s.id);
  };
  const readyz = async (on = app): Promise<{ status: number; body: Readiness }> => {
    const res = await on.request('/readyz');
    return { status: res.status, body: (await res.json()) as Readiness };
  };
  const fallbacks = async (reason: 'error' | 'degraded'): Promise<number> => {
    const text = await (await app.request('/metrics')).text();
    const line = text.split('\n').find((l) => l.startsWith('authctl_db_reader_fallbacks_total{') && l.includes(`reason="${reason}"`));
    return line ? Number(line.split(' ').pop()) : 0;
  };
  /** A reader-routed read misses a user registered while replay is paused, and sees it once replay resumes. */
  const expectReadsFromStandby = async (label: string) => {
    const totalBefore = await userTotal();
    await pauseReplay();
    const account = await createAccount(app, label);
    expect(await standbyHasUser(account.user.id), 'the standby lags behind while its replay is paused').to.equal(false);
    expect(await listed(account.username), '`user list` reads the standby: the new user is not there yet').to.deep.equal([]);
    expect(await userTotal(), '`stats` counts on the standby: not yet').to.equal(totalBefore);
    await resumeReplay();
    await PgCluster.until('`user list` to catch up', async () => (await listed(account.username)).length === 1);
    expect(await userTotal()).to.equal(totalBefore + 1);
    return account;
  };

  it('admin listings and stats read the standby: stale while its replay is paused, current once it resumes', async function () {
    expect(await standby().query('select pg_is_in_recovery() as standby'), 'the reader is a hot standby').to.deep.equal([{ standby: true }]);
    await expectReadsFromStandby('lagged');
  });

  it("a user's own session list reads the writer: complete right after login and logout, however far the standby lags", async function () {
    await pauseReplay();
    const account: Account = await createAccount(app, 'own');
    const first = await login(app, account.username, account.password);
    const second = await login(app, account.username, account.password);
    const onStandby = await standby().query('select id from sessions where user_id = $1', [account.user.id], 'authctl');
    expect(onStandby, 'the standby has neither session yet').to.deep.equal([]);

    expect(await sessionIds(second.accessToken)).to.have.members([first.sessionId, second.sessionId]);

    const logout = await app.request('/v1/auth/logout', { method: 'POST', token: first.accessToken, json: { refreshToken: first.refreshToken } });
    expect(logout.status, 'logout').to.equal(204);
    expect(await sessionIds(second.accessToken), 'the logged-out session is gone at once').to.deep.equal([second.sessionId]);
    expect((await app.container.admin.users.show(account.user.id)).activeSessions, '`user show` counts on the writer').to.equal(1);
  });

  it('the standby down: every read falls back to the writer (never a 500), /readyz reports it degraded, and it recovers by itself', async function () {
    const account = await createAccount(app, 'outage');
    const tokens = await login(app, account.username, account.password);
    await cluster!.waitForReplay();
    expect(await readyz()).to.deep.equal({
      status: 200,
      body: { status: 'ok', checks: { database: 'ok', signingKeys: 'ok', revocationFeed: 'ok', cache: 'ok', 'database-reader': 'ok' } },
    });
    const errorsBefore = await fallbacks('error');
    const skippedBefore = await fallbacks('degraded');
    logs.clear();

    await standby().stop('immediate');

    // The first read finds the reader's pooled connections dead and is answered by the writer...
    expect(await listed(account.username)).to.deep.equal([account.username]);
    expect(await fallbacks('error')).to.equal(errorsBefore + 1);
    // ...and the next ones skip the reader at once while it is marked degraded.
    const onWriter = await cluster!.primary.query<{ n: number }>('select count(*)::int as n from users', [], 'authctl');
    expect(await userTotal(), '`stats` answered by the writer').to.equal(onWriter[0]!.n);
    expect(await fallbacks('degraded')).to.be.above(skippedBefore);
    expect(await sessionIds(tokens.accessToken)).to.deep.equal([tokens.sessionId]);
    const metrics = await app.request('/metrics');
    expect(metrics.status, '/metrics (its active-sessions gauge reads the reader)').to.equal(200);

    const degraded = await readyz();
    expect(degraded.status, 'the writer serves: still ready').to.equal(200);
    expect(degraded.body.status).to.equal('degraded');
    expect(degraded.body.checks['database-reader']).to.equal('degraded');
    expect(degraded.body.checks.database).to.equal('ok');
    expect(degraded.body).to.not.have.property('failing');
    await logs.settle();
    expect(logs.events('db.reader_degraded'), 'one warning for the whole outage').to.have.length(1);

    await standby().start();
    await PgCluster.until('/readyz to report the reader ok again', async () => (await readyz()).body.checks['database-reader'] === 'ok');
    expect((await readyz()).body.status).to.equal('ok');
    await logs.settle();
    expect(logs.events('db.reader_recovered')).to.have.length(1);
    // Back on the standby, not stuck on the writer: lag is visible again.
    await cluster!.waitForStreaming();
    await expectReadsFromStandby('back');
  });

  describe('a standby that stops answering (a partition: connections open, no bytes)', function () {
    const CONNECT_TIMEOUT_MS = 500;
    const STATEMENT_TIMEOUT_MS = 1_000;
    let proxy: TcpProxy;
    let hung: TestApp;

    before(async function () {
      proxy = new TcpProxy({ host: '127.0.0.1', port: standby().port });
      await proxy.start();
      const readUrl = new URL(standby().url('authctl'));
      readUrl.port = String(proxy.port);
      hung = await startTestApp('read-replica-hung', {
        db: app.db,
        migrate: false,
        overrides: { database: { readUrl: readUrl.toString(), connectTimeoutMs: CONNECT_TIMEOUT_MS, statementTimeoutMs: STATEMENT_TIMEOUT_MS } },
      });
    });
    after(async function () {
      await hung?.close();
      await proxy?.stop();
    });

    it('one read waits out the timeout and is answered by the writer; the next ones skip the standby at once; it recovers by itself', async function () {
      const account = await createAccount(hung, 'hung');
      await cluster!.waitForReplay();
      // The reader's pool now holds a connection that was open before the fault, as in production.
      expect(await listed(account.username, hung)).to.deep.equal([account.username]);
      proxy.blackhole();

      let started = Date.now();
      expect(await listed(account.username, hung), 'answered by the writer').to.deep.equal([account.username]);
      const waited = Date.now() - started;
      // The client-side bound of a query on an open connection: statement timeout + 1 s (db.ts).
      expect(waited, `the first read waited ${waited} ms`).to.be.within(STATEMENT_TIMEOUT_MS, STATEMENT_TIMEOUT_MS + 1_000 + 1_000);
      started = Date.now();
      expect(await listed(account.username, hung)).to.deep.equal([account.username]);
      expect(await readyz(hung)).to.deep.include({ status: 200 });
      const skipped = Date.now() - started;
      expect(skipped, `reads and /readyz while degraded took ${skipped} ms`).to.be.below(250);
      expect((await readyz(hung)).body.checks['database-reader']).to.equal('degraded');

      proxy.heal();
      await PgCluster.until('/readyz to report the reader ok again', async () => (await readyz(hung)).body.checks['database-reader'] === 'ok');
    });
  });

  // Last: it stops the primary and promotes the standby. Not an automated failover — what one
  // looks like to authctl: the writer's address (a proxy here, DNS in production) goes away, then
  // reaches a server that is still read-only, then the promoted new writer.
  describe('a writer failover, as authctl sees it', function () {
    let endpoint: TcpProxy;
    let served: TestApp;

    before(async function () {
      endpoint = new TcpProxy({ host: '127.0.0.1', port: cluster!.primary.port });
      await endpoint.start();
      const url = new URL(app.db.url);
      url.port = String(endpoint.port);
      served = await startTestApp('read-replica-failover', {
        db: { ...app.db, url: url.toString() },
        migrate: false,
        overrides: { database: { connectTimeoutMs: 500, statementTimeoutMs: 1_000 } },
      });
    });
    after(async function () {
      await served?.close();
      await endpoint?.stop();
    });

    const expectUnavailable = async (res: Response, label: string) => {
      const text = await res.text();
      expect(res.status, `${label}: ${text}`).to.equal(503);
      expect(JSON.parse(text)).to.include({ code: 'unavailable' });
      expect(res.headers.get('retry-after'), 'Retry-After').to.match(/^\d+$/);
    };
    const registerOn = (username: string) => served.request('/v1/auth/register', { method: 'POST', json: { username, password: 'pw failover 0123456789' } });

    it('requests get 503 + Retry-After while the writer is away or read-only, and the pools reconnect by themselves to the new writer', async function () {
      const account = await createAccount(served, 'failover');
      const tokens = await login(served, account.username, account.password);
      await cluster!.waitForReplay();

      // The old writer goes away: its connections are dropped.
      await endpoint.stop();
      await cluster!.primary.stop('immediate');
      await expectUnavailable(await registerOn('during-failover'), 'register while the writer is away');
      const away = await served.request('/readyz');
      expect(away.status, '/readyz while the writer is away').to.equal(503);
      expect(((await away.json()) as Readiness).failing).to.include('database');
      expect((await served.request('/v1/verify', { token: tokens.accessToken })).status, 'Bearer checks: keys and revocations are in memory').to.equal(200);

      // The writer's address reaches a server that is not promoted yet (or the demoted old writer).
      const moved = new TcpProxy({ host: '127.0.0.1', port: standby().port });
      moved.port = endpoint.port;
      endpoint = moved;
      await endpoint.start();
      await expectUnavailable(await registerOn('read-only'), 'register on a read-only server');

      await standby().query('select pg_promote()');
      await PgCluster.until('the new writer to take a registration', async () => (await registerOn('after-failover')).status === 201);
      const refreshed = await served.request('/v1/auth/refresh', { method: 'POST', json: { refreshToken: tokens.refreshToken } });
      expect(refreshed.status, 'a session opened before the failover refreshes on the new writer').to.equal(200);
      expect((await served.request('/readyz')).status).to.equal(200);
    });
  });
});
