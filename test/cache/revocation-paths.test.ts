import { expect } from 'chai';
import { buildContainer, type Container } from '../../src/container.js';
import { shutdown } from '../../src/runtime.js';
import { startTestApp, testConfig, type TestApp } from '../helpers/app.js';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';
import { createAccount, expectInvalidToken, expectProblem, login, refresh, type Account, type TokenResponse } from '../helpers/http-assert.js';
import { deleteKeys, REDIS_URL, uniquePrefix } from '../helpers/redis-server.js';
import { timeUntilRefused } from './support.js';

/**
 * Every operation that revokes sessions goes through SessionService's one revocation path, which
 * publishes after commit. Server B polls the database only every 60 s, so a revocation it refuses
 * within the limit below reached it by that publish: an operation that skipped it fails here.
 */
const DELIVERY_LIMIT_MS = 2_000;

describe('Every revoking operation reaches the region’s other servers at once (one revocation path)', function () {
  let db: TestDatabase;
  const prefix = uniquePrefix('revocation-paths');
  const overrides = { cache: { redisUrl: REDIS_URL, keyPrefix: prefix }, revocation: { pollIntervalMs: 60_000 } };
  let a: TestApp;
  let b: TestApp;
  /** What `authctl` builds for an admin command: a container of its own, no background loops. */
  let admin: Container;

  before(async function () {
    db = await createTestDatabase('cache_revocation_paths');
    a = await startTestApp('paths-a', { db, overrides });
    b = await startTestApp('paths-b', { db, overrides });
    admin = buildContainer(testConfig(db.url, overrides));
    expect(b.container.cache.health(), 'B is subscribed to the shared Redis').to.equal('ok');
  });
  after(async function () {
    await shutdown(admin);
    await a?.close();
    await b?.close();
    await deleteKeys(REDIS_URL, prefix);
    await db?.drop();
  });

  /** Logs in at A, checks B accepts the token, runs `revoke`, and expects B to refuse it within the limit. */
  async function expectRefusedAtB(label: string, revoke: (tokens: TokenResponse, account: Account) => Promise<void>): Promise<void> {
    const account = await createAccount(a, `paths`);
    const tokens = await login(a, account.username, account.password);
    const before = await b.request('/v1/verify', { token: tokens.accessToken });
    expect(before.status, `${label}: B accepts the token first`).to.equal(200);
    await revoke(tokens, account);
    const refused = await timeUntilRefused(b, tokens.accessToken, DELIVERY_LIMIT_MS);
    if (refused.ms === undefined) {
      expect.fail(`${label}: B still accepted the access token ${DELIVERY_LIMIT_MS} ms later (status ${refused.lastStatus}); the revocation was not published`);
    }
    await expectInvalidToken(refused.response);
  }

  async function expectStatus(res: Response, status: number, label: string): Promise<void> {
    expect(res.status, `${label}: ${await res.text()}`).to.equal(status);
  }

  it('logout', async function () {
    await expectRefusedAtB('logout', async (t) => expectStatus(await a.request('/v1/auth/logout', { method: 'POST', token: t.accessToken }), 204, 'logout'));
  });

  it('logout-all', async function () {
    await expectRefusedAtB('logout-all', async (t) =>
      expectStatus(await a.request('/v1/auth/logout-all', { method: 'POST', token: t.accessToken }), 204, 'logout-all'),
    );
  });

  it('revoking one of one’s own sessions (DELETE /v1/sessions/:id)', async function () {
    await expectRefusedAtB('DELETE /v1/sessions/:id', async (t, account) => {
      const other = await login(a, account.username, account.password);
      await expectStatus(await a.request(`/v1/sessions/${t.sessionId}`, { method: 'DELETE', token: other.accessToken }), 204, 'revoke own session');
    });
  });

  it('password change (the other sessions of the user)', async function () {
    await expectRefusedAtB('password change', async (_t, account) => {
      const second = await login(a, account.username, account.password);
      const res = await a.request('/v1/auth/password', {
        method: 'POST',
        token: second.accessToken,
        json: { currentPassword: account.password, newPassword: `${account.password}-new` },
      });
      await expectStatus(res, 204, 'password change');
      // The session it was changed from stays; the first one (`t`) is what B must refuse.
      expect((await b.request('/v1/verify', { token: second.accessToken })).status).to.equal(200);
    });
  });

  it('refresh-token reuse (the whole session)', async function () {
    await expectRefusedAtB('reuse', async (t) => {
      const first = await refresh(a, t.refreshToken);
      await expectStatus(first.clone(), 200, 'first refresh');
      const next = (await first.json()) as TokenResponse;
      await expectStatus(await refresh(a, next.refreshToken), 200, 'second refresh');
      // Two counters behind the session: not a grace retry, a replay.
      await expectProblem(await refresh(a, t.refreshToken), 401, 'refresh_token_reused');
    });
  });

  it('admin: disable (authctl user disable)', async function () {
    await expectRefusedAtB('disable', async (_t, account) => {
      const { revokedSessions } = await admin.users.setStatus(account.username, 'disabled');
      expect(revokedSessions).to.equal(1);
    });
  });

  it('admin: delete (authctl user delete)', async function () {
    await expectRefusedAtB('delete', async (_t, account) => {
      const { revokedSessions } = await admin.users.delete(account.username);
      expect(revokedSessions).to.equal(1);
    });
  });

  it('admin: set-password (authctl user set-password)', async function () {
    await expectRefusedAtB('set-password', async (_t, account) => {
      const user = await admin.users.find(account.username);
      const { revokedSessions } = await admin.users.setPassword(user.id, `${account.password}-reset`);
      expect(revokedSessions).to.equal(1);
    });
  });

  it('admin: revoke one session (authctl session revoke)', async function () {
    await expectRefusedAtB('session revoke', async (t) => {
      expect(await admin.sessions.revoke(t.sessionId, 'admin')).to.equal(true);
    });
  });

  it('admin: revoke every session of a user (authctl token revoke --user)', async function () {
    await expectRefusedAtB('token revoke --user', async (_t, account) => {
      const user = await admin.users.find(account.username);
      expect(await admin.sessions.revokeAllForUser(user.id, 'admin')).to.have.length(1);
    });
  });

  it('a change that rolls back publishes nothing', async function () {
    const account = await createAccount(a, 'paths');
    const tokens = await login(a, account.username, account.password);
    const user = await admin.users.find(account.username);
    let revokedInside = 0;
    const err = await admin.sessions
      .revokeWithin(async (tx) => {
        revokedInside = (await tx.revokeAllForUser(user.id, 'admin')).length;
        throw new Error('the rest of the change failed');
      })
      .catch((e: unknown) => e);
    expect(err).to.be.instanceOf(Error);
    expect(revokedInside).to.equal(1);
    expect(admin.revocations.has(tokens.sessionId), 'nothing published for a rolled-back revocation').to.equal(false);
    const session = await admin.sessions.findById(tokens.sessionId);
    expect(session?.revokedAt).to.equal(null);
    expect((await b.request('/v1/verify', { token: tokens.accessToken })).status).to.equal(200);
  });
});
