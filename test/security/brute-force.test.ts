import { expect } from 'chai';
import { Redis } from 'ioredis';
import pg from 'pg';
import { loadConfig } from '../../src/config/load.js';
import { configSchema, type ConfigInput } from '../../src/config/schema.js';
import { metricValue } from '../cache/support.js';
import { startTestApp, type TestApp } from '../helpers/app.js';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';
import { createAccount, expectProblem, expectTokenResponse, sleep, uniquePassword, uniqueUsername, type Account } from '../helpers/http-assert.js';
import { LogCapture, assertNoSecrets } from '../helpers/log-capture.js';
import { RedisServerProcess, uniquePrefix } from '../helpers/redis-server.js';

type Limits = NonNullable<ConfigInput['rateLimit']>;

function attempt(app: TestApp, username: string, password: string, headers: Record<string, string> = {}): Promise<Response> {
  return app.request('/v1/auth/login', { method: 'POST', json: { username, password }, headers });
}

async function expectWrong(res: Response): Promise<void> {
  await expectProblem(res, 401, 'invalid_credentials');
}

/** 429 rate_limited with a Retry-After of whole seconds; returns it. */
async function expectLimited(res: Response): Promise<number> {
  await expectProblem(res, 429, 'rate_limited');
  const retryAfter = res.headers.get('retry-after');
  expect(retryAfter, 'Retry-After').to.match(/^[1-9]\d*$/);
  return Number(retryAfter);
}

/** Waits out a Retry-After (plus a margin for a busy machine). */
const waitOut = (seconds: number) => sleep(seconds * 1000 + 300);

