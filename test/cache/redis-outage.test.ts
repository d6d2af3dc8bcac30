import { expect } from 'chai';
import { Redis } from 'ioredis';
import { startTestApp, type TestApp } from '../helpers/app.js';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';
import { createAccount, login, sleep, type Account, type TokenResponse } from '../helpers/http-assert.js';
import { RedisServerProcess, uniquePrefix } from '../helpers/redis-server.js';
import { describeSamples, metricValue, readiness, recorded, timeUntilRefused, type TrafficSample } from './support.js';

type Phase = 'before' | 'outage' | 'recovering' | 'after';
type Op = 'login' | 'refresh' | 'me' | 'verify' | 'logout';

type Sample = TrafficSample<Phase, Op>;

interface Delivery {
  /** ms until the other server refused the token; undefined if it never did within the limit. */
  ms: number | undefined;
  lastStatus?: number;
}

const OUTAGE_MS = 3_000;
const DELIVERY_LIMIT_MS = 2_000;
const RECOVERY_LIMIT_MS = 15_000;

describe('Redis outage: a crash and restart of the region’s Redis under traffic', function () {
  let redis: RedisServerProcess | undefined;
  let db: TestDatabase | undefined;
  let a: TestApp | undefined;
  let b: TestApp | undefined;
  const prefix = uniquePrefix('redis-outage');

  // What the scenario observed; the tests below assert on it.
  const samples: Sample[] = [];
  let phase: Phase = 'before';
  let stopTraffic = false;
  let traffic: Promise<void> | undefined;
  const readyDuringOutage: Array<{ server: 'A' | 'B'; status: number; body: unknown }> = [];
  const cacheUpDuringOutage: number[] = [];
  let outageDelivery: Delivery | undefined;
  let outageRevokedSessionId: string | undefined;
  let recoveredAfterMs: number | undefined;
  const readyAfterRecovery: Array<{ server: 'A' | 'B'; status: number; body: unknown }> = [];
  let rewarmedRevokedAt: string | null | undefined;
  let pubsubBeforeOutage: Delivery | undefined;
  let pubsubAfterRestart: Delivery | undefined;

  function server(x: TestApp): 'A' | 'B' {
    return x === a ? 'A' : 'B';
  }

  function call(x: TestApp, op: Op, path: string, init: RequestInit & { json?: unknown; token?: string }): Promise<Response> {
    return recorded(samples, { phase, server: server(x), op }, () => x.request(path, init));
  }

  /** One user journey across both servers: login on x, a refresh chain alternating, reads, logout on y. */
  async function journey(x: TestApp, y: TestApp, account: Account): Promise<void> {
    let res = await call(x, 'login', '/v1/auth/login', { method: 'POST', json: { username: account.username, password: account.password } });
    if (res.status !== 200) return;
    let tokens = (await res.json()) as TokenResponse;
    for (const at of [y, x, y]) {
      res = await call(at, 'refresh', '/v1/auth/refresh', { method: 'POST', json: { refreshToken: tokens.refreshToken } });
      if (res.status !== 200) return;
      tokens = (await res.json()) as TokenResponse;
    }
    res = await call(x, 'me', '/v1/me', { token: tokens.accessToken });
    await res.body?.cancel();
    res = await call(y, 'verify', '/v1/verify', { token: tokens.accessToken });
    await res.body?.cancel();
    res = await call(y, 'logout', '/v1/auth/logout', { method: 'POST', token: tokens.accessToken });
    await res.body?.cancel();
  }

  async function runTraffic(ab: Account, ba: Account): Promise<void> {
    while (!stopTraffic) {
      await Promise.all([journey(a!, b!, ab), journey(b!, a!, ba)]).catch(() => undefined);
      await sleep(10);
    }
  }

  /** Login on A, check B accepts, logout on A, then time until B refuses the access token. */
  async function logoutOnAReachesB(account: Account): Promise<Delivery & { sessionId: string }> {
    const tokens = await login(a!, account.username, account.password);
    const accepted = await b!.request('/v1/verify', { token: tokens.accessToken });
    expect(accepted.status, `B accepts before the logout: ${await accepted.text()}`).to.equal(200);
    const out = await a!.request('/v1/auth/logout', { method: 'POST', token: tokens.accessToken });
    expect(out.status, await out.text()).to.equal(204);
    const refused = await timeUntilRefused(b!, tokens.accessToken, DELIVERY_LIMIT_MS);
    if (refused.ms === undefined) return { ms: undefined, lastStatus: refused.lastStatus, sessionId: tokens.sessionId };
    expect(refused.response.status).to.equal(401);
    return { ms: refused.ms, sessionId: tokens.sessionId };
  }

  /** The same, with B's DB poll stopped: only pub/sub can deliver. */
  async function deliveredByPubSub(account: Account): Promise<Delivery> {
    b!.container.revocations.stop();
    try {
      const { ms, lastStatus } = await logoutOnAReachesB(account);
      return ms === undefined ? { ms, lastStatus: lastStatus! } : { ms };
    } finally {
      b!.container.revocations.start();
    }
  }

  before(async function () {
    this.timeout(60_000);
    redis = await RedisServerProcess.start();
    db = await createTestDatabase('cache_redis_outage');
    const overrides = { cache: { redisUrl: redis.url, keyPrefix: prefix }, revocation: { pollIntervalMs: 500 } };
    a = await startTestApp('outage-a', { db, overrides });
    b = await startTestApp('outage-b', { db, overrides });
    expect(a.container.cache.health(), 'A starts with Redis up').to.equal('ok');
    expect(b.container.cache.health(), 'B starts with Redis up').to.equal('ok');
    const [ab, ba, probe] = [await createAccount(a, 'ab'), await createAccount(b, 'ba'), await createAccount(a, 'probe')];

    pubsubBeforeOutage = await deliveredByPubSub(probe);

    traffic = runTraffic(ab, ba);
    // Some traffic with Redis up (bounded).
    const warm = Date.now();
    while (samples.filter((s) => s.op === 'logout').length < 4 && Date.now() - warm < 5_000) await sleep(50);

    // Crash.
    await redis.kill();
    phase = 'outage';
    const killedAt = Date.now();
    // While it is down: readiness, the cache gauge, and a logout on A that B must hear of by the DB poll.
    for (const x of [a, b]) {
      const deadline = Date.now() + 2_000;
      for (;;) {
        const r = await readiness(x);
        readyDuringOutage.push({ server: server(x), status: r.status, body: r.body });
        if (r.body.checks.cache === 'degraded' || Date.now() > deadline) break;
        await sleep(50);
      }
    }
    cacheUpDuringOutage.push(await metricValue(a, 'authctl_cache_up'), await metricValue(b, 'authctl_cache_up'));
    const during = await logoutOnAReachesB(probe);
    outageDelivery = during.ms === undefined ? { ms: undefined, lastStatus: during.lastStatus! } : { ms: during.ms };
    outageRevokedSessionId = during.sessionId;
    while (Date.now() - killedAt < OUTAGE_MS) await sleep(50);

    // Restart on the same port (empty: no persistence), and wait for both servers to see it by themselves.
    phase = 'recovering';
    await redis.start();
    const restartedAt = Date.now();
    const pending = new Set([a, b]);
    while (pending.size > 0 && Date.now() - restartedAt < RECOVERY_LIMIT_MS) {
      for (const x of [...pending]) {
        const r = await readiness(x);
        if (r.body.checks.cache === 'ok') {
          pending.delete(x);
          readyAfterRecovery.push({ server: server(x), status: r.status, body: r.body });
        }
      }
      if (pending.size > 0) await sleep(100);
    }
    if (pending.size === 0) recoveredAfterMs = Date.now() - restartedAt;
    phase = 'after';

    if (recoveredAfterMs !== undefined) {
      // The session revoked during the outage is re-marked in the (empty) restarted Redis.
      const raw = new Redis(redis.url);
      try {
        const key = `${prefix}:sess:{${outageRevokedSessionId}}`;
        const deadline = Date.now() + 2_000;
        do {
          rewarmedRevokedAt = await raw.hget(key, 'revokedAt');
          if (rewarmedRevokedAt) break;
          await sleep(50);
        } while (Date.now() < deadline);
      } finally {
        raw.disconnect();
      }
      pubsubAfterRestart = await deliveredByPubSub(probe);
    }
    // A little traffic after recovery, then stop.
    const resumed = samples.length;
    const until = Date.now() + 3_000;
    while (samples.slice(resumed).filter((s) => s.op === 'logout').length < 2 && Date.now() < until) await sleep(50);
    stopTraffic = true;
    await traffic;
  });

  after(async function () {
    this.timeout(30_000);
    stopTraffic = true;
    await traffic?.catch(() => undefined);
    await a?.close().catch(() => undefined);
    await b?.close().catch(() => undefined);
    await redis?.kill();
    await db?.drop();
  });

  it('ran traffic in every phase', function () {
    for (const p of ['before', 'outage', 'after'] as const) {
      expect(samples.filter((s) => s.phase === p).length, `samples in phase ${p}`).to.be.above(5);
    }
  });

  it('never answered 500 (or any 5xx, or a failed connection) at any time', function () {
    const bad = samples.filter((s) => s.status >= 500 || s.status < 0);
    expect(bad, `server errors:\n${bad.map((s) => JSON.stringify(s)).join('\n')}`).to.deep.equal([]);
  });

  it('kept every user journey working: no refusal at all, before, during and after the outage', function () {
    const refused = samples.filter((s) => s.status >= 300);
    expect(refused, `unexpected refusals:\n${refused.map((s) => JSON.stringify(s)).join('\n')}\n\n${describeSamples(samples)}`).to.deep.equal([]);
  });

  it('login, refresh and logout succeeded on both servers while Redis was down', function () {
    const outage = samples.filter((s) => s.phase === 'outage');
    for (const srv of ['A', 'B'] as const) {
      for (const [op, status] of [
        ['login', 200],
        ['refresh', 200],
        ['logout', 204],
        ['me', 200],
        ['verify', 200],
      ] as const) {
        const ok = outage.filter((s) => s.server === srv && s.op === op && s.status === status).length;
        expect(ok, `${op} on ${srv} during the outage → ${status}\n${describeSamples(outage)}`).to.be.above(0);
      }
    }
  });

  it('/readyz stayed 200 and reported checks.cache "degraded" (status "degraded") during the outage, on both servers', function () {
    for (const srv of ['A', 'B'] as const) {
      const seen = readyDuringOutage.filter((r) => r.server === srv);
      expect(
        seen.every((r) => r.status === 200),
        JSON.stringify(seen),
      ).to.equal(true);
      const degraded = seen.find((r) => (r.body as { checks: { cache: string } }).checks.cache === 'degraded');
      expect(degraded, `${srv} never reported the cache degraded: ${JSON.stringify(seen)}`).to.not.equal(undefined);
      expect((degraded!.body as { status: string }).status).to.equal('degraded');
    }
    expect(cacheUpDuringOutage, 'authctl_cache_up during the outage (A, B)').to.deep.equal([0, 0]);
  });

  it('a logout on A during the outage was refused at B within 2 s (DB poll)', function () {
    expect(outageDelivery, 'the scenario ran').to.not.equal(undefined);
    expect(outageDelivery!.ms, `B still accepted the token after ${DELIVERY_LIMIT_MS} ms (last status ${outageDelivery!.lastStatus})`).to.be.a('number');
  });

  it('the cache health returned to "ok" by itself after the restart (both servers, /readyz 200 status "ok", gauge 1)', async function () {
    expect(recoveredAfterMs, `not both servers reported checks.cache "ok" within ${RECOVERY_LIMIT_MS} ms of the restart`).to.be.a('number');
    for (const r of readyAfterRecovery) {
      expect(r.status).to.equal(200);
      expect((r.body as { status: string }).status, JSON.stringify(r.body)).to.equal('ok');
    }
    expect(await metricValue(a!, 'authctl_cache_up')).to.equal(1);
    expect(await metricValue(b!, 'authctl_cache_up')).to.equal(1);
  });

  it('the restarted (empty) Redis was re-marked with the revocation made during the outage', function () {
    expect(recoveredAfterMs, 'recovered').to.be.a('number');
    expect(rewarmedRevokedAt, `no revokedAt in ${prefix}:sess:{${outageRevokedSessionId}} after recovery`).to.be.a('string');
    expect(Number(rewarmedRevokedAt)).to.be.within(Date.now() - 60_000, Date.now());
  });

  it('pub/sub delivered a logout on A to B (DB poll stopped) before the outage', function () {
    expect(pubsubBeforeOutage, 'the scenario ran').to.not.equal(undefined);
    expect(pubsubBeforeOutage!.ms, `B still accepted the token ${DELIVERY_LIMIT_MS} ms after the logout on A with only pub/sub to tell it`).to.be.a('number');
  });

  it('after the restart, a new logout on A reached B by pub/sub (DB poll stopped)', function () {
    expect(pubsubAfterRestart, 'the scenario got this far').to.not.equal(undefined);
    expect(pubsubAfterRestart!.ms, `B still accepted the token ${DELIVERY_LIMIT_MS} ms after the logout on A with only pub/sub to tell it`).to.be.a('number');
  });
});
