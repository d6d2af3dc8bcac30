import { expect } from 'chai';
import pg from 'pg';
import type { SessionOwner } from '../../src/model/session.js';
import { Db } from '../../src/store/pg/db.js';
import { startTestApp, testConfig, type TestApp } from '../helpers/app.js';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';
import { expectProblem, expectTokenResponse, refresh, refreshCounter, uniquePassword, type SessionView, type TokenResponse } from '../helpers/http-assert.js';
import { LogCapture } from '../helpers/log-capture.js';
import { runCli } from '../cli/run-cli.js';
import { PgBouncer, pgbouncerInstalled } from '../helpers/pgbouncer.js';
import { waitUntil } from '../jobs/setup.js';
import { codeAndLink, nextMail, poster, signUp, startEmailRegion, type EmailRegion } from '../email/support.js';

const POOL_SIZE = 3;

/**
 * Every flow through Debian's PgBouncer (1.18: no protocol-level named prepared statements) in
 * transaction pooling mode, with only POOL_SIZE server connections shared by the app's pools, the
 * job queue's and the worker's — and, first, what breaks without `database.pooler: "transaction"`.
 */
describe('behind PgBouncer in transaction pooling mode (database.pooler)', function () {
  this.timeout(40_000);
  let bouncer: PgBouncer;
  let database: TestDatabase;
  let region: EmailRegion;
  let app: TestApp;

  before(async function () {
    if (!pgbouncerInstalled()) {
      console.warn('    pgbouncer is not installed (apt-get install pgbouncer): skipping the connection pooler tests');
      this.skip();
    }
    [bouncer, database] = await Promise.all([PgBouncer.start({ poolSize: POOL_SIZE }), createTestDatabase('pgbouncer')]);
    // Migrations (knex's and pg-boss's), the server and its worker all go through PgBouncer.
    region = await startEmailRegion('pgbouncer', { database: { pooler: 'transaction' } }, undefined, through(bouncer));
    app = region.app;
  });
  after(async function () {
    await region?.close();
    await bouncer?.stop();
    await database?.drop();
  });

  const post = (path: string, json: unknown, token?: string) => poster(region)(path, json, token);

  /** The test database as a region sees it through `pooler` (dropped by this file, not by the region). */
  const through = (pooler: PgBouncer): TestDatabase => ({ ...database, url: pooler.through(database.url), drop: () => Promise.resolve() });

  /** A registered user (over HTTP) and `count` more sessions of it, opened without a password hash each. */
  async function userWithSessions(count: number): Promise<{ username: string; password: string; owner: SessionOwner; sessions: string[] }> {
    const username = `pool${Date.now().toString(36)}${Math.floor(Math.random() * 1e6)}`;
    const password = uniquePassword();
    const res = await post('/v1/auth/register', { username, password });
    expect(res.status, await res.clone().text()).to.equal(201);
    const { user } = (await res.json()) as { user: { id: string; createdAt: string } };
    const owner: SessionOwner = {
      id: user.id,
      username,
      email: null,
      emailVerifiedAt: null,
      homeRegion: 'local',
      createdAt: new Date(user.createdAt),
      status: 'active',
    };
    const sessions: string[] = [];
    for (let i = 0; i < count; i++) {
      const issued = app.container.sessions.open(owner, {}, { authTime: new Date(), amr: ['pwd'] });
      await app.container.sessions.save(issued);
      sessions.push(issued.refreshToken);
    }
    return { username, password, owner, sessions };
  }

  /** Counts the region's rotation statements (each a group commit of one or more refreshes) while `work` runs. */
  async function countingBatches(work: () => Promise<void>): Promise<number> {
    const db = app.container.db;
    const prepared = db.prepared.bind(db);
    let batches = 0;
    db.prepared = (name, text, values) => {
      batches += 1;
      return prepared(name, text, values);
    };
    try {
      await work();
    } finally {
      db.prepared = prepared;
    }
    return batches;
  }

  describe('without pooler mode (the failures it prevents)', function () {
    /** A second server on the same database with the default `database.pooler: "none"`. */
    async function unpooledApp(pooler: PgBouncer, logs: LogCapture): Promise<TestApp> {
      return startTestApp('pgbouncer_none', {
        db: through(pooler),
        migrate: false,
        logSink: logs,
        overrides: { log: { level: 'warn' }, database: { pooler: 'none', connectTimeoutMs: 1_000 } },
      });
    }

    it('statement_timeout in the startup packet: PgBouncer refuses every connection, the server answers 503 and is not ready', async function () {
      const logs = new LogCapture();
      const none = await unpooledApp(bouncer, logs);
      try {
        const ready = await none.request('/readyz');
        expect(ready.status).to.equal(503);
        expect(((await ready.json()) as { checks: Record<string, string> }).checks.database).to.equal('down');
        await expectProblem(
          await none.request('/v1/auth/register', { method: 'POST', json: { username: 'refused', password: uniquePassword() } }),
          503,
          'unavailable',
        );
        await logs.settle();
        expect(logs.text).to.match(/unsupported startup parameter: statement_timeout/);
        expect(bouncer.output).to.match(/unsupported startup parameter: statement_timeout/);
      } finally {
        await none.close();
      }
    });

    it('`authctl migrate` through it exits 69 and says to set database.pooler', async function () {
      const result = await runCli(['migrate'], { databaseUrl: bouncer.through(database.url) });
      expect(result.code, result.stderr).to.equal(69);
      expect(result.stderr).to.include('AUTHCTL_DATABASE_POOLER=transaction');
    });

    it('with the parameter ignored by PgBouncer, concurrent refreshes break on the named statement of the group commit', async function () {
      const lenient = await PgBouncer.start({ poolSize: 2, ignoreStartupParameters: ['statement_timeout'], serverRoundRobin: true });
      const logs = new LogCapture();
      const none = await unpooledApp(lenient, logs);
      try {
        const { sessions } = await userWithSessions(24);
        // Both server connections open, taken in turn: consecutive transactions of one client
        // connection land on different ones.
        await Promise.all([none.container.db.writer.raw('select pg_sleep(0.1)'), none.container.db.writer.raw('select pg_sleep(0.1)')]);
        const statuses: number[] = [];
        let tokens = sessions;
        for (let round = 0; round < 4; round++) {
          const responses = await Promise.all(tokens.map((token) => refresh(none, token)));
          statuses.push(...responses.map((r) => r.status));
          const next: string[] = [];
          for (const res of responses)
            if (res.status === 200) next.push(((await res.json()) as TokenResponse).refreshToken);
            else await res.body?.cancel();
          tokens = next;
        }
        const failed = statuses.filter((s) => s !== 200);
        expect(failed.length, `statuses: ${statuses.join(' ')}`).to.be.greaterThan(0);
        // Not a dependency failure the server could wait out: a wrong configuration, answered 500.
        expect(new Set(failed)).to.deep.equal(new Set([500]));
        await logs.settle();
        expect(logs.text).to.match(/prepared statement \\?"authctl_rotate_batch_v2\\?" (does not exist|already exists)/);
      } finally {
        await none.close();
        await lenient.stop();
      }
    });
  });

  describe('with database.pooler: "transaction"', function () {
    it('migrated through PgBouncer: authctl tables and the job queue', async function () {
      const status = await app.container.db.migrateStatus();
      expect(status.pending).to.deep.equal([]);
      expect(status.applied.length).to.be.greaterThan(0);
      expect(await app.container.jobs.status()).to.include({ installed: true });
    });

    it('/readyz is ready', async function () {
      const res = await app.request('/readyz');
      expect(res.status, await res.clone().text()).to.equal(200);
      expect(((await res.json()) as { checks: Record<string, string> }).checks.database).to.equal('ok');
    });

    it('register and login', async function () {
      const username = `pl${Date.now().toString(36)}`;
      const password = uniquePassword();
      expect((await post('/v1/auth/register', { username, password })).status).to.equal(201);
      const tokens = await expectTokenResponse(await post('/v1/auth/login', { username, password }));
      expect((await app.request('/v1/me', { token: tokens.accessToken })).status).to.equal(200);
    });

    it('concurrent refreshes of 32 sessions rotate every one, in group commits, round after round', async function () {
      const { sessions } = await userWithSessions(32);
      let tokens = sessions;
      const batches = await countingBatches(async () => {
        for (let round = 0; round < 3; round++) {
          const responses = await Promise.all(tokens.map((token) => refresh(app, token)));
          const next: string[] = [];
          for (const [i, res] of responses.entries()) {
            const body = await expectTokenResponse(res);
            expect(refreshCounter(body.refreshToken)).to.equal(refreshCounter(tokens[i]!) + 1);
            next.push(body.refreshToken);
          }
          tokens = next;
        }
      });
      expect(batches, 'rotation statements for 96 refreshes').to.be.within(1, 48);
      for (const token of tokens) {
        const id = app.container.sessions.sessionIdOf(token)!;
        expect((await app.container.sessions.findById(id))?.counter).to.equal(refreshCounter(token));
      }
    });

    it('a replayed refresh token revokes its session', async function () {
      const [t0] = (await userWithSessions(1)).sessions;
      const t1 = await expectTokenResponse(await refresh(app, t0));
      const t2 = await expectTokenResponse(await refresh(app, t1.refreshToken));
      await expectProblem(await refresh(app, t0), 401, 'refresh_token_reused');
      await expectProblem(await refresh(app, t2.refreshToken), 401, 'invalid_refresh_token');
      expect((await app.container.sessions.findById(t2.sessionId))?.revokeReason).to.equal('reuse');
    });

    it('GET /v1/sessions, logout and logout-all', async function () {
      const { username, password } = await userWithSessions(0);
      const login = () => post('/v1/auth/login', { username, password }).then(expectTokenResponse);
      const [a, b, c] = await Promise.all([login(), login(), login()]);
      const listed = await app.request('/v1/sessions', { token: a.accessToken });
      expect(listed.status).to.equal(200);
      const { sessions } = (await listed.json()) as { sessions: SessionView[] };
      expect(sessions.map((s) => s.id).sort()).to.deep.equal([a.sessionId, b.sessionId, c.sessionId].sort());
      expect(sessions.find((s) => s.current)?.id).to.equal(a.sessionId);

      expect((await post('/v1/auth/logout', {}, a.accessToken)).status).to.equal(204);
      await expectProblem(await refresh(app, a.refreshToken), 401, 'invalid_refresh_token');
      await expectTokenResponse(await refresh(app, b.refreshToken)).then((next) => (b.refreshToken = next.refreshToken));

      expect((await post('/v1/auth/logout-all', {}, b.accessToken)).status).to.equal(204);
      await expectProblem(await refresh(app, b.refreshToken), 401, 'invalid_refresh_token');
      await expectProblem(await refresh(app, c.refreshToken), 401, 'invalid_refresh_token');
    });

    it('password change: the other sessions end, the new password logs in', async function () {
      const { username, password } = await userWithSessions(0);
      const mine = await expectTokenResponse(await post('/v1/auth/login', { username, password }));
      const other = await expectTokenResponse(await post('/v1/auth/login', { username, password }));
      const newPassword = uniquePassword();
      expect((await post('/v1/auth/password', { currentPassword: password, newPassword }, mine.accessToken)).status).to.equal(204);
      await expectProblem(await refresh(app, other.refreshToken), 401, 'invalid_refresh_token');
      await expectTokenResponse(await refresh(app, mine.refreshToken));
      await expectProblem(await post('/v1/auth/login', { username, password }), 401, 'invalid_credentials');
      await expectTokenResponse(await post('/v1/auth/login', { username, password: newPassword }));
    });

    it('e-mail verification and password reset, through the worker’s email-request and mail jobs', async function () {
      const user = await signUp(region, 'poolmail');
      const { code } = codeAndLink(user.first);
      expect((await post('/v1/auth/email/verify', { email: user.email, code })).status).to.equal(204);

      const since = region.smtp.received.length;
      expect((await post('/v1/auth/password/forgot', { email: user.email })).status).to.equal(202);
      const reset = codeAndLink(await nextMail(region.smtp, user.email, /reset your password/, since));
      const newPassword = uniquePassword();
      expect((await post('/v1/auth/password/reset', { email: user.email, code: reset.code, newPassword })).status).to.equal(204);
      const tokens = await expectTokenResponse(await post('/v1/auth/login', { email: user.email, password: newPassword }));
      expect(tokens.user.emailVerified).to.equal(true);
    });

    it('the cleanup job deletes expired sessions', async function () {
      const { owner } = await userWithSessions(0);
      const issued = app.container.sessions.open(owner, {}, { authTime: new Date(), amr: ['pwd'] });
      const expired = new Date(Date.now() - 86_400_000);
      await app.container.repos.sessions.insert({ ...issued.session, expiresAt: expired, createdAt: expired, lastUsedAt: expired, rotatedAt: expired });
      const done = region.logs.events('cleanup.done').length;
      // The queue holds one queued pass at most (stately): when the cron has just queued one, that
      // pass does the work (it runs after the insert above).
      await app.container.jobs.send('cleanup', {}).catch((err: unknown) => {
        if (!/did not create the cleanup job/.test(String(err))) throw err;
      });
      await waitUntil(() => region.logs.events('cleanup.done').length > done, 'a cleanup pass');
      expect(await app.container.sessions.findById(issued.session.id)).to.equal(undefined);
    });

    it('all of it shared POOL_SIZE server connections among more client connections', async function () {
      const mine = (rows: Array<Record<string, unknown>>) => rows.filter((r) => r.database === database.name);
      const servers = mine(await bouncer.show('SERVERS'));
      const clients = mine(await bouncer.show('CLIENTS'));
      expect(servers.length).to.be.within(1, POOL_SIZE);
      expect(clients.length).to.be.greaterThan(POOL_SIZE);
    });

    it('the statement timeout comes from the database (ALTER … SET statement_timeout), not the startup packet', async function () {
      const slow = await createTestDatabase('pgbouncer_timeout');
      const admin = new pg.Client({ connectionString: slow.url });
      await admin.connect();
      await admin.query(`alter database "${slow.name}" set statement_timeout = '250ms'`).finally(() => admin.end());
      // The client-side bound (5 s + 1 s) is far away: what cancels the statement is the server.
      const db = new Db(testConfig(bouncer.through(slow.url), { database: { pooler: 'transaction', statementTimeoutMs: 5_000 } }).database);
      try {
        expect((await db.writer.raw<{ rows: Array<{ statement_timeout: string }> }>('show statement_timeout')).rows[0]!.statement_timeout).to.equal('250ms');
        const started = Date.now();
        const err = await db.writer.raw('select pg_sleep(3)').then(
          () => undefined,
          (e: unknown) => e as { code?: string },
        );
        expect(err?.code).to.equal('57014');
        expect(Date.now() - started).to.be.lessThan(2_000);
      } finally {
        await db.close();
        await slow.drop();
      }
    });
  });
});
