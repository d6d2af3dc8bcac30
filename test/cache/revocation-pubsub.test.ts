import { expect } from 'chai';
import { Redis } from 'ioredis';
import { ManualClock } from '../../src/platform/clock.js';
import { startTestApp, type TestApp } from '../helpers/app.js';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';
import { createAccount, expectInvalidToken, expectProblem, login, refresh, sleep, type Account } from '../helpers/http-assert.js';
import { deleteKeys, REDIS_URL, uniquePrefix } from '../helpers/redis-server.js';
import { eventually, metricValue, timeUntilRefused } from './support.js';

const DELIVERY_LIMIT_MS = 2_000;

async function logout(app: TestApp, accessToken: string): Promise<void> {
  const res = await app.request('/v1/auth/logout', { method: 'POST', token: accessToken });
  expect(res.status, await res.text()).to.equal(204);
}

async function expectAccepted(app: TestApp, accessToken: string, label: string): Promise<void> {
  const res = await app.request('/v1/verify', { token: accessToken });
  expect(res.status, `${label}: ${await res.text()}`).to.equal(200);
}

describe('Revocations across servers of one region (cache)', function () {
  let db: TestDatabase;
  const prefix = uniquePrefix('revocation-pubsub');
  const apps: TestApp[] = [];

  before(async function () {
    db = await createTestDatabase('cache_revocation_pubsub');
  });
  after(async function () {
    for (const app of apps) await app.close().catch(() => undefined);
    await deleteKeys(REDIS_URL, prefix);
    await db?.drop();
  });

  describe('two servers sharing one Redis (the DB poll every 60 s cannot be what delivers)', function () {
    let a: TestApp;
    let b: TestApp;
    let account: Account;

    before(async function () {
      const overrides = { cache: { redisUrl: REDIS_URL, keyPrefix: prefix }, revocation: { pollIntervalMs: 60_000 } };
      a = await startTestApp('pubsub-a', { db, overrides });
      apps.push(a);
      b = await startTestApp('pubsub-b', { db, overrides });
      apps.push(b);
      expect(a.container.cache.driver).to.equal('redis');
      expect(a.container.cache.health()).to.equal('ok');
      expect(b.container.cache.health()).to.equal('ok');
      account = await createAccount(a, 'pubsub');
    });

    it('a logout on A is refused at B within 2 s (pub/sub)', async function () {
      const tokens = await login(a, account.username, account.password);
      await expectAccepted(b, tokens.accessToken, 'B accepts the token before the logout');
      await logout(a, tokens.accessToken);
      const refused = await timeUntilRefused(b, tokens.accessToken, DELIVERY_LIMIT_MS);
      if (refused.ms === undefined) {
        expect.fail(
          `B still accepted the access token ${DELIVERY_LIMIT_MS} ms after the logout on A (last status ${refused.lastStatus}): the revocation did not arrive by pub/sub`,
        );
      }
      await expectInvalidToken(refused.response);
    });

    it('after a logout on A, the refresh token is refused at B, and the negative cache spares the DB read where memory has forgotten', async function () {
      const tokens = await login(a, account.username, account.password);
      await logout(a, tokens.accessToken);
      // The cache entry is written off the response path: wait (bounded) until it is there.
      const entry = await eventually('revoked session in the shared cache', async () => {
        const cached = await b.container.cache.getSession(tokens.sessionId);
        return cached?.revokedAt ? cached : undefined;
      });
      expect(entry.id).to.equal(tokens.sessionId);
      expect(entry.revokedAt).to.be.a('number');
      expect(entry.revokedAt!).to.be.within(Date.now() - 60_000, Date.now() + 1_000);
      expect(entry.expiresAt).to.be.above(Date.now());
      await expectProblem(await refresh(b, tokens.refreshToken), 401, 'invalid_refresh_token');

      // A server whose in-memory revocation list no longer covers the revocation (its clock is
      // past the access-token horizon, and it subscribed after the broadcast) learns it from the
      // cache once the compare-and-set fails, without reading the session row.
      const c = await startTestApp('pubsub-c', {
        db,
        clock: new ManualClock(Date.now() + 1_000_000),
        overrides: { cache: { redisUrl: REDIS_URL, keyPrefix: prefix }, revocation: { pollIntervalMs: 60_000 } },
      });
      try {
        expect(c.container.revocations.has(tokens.sessionId), 'C does not know it from memory').to.equal(false);
        const hitsBefore = await metricValue(c, 'authctl_cache_lookups_total', { kind: 'session', result: 'hit' });
        await expectProblem(await refresh(c, tokens.refreshToken), 401, 'invalid_refresh_token');
        const hitsAfter = await metricValue(c, 'authctl_cache_lookups_total', { kind: 'session', result: 'hit' });
        expect(hitsAfter - hitsBefore, 'the refresh was decided by a cache hit').to.equal(1);
      } finally {
        await c.close();
      }
      // Still revoked in the cache (the refusals did not overwrite the entry).
      expect((await b.container.cache.getSession(tokens.sessionId))?.revokedAt).to.equal(entry.revokedAt);
    });

    it('/v1/me is served from the cache: the first call misses, the second hits', async function () {
      const raw = new Redis(REDIS_URL);
      try {
        const tokens = await login(b, account.username, account.password);
        const userKey = `${prefix}:user:{${account.user.id}}`;
        await raw.del(userKey);
        const hit = { kind: 'user', result: 'hit' };
        const miss = { kind: 'user', result: 'miss' };
        const hits0 = await metricValue(b, 'authctl_cache_lookups_total', hit);
        const misses0 = await metricValue(b, 'authctl_cache_lookups_total', miss);

        const first = await b.request('/v1/me', { token: tokens.accessToken });
        expect(first.status).to.equal(200);
        expect(((await first.json()) as { user: { id: string } }).user.id).to.equal(account.user.id);
        expect(await metricValue(b, 'authctl_cache_lookups_total', miss), 'first /v1/me is a miss').to.equal(misses0 + 1);
        // The profile is cached off the response path: wait (bounded) for the key.
        await eventually('user profile cached', async () => ((await raw.exists(userKey)) === 1 ? true : undefined));
        const ttl = await raw.ttl(userKey);
        expect(ttl, 'user entry has a TTL').to.be.above(0);

        const second = await b.request('/v1/me', { token: tokens.accessToken });
        expect(second.status).to.equal(200);
        const body = (await second.json()) as { user: { id: string; username: string } };
        expect(body.user.id).to.equal(account.user.id);
        expect(body.user.username).to.equal(account.username);
        expect(await metricValue(b, 'authctl_cache_lookups_total', hit), 'second /v1/me is a hit').to.equal(hits0 + 1);
      } finally {
        raw.disconnect();
      }
    });

    it('a logout on B is refused at A within 2 s (pub/sub works both ways)', async function () {
      const tokens = await login(b, account.username, account.password);
      await expectAccepted(a, tokens.accessToken, 'A accepts the token before the logout');
      await logout(b, tokens.accessToken);
      const refused = await timeUntilRefused(a, tokens.accessToken, DELIVERY_LIMIT_MS);
      if (refused.ms === undefined) expect.fail(`A still accepted the token ${DELIVERY_LIMIT_MS} ms after the logout on B (last status ${refused.lastStatus})`);
      await expectInvalidToken(refused.response);
    });
  });

  describe('two servers with the in-process cache (no Redis): the DB poll is the backstop', function () {
    let c: TestApp;
    let d: TestApp;
    let account: Account;

    before(async function () {
      const overrides = { revocation: { pollIntervalMs: 200 } };
      c = await startTestApp('pubsub-c', { db, overrides });
      apps.push(c);
      d = await startTestApp('pubsub-d', { db, overrides });
      apps.push(d);
      expect(c.container.cache.driver).to.equal('memory');
      account = await createAccount(c, 'backstop');
    });

    it('a logout on C is refused at D within 2 s', async function () {
      const tokens = await login(c, account.username, account.password);
      await expectAccepted(d, tokens.accessToken, 'D accepts the token before the logout');
      await logout(c, tokens.accessToken);
      const refused = await timeUntilRefused(d, tokens.accessToken, DELIVERY_LIMIT_MS);
      if (refused.ms === undefined) expect.fail(`D still accepted the token ${DELIVERY_LIMIT_MS} ms after the logout on C (last status ${refused.lastStatus})`);
      await expectInvalidToken(refused.response);
      // And the refresh token is refused at D (from PostgreSQL: D's own cache never heard of it).
      await expectProblem(await refresh(d, tokens.refreshToken), 401, 'invalid_refresh_token');
    });

    it('with polls of 60 s and no Redis, a revocation does NOT reach the other server quickly (control)', async function () {
      // The control experiment for the pub/sub test above: same setup without Redis must not deliver.
      const overrides = { revocation: { pollIntervalMs: 60_000 } };
      const e = await startTestApp('pubsub-e', { db, overrides });
      apps.push(e);
      const f = await startTestApp('pubsub-f', { db, overrides });
      apps.push(f);
      const tokens = await login(e, account.username, account.password);
      await logout(e, tokens.accessToken);
      await sleep(500);
      await expectAccepted(f, tokens.accessToken, 'F has not heard of the revocation yet');
    });
  });
});
