import { expect } from 'chai';
import { ManualClock } from '../../src/platform/clock.js';
import { startTestApp, type TestApp } from '../helpers/app.js';
import {
  createAccount,
  expectInvalidToken,
  expectProblem,
  expectTokenResponse,
  login,
  refresh,
  type Account,
  type TokenResponse,
} from '../helpers/http-assert.js';

/** Every credential of the session is dead: both refresh tokens and the access tokens. */
async function expectSessionDead(app: TestApp, tokens: TokenResponse[]): Promise<void> {
  for (const t of tokens) {
    const res = await refresh(app, t.refreshToken);
    expect(res.status, 'refresh after revocation').to.equal(401);
    await expectInvalidToken(await app.request('/v1/me', { token: t.accessToken }));
  }
}

describe('refresh-token theft, races and session fixation (RFC 9700 §4.14, ASVS V3)', function () {
  this.timeout(60_000);

  describe('with the default grace window (10 s)', function () {
    const clock = new ManualClock();
    let app: TestApp;
    let victim: Account;

    before(async function () {
      app = await startTestApp('sec_refresh_theft', { clock });
      victim = await createAccount(app, 'theft');
    });
    after(async () => app?.close());

    it('a stolen token used after the victim refreshed: the whole session is revoked, for thief and victim', async function () {
      const first = await login(app, victim.username, victim.password);
      const stolen = first.refreshToken;
      const victimNext = await expectTokenResponse(await refresh(app, first.refreshToken));
      clock.advance(11);
      await expectProblem(await refresh(app, stolen), 401, 'refresh_token_reused');
      await expectSessionDead(app, [victimNext]);
    });

    it("the thief refreshes first: the victim's later use is reuse, and the thief's new tokens die with the session", async function () {
      const first = await login(app, victim.username, victim.password);
      const thief = await expectTokenResponse(await refresh(app, first.refreshToken));
      const thiefAgain = await expectTokenResponse(await refresh(app, thief.refreshToken));
      clock.advance(11);
      await expectProblem(await refresh(app, first.refreshToken), 401, 'refresh_token_reused');
      await expectSessionDead(app, [thief, thiefAgain]);
    });

    it('concurrent refreshes with one token never fork the chain: every success carries the same next token', async function () {
      const first = await login(app, victim.username, victim.password);
      const results = await Promise.all(Array.from({ length: 12 }, () => refresh(app, first.refreshToken)));
      const tokens = new Set<string>();
      for (const res of results) {
        expect(res.status).to.equal(200);
        tokens.add(((await res.json()) as TokenResponse).refreshToken);
      }
      expect(tokens.size).to.equal(1);
    });
  });

  describe('with no grace window (refreshGrace 0)', function () {
    let app: TestApp;
    let victim: Account;

    before(async function () {
      app = await startTestApp('sec_refresh_race', { overrides: { tokens: { refreshGrace: 0 } } });
      victim = await createAccount(app, 'race');
    });
    after(async () => app?.close());

    it('concurrent reuse of one token: at most one success, the rest reuse, and the session is revoked', async function () {
      const first = await login(app, victim.username, victim.password);
      const results = await Promise.all(Array.from({ length: 10 }, () => refresh(app, first.refreshToken)));
      const statuses = results.map((r) => r.status);
      const winners = results.filter((r) => r.status === 200);
      expect(winners.length, `statuses ${statuses.join(',')}`).to.equal(1);
      const codes = await Promise.all(results.filter((r) => r.status !== 200).map(async (r) => ((await r.json()) as { code: string }).code));
      // The first loser detects the reuse and revokes; later ones find the session already revoked.
      expect(codes, 'a reuse was detected').to.include('refresh_token_reused');
      expect(codes.filter((c) => c !== 'refresh_token_reused' && c !== 'invalid_refresh_token')).to.deep.equal([]);
      const winner = (await winners[0]!.json()) as TokenResponse;
      await expectSessionDead(app, [winner]);
    });
  });

  describe('session fixation', function () {
    let app: TestApp;
    let victim: Account;

    before(async function () {
      app = await startTestApp('sec_fixation');
      victim = await createAccount(app, 'fixation');
    });
    after(async () => app?.close());

    it('every login creates a new session id, and a client cannot choose one', async function () {
      const planted = await login(app, victim.username, victim.password);
      const ids = new Set<string>([planted.sessionId]);
      for (let i = 0; i < 3; i++) {
        const res = await app.request('/v1/auth/login', {
          method: 'POST',
          json: { username: victim.username, password: victim.password, sessionId: planted.sessionId, sid: planted.sessionId },
          headers: { cookie: `sid=${planted.sessionId}`, 'x-session-id': planted.sessionId },
        });
        ids.add((await expectTokenResponse(res)).sessionId);
      }
      expect(ids.size).to.equal(4);
    });

    it('refresh after logout fails, and so does the access token', async function () {
      const tokens = await login(app, victim.username, victim.password);
      expect((await app.request('/v1/auth/logout', { method: 'POST', token: tokens.accessToken })).status).to.equal(204);
      await expectProblem(await refresh(app, tokens.refreshToken), 401, 'invalid_refresh_token');
      await expectInvalidToken(await app.request('/v1/me', { token: tokens.accessToken }));
    });

    it('a password change ends every other session (a session planted before the change does not survive)', async function () {
      const planted = await login(app, victim.username, victim.password);
      const mine = await login(app, victim.username, victim.password);
      const newPassword = `${victim.password} changed`;
      const res = await app.request('/v1/auth/password', { method: 'POST', token: mine.accessToken, json: { currentPassword: victim.password, newPassword } });
      expect(res.status).to.equal(204);
      victim.password = newPassword;
      await expectSessionDead(app, [planted]);
      await expectTokenResponse(await refresh(app, mine.refreshToken));
    });
  });
});
