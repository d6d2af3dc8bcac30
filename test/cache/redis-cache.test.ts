import { randomUUID } from 'node:crypto';
import { expect } from 'chai';
import { Redis } from 'ioredis';
import { createLogger } from '../../src/platform/logger.js';
import type { RevokedSession } from '../../src/model/session.js';
import type { CachedSession, CachedUser } from '../../src/store/cache/cache.js';
import { BreakerOpenError, CircuitBreaker, type BreakerState } from '../../src/store/cache/circuit-breaker.js';
import { RedisCache } from '../../src/store/cache/redis.js';
import { sleep } from '../helpers/http-assert.js';
import { deleteKeys, freePort, REDIS_URL, uniquePrefix } from '../helpers/redis-server.js';

const HOUR = 3_600_000;
const USER_TTL = 300;

type Lookup = { kind: 'session' | 'user'; result: 'hit' | 'miss' | 'error' };

function newCache(keyPrefix: string, url = REDIS_URL, lookups: Lookup[] = []): RedisCache {
  return new RedisCache({
    url,
    cluster: false,
    keyPrefix,
    commandTimeoutMs: 250,
    userTtlSeconds: USER_TTL,
    log: createLogger({ level: 'silent', region: 'test' }),
    onLookup: (kind, result) => lookups.push({ kind, result }),
  });
}

/** Polls `probe` until it returns a value other than undefined, for at most `limitMs`. */
async function eventually<T>(what: string, probe: () => T | undefined | Promise<T | undefined>, limitMs = 2_000): Promise<T> {
  const started = Date.now();
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    if (Date.now() - started > limitMs) expect.fail(`${what}: not within ${limitMs} ms`);
    await sleep(20);
  }
}

