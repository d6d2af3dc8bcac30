import { expect } from 'chai';
import { buildContainer, type Container } from '../../src/container.js';
import { ManualClock } from '../../src/platform/clock.js';
import { ServerSecrets } from '../../src/core/keys/secrets.js';
import { RefreshTokenCodec } from '../../src/core/tokens/refresh-token.js';
import type { UserRecord } from '../../src/model/user.js';
import { testConfig } from '../helpers/app.js';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';
import { rejectsWith, startSession, loginTokens } from '../helpers/assert.js';
import { shutdown, startBackground } from '../../src/runtime.js';

const PASSWORD = 'correct horse battery staple';

interface SessionRow {
  id: string;
  user_id: string | null;
  counter: string;
  version: string;
  rotated_at: Date;
  last_used_at: Date;
  expires_at: Date;
  revoked_at: Date | null;
  revoke_reason: string | null;
}

async function waitFor(condition: () => boolean, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (condition()) return true;
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
  return condition();
}

describe('sessions: rotation, reuse and revocation across two servers', function () {
  let db: TestDatabase;
  let clock: ManualClock;
  let a: Container;
  let b: Container;
  let userCount = 0;

  before(async function () {
    db = await createTestDatabase('sessions');
    clock = new ManualClock(Date.now());
    a = buildContainer(testConfig(db.url), { clock });
    b = buildContainer(testConfig(db.url), { clock });
    await a.db.migrateLatest();
    await a.keys.ensureSigningKey();
    await b.keys.load();
    await a.revocations.poll();
    await b.revocations.poll();
  });

  after(async function () {
    await shutdown(a);
    await shutdown(b);
    await db?.drop();
  });

  async function newUser(): Promise<UserRecord> {
    userCount += 1;
    return a.users.register(`User.${userCount}`, PASSWORD);
  }

  async function row(id: string): Promise<SessionRow> {
    const found = await a.db.writer<SessionRow>('sessions').where({ id }).first();
    if (!found) throw new Error(`no session row ${id}`);
    return found;
  }

  describe('SessionService', function () {
    it('starts a session at counter 1 with an absolute expiry', async function () {
      const owner = await newUser();
      const issued = await startSession(a, owner, { userAgent: 'mocha', ip: '127.0.0.1' });
      expect(issued.refreshToken).to.match(/^rt_local_/);
      expect(issued.refreshToken).to.include(issued.session.id);
      const stored = await row(issued.session.id);
      expect(stored.user_id).to.equal(owner.id);
      expect(Number(stored.counter)).to.equal(1);
      expect(stored.revoked_at).to.equal(null);
      expect(stored.expires_at.getTime()).to.equal(clock.now().getTime() + a.config.tokens.refreshTtl * 1000);
      // The database never holds the token.
      expect(JSON.stringify(stored)).not.to.include(issued.refreshToken.slice(-22));
    });

    it('rotates on refresh, and any server accepts the new token', async function () {
      const owner = await newUser();
      const first = await startSession(a, owner, {});
      const second = await a.sessions.refresh(first.refreshToken);
      expect(second.refreshToken).not.to.equal(first.refreshToken);
      expect(second.session.counter).to.equal(2);
      expect(second.owner.id).to.equal(owner.id);
      expect(Number((await row(first.session.id)).counter)).to.equal(2);

      const third = await b.sessions.refresh(second.refreshToken);
      expect(third.refreshToken).not.to.equal(second.refreshToken);
      expect(third.session.counter).to.equal(3);
      expect(Number((await row(first.session.id)).counter)).to.equal(3);
    });

    it('does not extend the absolute lifetime on refresh', async function () {
      const owner = await newUser();
      const first = await startSession(a, owner, {});
      const expiresAt = first.session.expiresAt.getTime();
      clock.advance(3600);
      const second = await a.sessions.refresh(first.refreshToken);
      expect(second.session.expiresAt.getTime()).to.equal(expiresAt);
      expect((await row(first.session.id)).expires_at.getTime()).to.equal(expiresAt);
    });

    it('answers a retry of the previous token within the grace window with the same token', async function () {
      const owner = await newUser();
      const first = await startSession(a, owner, {});
      const second = await a.sessions.refresh(first.refreshToken);
      clock.advance(a.config.tokens.refreshGrace - 1);
      const retryA = await a.sessions.refresh(first.refreshToken);
      const retryB = await b.sessions.refresh(first.refreshToken);
      expect(retryA.refreshToken).to.equal(second.refreshToken);
      expect(retryB.refreshToken).to.equal(second.refreshToken);
      const stored = await row(first.session.id);
      expect(Number(stored.counter)).to.equal(2);
      expect(stored.revoked_at).to.equal(null);
      // The token handed out on the retry is still the live one.
      const third = await a.sessions.refresh(second.refreshToken);
      expect(third.session.counter).to.equal(3);
    });

    it('revokes the session when the previous token comes back after the grace window', async function () {
      const owner = await newUser();
      const first = await startSession(a, owner, {});
      const second = await a.sessions.refresh(first.refreshToken);
      clock.advance(a.config.tokens.refreshGrace + 1);
      await rejectsWith(b.sessions.refresh(first.refreshToken), 'refresh_token_reused');

      const stored = await row(first.session.id);
      expect(stored.revoked_at).to.be.instanceOf(Date);
      expect(stored.revoked_at!.getTime()).to.equal(clock.now().getTime());
      expect(stored.revoke_reason).to.equal('reuse');
      // The server that detected the reuse knows at once.
      expect(b.revocations.has(first.session.id)).to.equal(true);
      // The whole family is dead: the current token no longer works either.
      await rejectsWith(a.sessions.refresh(second.refreshToken), 'invalid_refresh_token');
      await rejectsWith(a.sessions.refresh(first.refreshToken), 'invalid_refresh_token');
    });

    it('treats any token older than the previous one as reuse, even within the grace window', async function () {
      const owner = await newUser();
      const first = await startSession(a, owner, {});
      const second = await a.sessions.refresh(first.refreshToken);
      await a.sessions.refresh(second.refreshToken);
      await rejectsWith(a.sessions.refresh(first.refreshToken), 'refresh_token_reused');
      const stored = await row(first.session.id);
      expect(stored.revoked_at).not.to.equal(null);
      expect(stored.revoke_reason).to.equal('reuse');
    });

    it('refuses forged tokens with invalid_refresh_token and changes nothing', async function () {
      const owner = await newUser();
      const first = await startSession(a, owner, {});
      const before = await row(first.session.id);
      const token = first.refreshToken;
      const mac = token.slice(-22);
      const otherSecret = new RefreshTokenCodec(new ServerSecrets('another-secret-0123456789-abcdefghijklmnop').refreshMacKeys());
      const forged: unknown[] = [
        // MAC altered.
        token.slice(0, -22) + (mac[0] === 'A' ? 'B' : 'A') + mac.slice(1),
        // Counter advanced, MAC kept.
        token.replace(`_1_${mac}`, `_2_${mac}`),
        // Counter 0 (the "previous" of 1), MAC kept.
        token.replace(`_1_${mac}`, `_0_${mac}`),
        // Properly formed for this session, but MACed with a secret the server does not have.
        otherSecret.encode({ region: 'local', sessionId: first.session.id, counter: 1 }),
        otherSecret.encode({ region: 'local', sessionId: first.session.id, counter: 0 }),
        'rt_local_garbage',
        '',
        42,
        undefined,
      ];
      for (const candidate of forged) {
        await rejectsWith(a.sessions.refresh(candidate), 'invalid_refresh_token');
      }
      const after = await row(first.session.id);
      expect(after).to.deep.equal(before);
      expect(a.revocations.has(first.session.id)).to.equal(false);
      // And the real token still works.
      expect((await a.sessions.refresh(token)).session.counter).to.equal(2);
    });

    it('converges 20 concurrent refreshes on one token and advances the counter by exactly 1', async function () {
      const owner = await newUser();
      const first = await startSession(a, owner, {});
      const results = await Promise.allSettled(Array.from({ length: 20 }, (_, i) => (i % 2 === 0 ? a : b).sessions.refresh(first.refreshToken)));
      const rejected = results.filter((r) => r.status === 'rejected');
      expect(rejected.map((r) => String(r.reason))).to.deep.equal([]);
      const tokens = new Set(results.map((r) => (r as PromiseFulfilledResult<{ refreshToken: string }>).value.refreshToken));
      expect(tokens.size).to.equal(1);
      const stored = await row(first.session.id);
      expect(Number(stored.counter)).to.equal(2);
      expect(Number(stored.version)).to.equal(2);
      expect(stored.revoked_at).to.equal(null);
      // The converged token is the live one.
      const [token] = [...tokens];
      expect((await a.sessions.refresh(token)).session.counter).to.equal(3);
    });

    it('groups concurrent refreshes of different sessions into few statements, each rotating its own row', async function () {
      const owner = await newUser();
      const started = await Promise.all(Array.from({ length: 30 }, () => startSession(a, owner, {})));
      // A disabled-looking case inside the same batch: one revoked session must not be rotated.
      await a.sessions.revoke(started[29]!.session.id, 'logout');
      // Writer statements, counted by the query-duration histogram every statement passes.
      const statements = async () =>
        (await a.metrics.dbQueryDuration.get()).values
          .filter((v) => v.metricName?.endsWith('_count') && v.labels.pool === 'writer')
          .reduce((sum, v) => sum + v.value, 0);
      const before = await statements();
      const results = await Promise.allSettled(started.map((s) => a.sessions.refresh(s.refreshToken)));
      expect(results.slice(0, 29).every((r) => r.status === 'fulfilled')).to.equal(true);
      // The revoked session is refused from memory: no statement for it.
      await rejectsWith(Promise.reject((results[29] as PromiseRejectedResult).reason as Error), 'invalid_refresh_token');
      for (const [i, r] of results.slice(0, 29).entries()) {
        const issued = (r as PromiseFulfilledResult<{ session: { id: string; counter: number } }>).value;
        expect(issued.session.id).to.equal(started[i]!.session.id);
        expect(issued.session.counter).to.equal(2);
      }
      const rotations = (await statements()) - before;
      // One statement goes out at once; the other 29 wait and leave together (group commit).
      expect(rotations).to.be.within(2, 5);
      const counters = await a.db
        .writer('sessions')
        .whereIn(
          'id',
          started.map((s) => s.session.id),
        )
        .select('id', 'counter');
      expect(counters.filter((r: { counter: string }) => Number(r.counter) === 2)).to.have.length(29);
    });

    it('refuses refresh after the absolute expiry without revoking', async function () {
      const owner = await newUser();
      const first = await startSession(a, owner, {});
      clock.advance(a.config.tokens.refreshTtl + 1);
      await rejectsWith(a.sessions.refresh(first.refreshToken), 'invalid_refresh_token');
      const stored = await row(first.session.id);
      expect(Number(stored.counter)).to.equal(1);
      expect(stored.revoked_at).to.equal(null);
    });

    it('refuses refresh of a session revoked by logout', async function () {
      const owner = await newUser();
      const first = await startSession(a, owner, {});
      expect(await a.sessions.revoke(first.session.id, 'logout', owner.id)).to.equal(true);
      await rejectsWith(b.sessions.refresh(first.refreshToken), 'invalid_refresh_token');
      expect((await row(first.session.id)).revoke_reason).to.equal('logout');
    });

    it('a login that cannot issue an access token leaves no live session behind', async function () {
      const owner = await newUser();
      // A server that has not loaded its signing keys yet (just started) answers 503.
      const cold = buildContainer(testConfig(db.url), { clock });
      try {
        await rejectsWith(loginTokens(cold.auth, owner.username!, PASSWORD, {}), 'unavailable');
      } finally {
        await shutdown(cold);
      }
      // Nothing half-written (docs/api.md#error-catalog, 503): no session the user never got a token for.
      expect(await a.sessions.listForUser(owner.id)).to.deep.equal([]);
    });

    it('does not let a user revoke another user’s session', async function () {
      const owner = await newUser();
      const other = await newUser();
      const first = await startSession(a, owner, {});
      expect(await a.sessions.revoke(first.session.id, 'logout', other.id)).to.equal(false);
      expect((await row(first.session.id)).revoked_at).to.equal(null);
    });
  });

  describe('revocation propagation', function () {
    it('reaches another server on its next poll, which then refuses the access token', async function () {
      const owner = await newUser();
      const login = await loginTokens(a.auth, owner.username!, PASSWORD, {});
      const sid = login.sessionId;
      // Before: server B accepts the token.
      const principal = await b.auth.authenticate(login.accessToken);
      expect(principal.sessionId).to.equal(sid);
      expect(principal.userId).to.equal(owner.id);

      expect(await a.sessions.revoke(sid, 'admin')).to.equal(true);
      expect(a.revocations.has(sid)).to.equal(true);
      await rejectsWith(a.auth.authenticate(login.accessToken), 'invalid_token');

      // B has not polled yet: it does not know.
      expect(b.revocations.has(sid)).to.equal(false);
      await b.revocations.poll();
      expect(b.revocations.has(sid)).to.equal(true);
      await rejectsWith(b.auth.authenticate(login.accessToken), 'invalid_token');
    });

    it('reaches another server through its background poll', async function () {
      await startBackground(b);
      const owner = await newUser();
      const login = await loginTokens(a.auth, owner.username!, PASSWORD, {});
      await b.auth.authenticate(login.accessToken);
      await a.sessions.revoke(login.sessionId, 'admin');
      // Generous bound; the contract is 2 s p99 with a 1 s poll, tests poll every 200 ms.
      const seen = await waitFor(() => b.revocations.has(login.sessionId), 5_000);
      expect(seen, 'revocation reached server B through its background poll').to.equal(true);
      await rejectsWith(b.auth.authenticate(login.accessToken), 'invalid_token');
    });

    it('drops entries once no access token of the session can be alive', async function () {
      const owner = await newUser();
      const login = await loginTokens(a.auth, owner.username!, PASSWORD, {});
      await a.sessions.revoke(login.sessionId, 'admin');
      await b.revocations.poll();
      expect(a.revocations.has(login.sessionId)).to.equal(true);
      expect(b.revocations.has(login.sessionId)).to.equal(true);

      const horizon = a.config.tokens.accessTtl + a.config.tokens.clockSkew;
      clock.advance(horizon - 5);
      expect(a.revocations.has(login.sessionId)).to.equal(true);
      expect(b.revocations.has(login.sessionId)).to.equal(true);
      // The access token is still within its life (+ skew) and must still be refused.
      await rejectsWith(b.auth.authenticate(login.accessToken), 'invalid_token');

      clock.advance(10);
      expect(a.revocations.has(login.sessionId)).to.equal(false);
      expect(b.revocations.has(login.sessionId)).to.equal(false);
      // Polling again does not bring it back.
      await b.revocations.poll();
      expect(b.revocations.has(login.sessionId)).to.equal(false);
      // And the token is refused anyway: it has expired.
      await rejectsWith(b.auth.authenticate(login.accessToken), 'invalid_token');
    });

    it('reaches a server whose clock runs ahead of the revoking server (within the allowed skew)', async function () {
      // Servers' clocks are only assumed to agree within tokens.clockSkew (30 s by default); a
      // revocation written with a slightly slow clock must still reach a server with a fast one.
      const skew = a.config.tokens.clockSkew - 10;
      const slowClock = new ManualClock(clock.now());
      const fastClock = new ManualClock(clock.now().getTime() + skew * 1000);
      const slow = buildContainer(testConfig(db.url), { clock: slowClock });
      const fast = buildContainer(testConfig(db.url), { clock: fastClock });
      try {
        await fast.revocations.poll();
        const owner = await newUser();
        const issued = await startSession(slow, owner, {});
        expect(await slow.sessions.revoke(issued.session.id, 'admin')).to.equal(true);
        await fast.revocations.poll();
        expect(fast.revocations.has(issued.session.id), `revocation written ${skew} s "in the past" of the polling server`).to.equal(true);
      } finally {
        await shutdown(slow);
        await shutdown(fast);
      }
    });

    it('loads revocations made before a server starts', async function () {
      const owner = await newUser();
      const login = await loginTokens(a.auth, owner.username!, PASSWORD, {});
      await a.sessions.revoke(login.sessionId, 'admin');

      const c = buildContainer(testConfig(db.url), { clock });
      try {
        expect(c.revocations.ready).to.equal(false);
        await startBackground(c);
        expect(c.revocations.ready).to.equal(true);
        expect(c.revocations.has(login.sessionId)).to.equal(true);
        await rejectsWith(c.auth.authenticate(login.accessToken), 'invalid_token');
      } finally {
        await shutdown(c);
      }
    });
  });
});