describe('brute-force protection (docs/api.md#rate-limits, NIST SP 800-63B §5.2.2)', function () {
  this.timeout(60_000);

  describe('per account, in-process counters', function () {
    const limits: Limits = { freeFailures: 3, maxBackoff: 2, maxFailures: 100, failureWindow: 3_600 };
    let app: TestApp;
    let capture: LogCapture;

    before(async function () {
      capture = new LogCapture();
      app = await startTestApp('sec_bruteforce', { overrides: { rateLimit: limits }, log: capture.logger() });
      capture.follow(app.container.requestContext);
    });
    after(async () => app?.close());

    it('free failures answer 401; then the back-off refuses even the right password with 429 and Retry-After', async function () {
      const victim = await createAccount(app, 'bf-victim');
      for (let i = 0; i < 3; i++) await expectWrong(await attempt(app, victim.username, 'wrong password!'));
      // The 4th failure is still answered (it was allowed in), and starts a 1 s back-off.
      await expectWrong(await attempt(app, victim.username, 'wrong password!'));
      const retryAfter = await expectLimited(await attempt(app, victim.username, victim.password));
      expect(retryAfter).to.be.within(1, 2);
      await waitOut(retryAfter);
      await expectTokenResponse(await attempt(app, victim.username, victim.password));
    });

    it('the back-off doubles per failure and is capped at maxBackoff', async function () {
      const victim = await createAccount(app, 'bf-double');
      const throttle = app.container.throttle;
      expect([1, 2, 3, 4, 5, 30, 99].map((n) => throttle.backoffSeconds(n))).to.deep.equal([1, 2, 2, 2, 2, 2, 2]);
      for (let i = 0; i < 3; i++) await expectWrong(await attempt(app, victim.username, 'wrong password!'));
      await expectWrong(await attempt(app, victim.username, 'wrong password!'));
      await waitOut(await expectLimited(await attempt(app, victim.username, 'wrong password!')));
      await expectWrong(await attempt(app, victim.username, 'wrong password!'));
      // The 5th failure blocked for 2 s (the cap here).
      const second = await expectLimited(await attempt(app, victim.username, victim.password));
      expect(second).to.equal(2);
    });

    it('a successful login resets the account counter', async function () {
      const victim = await createAccount(app, 'bf-reset');
      for (let round = 0; round < 3; round++) {
        for (let i = 0; i < 3; i++) await expectWrong(await attempt(app, victim.username, 'wrong password!'));
        await expectTokenResponse(await attempt(app, victim.username, victim.password));
      }
    });

    it('spellings that normalize alike share one counter (NFKC + case folding)', async function () {
      const victim = await createAccount(app, 'bf-fold');
      const spellings = [victim.username.toUpperCase(), victim.username, `${victim.username[0]!.toUpperCase()}${victim.username.slice(1)}`];
      for (const spelling of spellings) await expectWrong(await attempt(app, spelling, 'wrong password!'));
      await expectWrong(await attempt(app, victim.username.toUpperCase(), 'wrong password!'));
      await expectLimited(await attempt(app, victim.username, victim.password));
    });

    it('an unknown username is throttled exactly like a real one (the 429 tells nothing)', async function () {
      const ghost = uniqueUsername('bf-ghost');
      for (let i = 0; i < 4; i++) await expectWrong(await attempt(app, ghost, 'wrong password!'));
      const body = (await (await attempt(app, ghost, 'wrong password!')).json()) as Record<string, unknown>;
      const real = await createAccount(app, 'bf-real');
      for (let i = 0; i < 4; i++) await expectWrong(await attempt(app, real.username, 'wrong password!'));
      const realBody = (await (await attempt(app, real.username, 'wrong password!')).json()) as Record<string, unknown>;
      delete body.requestId;
      delete realBody.requestId;
      expect(body).to.deep.equal(realBody);
      expect(body.code).to.equal('rate_limited');
    });

    it('concurrent guesses cannot skip the back-off: past the free failures, exactly one guess per back-off window is verified', async function () {
      // maxFailures is far above the burst, so only the back-off can stop it.
      const guarded = await startTestApp('sec_bruteforce_race', { overrides: { rateLimit: { freeFailures: 3, maxFailures: 100, maxBackoff: 60 } } });
      try {
        const victim = await createAccount(guarded, 'bf-race');
        const results = await Promise.all(Array.from({ length: 20 }, () => attempt(guarded, victim.username, 'wrong password!')));
        const statuses = results.map((r) => r.status);
        // 3 free + 1 that opens the 1 s back-off; one more only if the burst outlasted that second.
        expect(statuses.filter((s) => s === 401).length, `statuses ${statuses.join(',')}`).to.be.within(4, 5);
        expect(
          statuses.filter((s) => s !== 401 && s !== 429),
          'only 401 and 429',
        ).to.deep.equal([]);
      } finally {
        await guarded.close();
      }
    });

    it('429s are counted in metrics and logged without the password or username', async function () {
      const before = await metricValue(app, 'authctl_rate_limited_total', { scope: 'account' });
      const victim = await createAccount(app, 'bf-logged');
      const guess = uniquePassword();
      for (let i = 0; i < 4; i++) await expectWrong(await attempt(app, victim.username, guess));
      await expectLimited(await attempt(app, victim.username, victim.password));
      expect(await metricValue(app, 'authctl_rate_limited_total', { scope: 'account' })).to.equal(before + 1);
      await capture.settle();
      const throttled = capture.events('security.rate_limited');
      expect(throttled.length).to.be.above(0);
      expect(throttled.at(-1)).to.include({ scope: 'account', level: 'warn' });
      assertNoSecrets(capture.lines, { password: victim.password, guess, username: victim.username });
    });
  });

  describe('at most maxFailures consecutive failures, and no permanent lock', function () {
    let app: TestApp;
    let victim: Account;

    before(async function () {
      app = await startTestApp('sec_bruteforce_cap', { overrides: { rateLimit: { freeFailures: 50, maxFailures: 4, failureWindow: 2 } } });
      victim = await createAccount(app, 'bf-cap');
    });
    after(async () => app?.close());

    it('the failure after the cap is refused with the right password too; the lock ends with the window', async function () {
      for (let i = 0; i < 4; i++) await expectWrong(await attempt(app, victim.username, 'wrong password!'));
      const retryAfter = await expectLimited(await attempt(app, victim.username, victim.password));
      expect(retryAfter).to.be.within(1, 2);
      await waitOut(retryAfter);
      await expectTokenResponse(await attempt(app, victim.username, victim.password));
    });

    it('the default allows at most 100 failures, and no configuration allows more (NIST SP 800-63B)', function () {
      expect(loadConfig({ env: {}, cwd: '/nonexistent' }).rateLimit.maxFailures).to.equal(100);
      expect(configSchema.safeParse({ rateLimit: { maxFailures: 101 } }).success).to.equal(false);
    });
  });

  describe('per client address, registration, trusted proxies', function () {
    let app: TestApp;
    let proxied: TestApp;

    before(async function () {
      const rateLimit: Limits = { ipFailures: 3, ipWindow: 3_600, registerPerIp: 2, registerWindow: 3_600, freeFailures: 50 };
      app = await startTestApp('sec_bruteforce_ip', { overrides: { rateLimit } });
      proxied = await startTestApp('sec_bruteforce_proxy', { overrides: { rateLimit, http: { trustProxy: true, proxyHops: 1 } } });
    });
    after(async function () {
      await app?.close();
      await proxied?.close();
    });

    it('password spraying: failures across many accounts from one address hit the address limit', async function () {
      for (let i = 0; i < 3; i++) await expectWrong(await attempt(app, uniqueUsername('spray'), 'Winter2026!'));
      await expectLimited(await attempt(app, uniqueUsername('spray'), 'Winter2026!'));
    });

    it('registration is limited per address', async function () {
      for (let i = 0; i < 2; i++) {
        const res = await app.request('/v1/auth/register', { method: 'POST', json: { username: uniqueUsername('reg'), password: uniquePassword() } });
        expect(res.status).to.equal(201);
      }
      await expectLimited(await app.request('/v1/auth/register', { method: 'POST', json: { username: uniqueUsername('reg'), password: uniquePassword() } }));
    });

    it('without trustProxy, X-Forwarded-For is ignored: rotating it does not escape the address limit', async function () {
      const res = await attempt(app, uniqueUsername('spray'), 'Winter2026!', { 'x-forwarded-for': '203.0.113.77' });
      await expectLimited(res);
    });

    it('with trustProxy, the address our proxy appended counts; what the client prepended does not', async function () {
      for (let i = 0; i < 3; i++) {
        await expectWrong(await attempt(proxied, uniqueUsername('spray'), 'Winter2026!', { 'x-forwarded-for': `198.51.100.${i}, 203.0.113.10` }));
      }
      // A client-chosen first entry does not make a new address; the proxy-appended one is limited.
      await expectLimited(await attempt(proxied, uniqueUsername('spray'), 'Winter2026!', { 'x-forwarded-for': '198.51.100.99, 203.0.113.10' }));
      // Another real client behind the same proxy is not.
      await expectWrong(await attempt(proxied, uniqueUsername('spray'), 'Winter2026!', { 'x-forwarded-for': '203.0.113.11' }));
    });
  });

  describe('shared counters: Redis, and PostgreSQL while Redis is down', function () {
    let redis: RedisServerProcess;
    let db: TestDatabase;
    let a: TestApp;
    let b: TestApp;
    const prefix = uniquePrefix('bruteforce');

    before(async function () {
      redis = await RedisServerProcess.start();
      db = await createTestDatabase('sec_bruteforce_redis');
      const overrides: ConfigInput = { cache: { redisUrl: redis.url, keyPrefix: prefix }, rateLimit: { freeFailures: 2, maxBackoff: 60 } };
      a = await startTestApp('sec_bruteforce_a', { db, overrides });
      b = await startTestApp('sec_bruteforce_b', { db, overrides, migrate: false });
    });
    after(async function () {
      await a?.close();
      await b?.close();
      await db?.drop();
      await redis?.kill();
    });

    it('failures on one server throttle the account on another (counters in Redis)', async function () {
      const victim = await createAccount(a, 'bf-shared');
      await expectWrong(await attempt(a, victim.username, 'wrong password!'));
      await expectWrong(await attempt(b, victim.username, 'wrong password!'));
      await expectWrong(await attempt(a, victim.username, 'wrong password!'));
      await expectLimited(await attempt(b, victim.username, victim.password));
      const client = new Redis(redis.url);
      try {
        expect(await client.keys(`${prefix}:rl:login_backoff:*`)).to.have.length(1);
      } finally {
        client.disconnect();
      }
    });

    it('with Redis down, the limits hold on PostgreSQL (rate_limits table)', async function () {
      const victim = await createAccount(a, 'bf-outage');
      await redis.kill();
      await expectThrottledAcross(a, b, victim);
      expect(await limiterPrefixes(db)).to.include.members(['login_fail_account', 'login_backoff']);
    });
  });

  describe('several server processes without Redis', function () {
    let db: TestDatabase;
    let a: TestApp;
    let b: TestApp;

    before(async function () {
      db = await createTestDatabase('sec_bruteforce_procs');
      // `serve --processes 2` without Redis: each process has its own memory, so counters must
      // live in PostgreSQL. Two apps on one database stand for the two processes.
      const overrides: ConfigInput = { http: { processes: 2 }, rateLimit: { freeFailures: 2, maxBackoff: 60 } };
      a = await startTestApp('sec_bruteforce_pa', { db, overrides });
      b = await startTestApp('sec_bruteforce_pb', { db, overrides, migrate: false });
    });
    after(async function () {
      await a?.close();
      await b?.close();
      await db?.drop();
    });

    it('share the counters through PostgreSQL: failures on one process throttle the account on the other', async function () {
      expect(a.container.config.cache.redisUrl ?? null).to.equal(null);
      const victim = await createAccount(a, 'bf-procs');
      await expectThrottledAcross(a, b, victim);
      expect(await limiterPrefixes(db)).to.include.members(['login_fail_account', 'login_backoff']);
    });
  });
});

/** Two failures on `a`, one on `b` (freeFailures 2): the right password is then refused on `b`. */
async function expectThrottledAcross(a: TestApp, b: TestApp, victim: Account): Promise<void> {
  await expectWrong(await attempt(a, victim.username, 'wrong password!'));
  await expectWrong(await attempt(b, victim.username, 'wrong password!'));
  await expectWrong(await attempt(a, victim.username, 'wrong password!'));
  await expectLimited(await attempt(b, victim.username, victim.password));
}

/** The limiters that have counters in the database's `rate_limits` table. */
async function limiterPrefixes(db: TestDatabase): Promise<string[]> {
  const client = new pg.Client({ connectionString: db.url });
  await client.connect();
  try {
    const { rows } = await client.query<{ key: string }>('select key from rate_limits');
    return rows.map((r) => r.key.split(':')[0]!);
  } finally {
    await client.end();
  }
}