describe('RedisCache against a real Redis', function () {
  const prefix = uniquePrefix('redis-cache');
  const foreignPrefix = uniquePrefix('redis-cache-foreign');
  const lookups: Lookup[] = [];
  let cache: RedisCache;
  let other: RedisCache | undefined;
  let raw: Redis;

  before(async function () {
    raw = new Redis(REDIS_URL);
    cache = newCache(prefix, REDIS_URL, lookups);
    expect(await cache.ready(5_000), 'the cache connects to Redis').to.equal(true);
    expect(cache.health()).to.equal('ok');
  });
  after(async function () {
    await cache?.close();
    await other?.close();
    await deleteKeys(REDIS_URL, prefix);
    await deleteKeys(REDIS_URL, foreignPrefix);
    await deleteKeys(REDIS_URL, `${prefix}:nested`);
    raw?.disconnect();
  });

  async function keysUnder(p: string): Promise<string[]> {
    const found: string[] = [];
    let cursor = '0';
    do {
      const [next, batch] = await raw.scan(cursor, 'MATCH', `${p}:*`, 'COUNT', 500);
      cursor = next;
      found.push(...batch);
    } while (cursor !== '0');
    return found.sort();
  }

  function liveSession(overrides: Partial<CachedSession> = {}): CachedSession {
    const now = Date.now();
    return { id: randomUUID(), userId: randomUUID(), counter: 1, rotatedAt: now, expiresAt: now + HOUR, revokedAt: null, ...overrides };
  }

  describe('sessions', function () {
    it('putSession then getSession returns the same state, and inspect gives TTL ≈ remaining life', async function () {
      const session = liveSession({ counter: 7, expiresAt: Date.now() + 2 * HOUR });
      await cache.putSession(session);
      expect(await cache.getSession(session.id)).to.deep.equal(session);
      const inspected = await cache.inspect(session.id);
      expect(inspected.session).to.deep.equal(session);
      expect(inspected.ttlSeconds, 'TTL in seconds').to.be.a('number');
      expect(inspected.ttlSeconds!).to.be.within(2 * 3600 - 10, 2 * 3600);
      // The key's own TTL agrees (no separate default TTL).
      const pttl = await raw.pttl(`${prefix}:sess:{${session.id}}`);
      expect(pttl).to.be.within(2 * HOUR - 10_000, 2 * HOUR);
    });

    it('an unknown session is a miss (undefined, counted as miss) and inspect gives no TTL', async function () {
      const before = lookups.length;
      const id = randomUUID();
      expect(await cache.getSession(id)).to.equal(undefined);
      expect(lookups.slice(before)).to.deep.equal([{ kind: 'session', result: 'miss' }]);
      expect(await cache.inspect(id)).to.deep.equal({ session: undefined, ttlSeconds: null });
    });

    it('a hit is counted as a hit', async function () {
      const session = liveSession();
      await cache.putSession(session);
      const before = lookups.length;
      await cache.getSession(session.id);
      expect(lookups.slice(before)).to.deep.equal([{ kind: 'session', result: 'hit' }]);
    });

    it('markRevoked creates an entry for a session the cache did not know, with TTL = its remaining life', async function () {
      const revokedAt = new Date();
      const expiresAt = new Date(Date.now() + HOUR);
      const id = randomUUID();
      expect(await cache.markRevoked([{ id, revokedAt, expiresAt }])).to.equal(true);
      expect(await cache.getSession(id)).to.deep.equal({ id, expiresAt: expiresAt.getTime(), revokedAt: revokedAt.getTime() });
      const { ttlSeconds } = await cache.inspect(id);
      expect(ttlSeconds!).to.be.within(3600 - 10, 3600);
    });

    it('markRevoked updates a known entry and keeps its other fields', async function () {
      const session = liveSession({ counter: 4 });
      await cache.putSession(session);
      const revokedAt = new Date();
      expect(await cache.markRevoked([{ id: session.id, revokedAt, expiresAt: new Date(session.expiresAt) }])).to.equal(true);
      expect(await cache.getSession(session.id)).to.deep.equal({ ...session, revokedAt: revokedAt.getTime() });
    });

    it('markRevoked of several sessions marks all of them', async function () {
      const items: RevokedSession[] = [0, 1, 2].map(() => ({ id: randomUUID(), revokedAt: new Date(), expiresAt: new Date(Date.now() + HOUR) }));
      expect(await cache.markRevoked(items)).to.equal(true);
      for (const item of items) expect((await cache.getSession(item.id))?.revokedAt).to.equal(item.revokedAt.getTime());
      expect(await cache.markRevoked([])).to.equal(true);
    });

    it('a later putSession of an older (unrevoked) state never clears revokedAt', async function () {
      const session = liveSession({ counter: 2 });
      const revokedAt = new Date();
      await cache.markRevoked([{ id: session.id, revokedAt, expiresAt: new Date(session.expiresAt) }]);
      await cache.putSession({ ...session, counter: 3, revokedAt: null });
      const cached = await cache.getSession(session.id);
      expect(cached?.revokedAt, 'revokedAt survives').to.equal(revokedAt.getTime());
      expect(cached?.counter, 'the other fields are updated').to.equal(3);
      expect(cached?.userId).to.equal(session.userId);
    });

    it('deleteSessions removes entries', async function () {
      const a = liveSession();
      const b = liveSession();
      await cache.putSession(a);
      await cache.putSession(b);
      await cache.deleteSessions([a.id, b.id]);
      expect(await cache.getSession(a.id)).to.equal(undefined);
      expect(await cache.getSession(b.id)).to.equal(undefined);
      await cache.deleteSessions([]);
    });

    it('an already expired session is not kept', async function () {
      const session = liveSession({ expiresAt: Date.now() - 1_000 });
      await cache.putSession(session);
      expect(await cache.getSession(session.id)).to.equal(undefined);
    });
  });

  describe('users', function () {
    const user: CachedUser = { id: randomUUID(), username: 'alice', email: null, emailVerified: false, homeRegion: 'eu', createdAt: new Date().toISOString() };

    it('putUser then getUser returns the profile (TTL = userTtl), counted as a hit', async function () {
      await cache.putUser(user);
      const before = lookups.length;
      expect(await cache.getUser(user.id)).to.deep.equal(user);
      expect(lookups.slice(before)).to.deep.equal([{ kind: 'user', result: 'hit' }]);
      const ttl = await raw.ttl(`${prefix}:user:{${user.id}}`);
      expect(ttl).to.be.within(USER_TTL - 5, USER_TTL);
    });

    it('deleteUser removes it; getUser is then a miss', async function () {
      await cache.putUser(user);
      await cache.deleteUser(user.id);
      const before = lookups.length;
      expect(await cache.getUser(user.id)).to.equal(undefined);
      expect(lookups.slice(before)).to.deep.equal([{ kind: 'user', result: 'miss' }]);
    });
  });

  describe('keys', function () {
    it('carry the {id} hash tag under the prefix (Cluster-ready)', async function () {
      const session = liveSession();
      const user: CachedUser = { id: randomUUID(), username: 'bob', email: null, emailVerified: false, homeRegion: 'eu', createdAt: new Date().toISOString() };
      await cache.putSession(session);
      await cache.putUser(user);
      const keys = await keysUnder(prefix);
      expect(keys).to.include(`${prefix}:sess:{${session.id}}`);
      expect(keys).to.include(`${prefix}:user:{${user.id}}`);
      for (const key of keys) expect(key, 'every key has a {…} hash tag').to.match(new RegExp(`^${prefix}:(sess|user):\\{[0-9a-f-]{36}\\}$`));
    });
  });

  describe('pub/sub', function () {
    it('publishRevoked reaches onRevoked of a second instance, with Date objects', async function () {
      other = newCache(prefix);
      expect(await other.ready(5_000)).to.equal(true);
      const received: RevokedSession[][] = [];
      await other.onRevoked((sessions) => received.push(sessions));
      const sent: RevokedSession[] = [
        { id: randomUUID(), revokedAt: new Date(Date.now() - 5), expiresAt: new Date(Date.now() + HOUR) },
        { id: randomUUID(), revokedAt: new Date(), expiresAt: new Date(Date.now() + 2 * HOUR) },
      ];
      // Publish until the subscriber hears (a subscription may need a moment), for at most 2 s.
      const batch = await eventually('revocation delivered by pub/sub', async () => {
        if (received.length === 0) expect(await cache.publishRevoked(sent), 'published').to.equal(true);
        return received[0];
      });
      expect(batch).to.have.length(2);
      for (const [i, s] of batch.entries()) {
        expect(s.id).to.equal(sent[i]!.id);
        expect(s.revokedAt).to.be.instanceOf(Date);
        expect(s.expiresAt).to.be.instanceOf(Date);
        expect(s.revokedAt.getTime()).to.equal(sent[i]!.revokedAt.getTime());
        expect(s.expiresAt.getTime()).to.equal(sent[i]!.expiresAt.getTime());
      }
    });

    it('an instance with another prefix hears nothing', async function () {
      const stranger = newCache(foreignPrefix);
      try {
        await stranger.ready(5_000);
        const heard: RevokedSession[][] = [];
        await stranger.onRevoked((s) => heard.push(s));
        const mine: RevokedSession[][] = [];
        const listener = newCache(prefix);
        try {
          await listener.ready(5_000);
          await listener.onRevoked((s) => mine.push(s));
          await eventually('own prefix hears', async () => {
            if (mine.length === 0) await cache.publishRevoked([{ id: randomUUID(), revokedAt: new Date(), expiresAt: new Date(Date.now() + HOUR) }]);
            return mine[0];
          });
          expect(heard, 'a foreign prefix got nothing').to.deep.equal([]);
        } finally {
          await listener.close();
        }
      } finally {
        await stranger.close();
      }
    });
  });

  describe('stats() and flush()', function () {
    let scoped: RedisCache;
    const scopedPrefix = `${prefix}-scoped`;

    before(async function () {
      scoped = newCache(scopedPrefix);
      await scoped.ready(5_000);
    });
    after(async function () {
      await scoped?.close();
      await deleteKeys(REDIS_URL, scopedPrefix);
      await deleteKeys(REDIS_URL, `${scopedPrefix}:nested`);
    });

    it('stats() counts the keys under this prefix only', async function () {
      await scoped.flush();
      await scoped.putSession(liveSession());
      await scoped.putSession(liveSession());
      await scoped.markRevoked([{ id: randomUUID(), revokedAt: new Date(), expiresAt: new Date(Date.now() + HOUR) }]);
      await scoped.putUser({ id: randomUUID(), username: 'u', email: null, emailVerified: false, homeRegion: 'eu', createdAt: new Date().toISOString() });
      await raw.set(`${foreignPrefix}:sess:{${randomUUID()}}`, 'x', 'EX', 600);
      await raw.set(`${foreignPrefix}:user:{${randomUUID()}}`, 'x', 'EX', 600);
      const stats = await scoped.stats();
      expect(stats.driver).to.equal('redis');
      expect(stats.health).to.equal('ok');
      expect(stats.keys).to.deep.equal({ sessions: 3, users: 1 });
      expect(stats.hits).to.be.a('number');
      expect(stats.misses).to.be.a('number');
      expect(stats.memoryBytes).to.be.a('number').above(0);
      if (stats.hitRatio !== null) expect(stats.hitRatio).to.be.within(0, 1);
    });

    it('flush() deletes this prefix’s keys, returns how many, and leaves another prefix’s keys alone', async function () {
      await scoped.flush();
      await scoped.putSession(liveSession());
      await scoped.putUser({ id: randomUUID(), username: 'u', email: null, emailVerified: false, homeRegion: 'eu', createdAt: new Date().toISOString() });
      const foreignKey = `${foreignPrefix}:sess:{${randomUUID()}}`;
      await raw.set(foreignKey, 'keep me', 'EX', 600);
      expect(await scoped.flush()).to.equal(2);
      expect(await keysUnder(scopedPrefix)).to.deep.equal([]);
      expect(await raw.get(foreignKey), 'the foreign key survives').to.equal('keep me');
      expect((await scoped.stats()).keys).to.deep.equal({ sessions: 0, users: 0 });
    });

    it('flush() leaves alone the keys of a prefix that merely starts with this one (":" is allowed in prefixes)', async function () {
      // keyPrefix allows ":", so "<p>:nested" is a valid prefix of another region/app on the same Redis.
      const nested = newCache(`${scopedPrefix}:nested`);
      try {
        await nested.ready(5_000);
        const session = liveSession();
        await nested.putSession(session);
        await scoped.putSession(liveSession());
        await scoped.flush();
        expect(await nested.getSession(session.id), `flush() of "${scopedPrefix}" deleted keys of "${scopedPrefix}:nested"`).to.deep.equal(session);
      } finally {
        await nested.close();
      }
    });
  });

  describe('with Redis unreachable', function () {
    let dead: RedisCache;
    const deadLookups: Lookup[] = [];

    before(async function () {
      dead = newCache(uniquePrefix('dead'), `redis://127.0.0.1:${await freePort()}`, deadLookups);
    });
    after(async function () {
      await dead?.close();
    });

    it('is degraded, reads resolve undefined (counted as errors) and writes resolve false, without waiting', async function () {
      expect(await dead.ready(200)).to.equal(false);
      expect(dead.health()).to.equal('degraded');
      const started = Date.now();
      const id = randomUUID();
      for (let i = 0; i < 5; i++) expect(await dead.getSession(id)).to.equal(undefined);
      expect(await dead.getUser(id)).to.equal(undefined);
      await dead.putSession(liveSession());
      await dead.putUser({ id, username: 'x', email: null, emailVerified: false, homeRegion: 'eu', createdAt: new Date().toISOString() });
      await dead.deleteSessions([id]);
      await dead.deleteUser(id);
      const revoked = [{ id, revokedAt: new Date(), expiresAt: new Date(Date.now() + HOUR) }];
      expect(await dead.markRevoked(revoked)).to.equal(false);
      expect(await dead.publishRevoked(revoked)).to.equal(false);
      expect(Date.now() - started, 'no network wait').to.be.below(2_000);
      // Subscribing while Redis is away must not throw (it may wait a bounded time).
      await dead.onRevoked(() => undefined);
      expect(deadLookups.length).to.be.above(0);
      expect(
        deadLookups.every((l) => l.result === 'error'),
        JSON.stringify(deadLookups),
      ).to.equal(true);
    });
  });
});

describe('CircuitBreaker', function () {
  const ok = () => Promise.resolve('ok');
  const boom = () => Promise.reject(new Error('boom'));

  function breaker(openMs = 200, maxOpenMs = 5_000) {
    const states: BreakerState[] = [];
    const b = new CircuitBreaker({ failureThreshold: 3, openMs, maxOpenMs, onStateChange: (s) => states.push(s) });
    return { b, states };
  }

  async function failTimes(b: CircuitBreaker, n: number): Promise<void> {
    for (let i = 0; i < n; i++) {
      try {
        await b.run(boom);
        expect.fail('should have failed');
      } catch (err) {
        expect((err as Error).message).to.equal('boom');
      }
    }
  }

  async function expectFailsFast(b: CircuitBreaker): Promise<void> {
    let called = false;
    const stateBefore = b.state;
    const outcome = await b
      .run(() => {
        called = true;
        return Promise.resolve('ran');
      })
      .then(
        (value) => ({ value }),
        (error: unknown) => ({ error }),
      );
    expect(called, `the operation must not run while ${stateBefore}`).to.equal(false);
    expect('error' in outcome ? outcome.error : outcome, 'BreakerOpenError').to.be.instanceOf(BreakerOpenError);
  }

  /** Polls until a call is let through again (the open period is over); returns when that happened. */
  async function waitUntilLetThrough(b: CircuitBreaker, op: () => Promise<string>, limitMs: number): Promise<number> {
    const started = Date.now();
    for (;;) {
      let ran = false;
      try {
        await b.run(() => {
          ran = true;
          return op();
        });
      } catch (err) {
        if (!(err instanceof BreakerOpenError) && !ran) throw err;
      }
      if (ran) return Date.now();
      if (Date.now() - started > limitMs) expect.fail(`no probe let through within ${limitMs} ms`);
      await sleep(10);
    }
  }

  it('stays closed below the threshold, and a success resets the count of consecutive failures', async function () {
    const { b, states } = breaker();
    await failTimes(b, 2);
    expect(await b.run(ok)).to.equal('ok');
    await failTimes(b, 2);
    expect(b.state).to.equal('closed');
    expect(states).to.deep.equal([]);
  });

  it('a success that proves nothing (proves: false) neither resets the count nor closes a half-open circuit', async function () {
    const { b, states } = breaker(100);
    await failTimes(b, 2);
    expect(await b.run(ok, { proves: false })).to.equal('ok');
    await failTimes(b, 1);
    expect(b.state, 'the third failure opens it despite the success in between').to.equal('open');
    await waitUntilLetThrough(b, ok, 2_000);
    expect(states).to.deep.equal(['open', 'half-open', 'closed']);
    await failTimes(b, 3);
    await sleep(150);
    expect(await b.run(ok, { proves: false }), 'a probe that proves nothing runs').to.equal('ok');
    expect(b.state, 'and leaves the circuit half-open').to.equal('half-open');
    expect(await b.run(ok)).to.equal('ok');
    expect(b.state).to.equal('closed');
  });

  it('opens after failureThreshold consecutive failures and then fails fast without running the operation', async function () {
    const { b, states } = breaker();
    await failTimes(b, 3);
    expect(b.state).to.equal('open');
    expect(states).to.deep.equal(['open']);
    await expectFailsFast(b);
    await expectFailsFast(b);
  });

  it('after the open period a single probe that succeeds closes the circuit', async function () {
    const { b, states } = breaker(150);
    const openedAt = Date.now();
    await failTimes(b, 3);
    const probedAt = await waitUntilLetThrough(b, ok, 2_000);
    expect(probedAt - openedAt, 'not before openMs').to.be.at.least(140);
    expect(b.state).to.equal('closed');
    expect(states).to.deep.equal(['open', 'half-open', 'closed']);
    expect(await b.run(ok)).to.equal('ok');
  });

  it('a failed probe reopens the circuit with a doubled wait (capped by maxOpenMs)', async function () {
    const { b, states } = breaker(150, 400);
    await failTimes(b, 3);
    await waitUntilLetThrough(b, () => Promise.reject(new Error('boom')), 2_000);
    const reopenedAt = Date.now();
    expect(b.state).to.equal('open');
    expect(states).to.deep.equal(['open', 'half-open', 'open']);
    await expectFailsFast(b);
    // Second open period: 300 ms (doubled).
    const second = await waitUntilLetThrough(b, () => Promise.reject(new Error('boom')), 3_000);
    // A few ms of slack: the breaker stamps its deadline just before the test reads the clock.
    expect(second - reopenedAt, 'doubled wait').to.be.at.least(290);
    const reopenedAgain = Date.now();
    // Third: min(600, maxOpenMs 400) = 400 ms.
    const third = await waitUntilLetThrough(b, ok, 3_000);
    expect(third - reopenedAgain, 'capped wait').to.be.at.least(390);
    expect(b.state).to.equal('closed');
    // Closing resets the wait to openMs.
    await failTimes(b, 3);
    const openedAt = Date.now();
    const next = await waitUntilLetThrough(b, ok, 2_000);
    expect(next - openedAt, 'back to openMs (150), not the capped 400').to.be.within(150, 350);
  });

  it('lets only one probe through while half-open: concurrent calls fail fast', async function () {
    const { b } = breaker(100);
    await failTimes(b, 3);
    let release!: (v: string) => void;
    const probeStarted = Date.now();
    let probe: Promise<string> | undefined;
    // Start a probe that stays in flight.
    while (!probe) {
      try {
        let ran = false;
        const p = b.run(() => {
          ran = true;
          return new Promise<string>((resolve) => (release = resolve));
        });
        if (ran) probe = p;
        else await p;
      } catch (err) {
        expect(err).to.be.instanceOf(BreakerOpenError);
        if (Date.now() - probeStarted > 2_000) expect.fail('no probe let through');
        await sleep(10);
      }
    }
    expect(b.state).to.equal('half-open');
    await expectFailsFast(b);
    release('done');
    expect(await probe).to.equal('done');
    expect(b.state).to.equal('closed');
  });

  it('reset() closes an open circuit at once and restores the initial wait', async function () {
    const { b, states } = breaker(100, 5_000);
    await failTimes(b, 3);
    // Two failed probes: the wait is now 400 ms.
    await waitUntilLetThrough(b, () => Promise.reject(new Error('boom')), 2_000);
    await waitUntilLetThrough(b, () => Promise.reject(new Error('boom')), 2_000);
    expect(b.state).to.equal('open');
    await expectFailsFast(b);
    b.reset();
    expect(b.state).to.equal('closed');
    expect(states.at(-1)).to.equal('closed');
    expect(await b.run(ok)).to.equal('ok');
    await failTimes(b, 3);
    const openedAt = Date.now();
    const probed = await waitUntilLetThrough(b, ok, 2_000);
    expect(probed - openedAt, 'the wait is openMs (100) again, not the doubled 400').to.be.below(300);
    // reset() on a closed breaker emits nothing.
    const count = states.length;
    b.reset();
    expect(states.length).to.equal(count);
  });
});
