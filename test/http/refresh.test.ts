import { randomBytes } from 'node:crypto';
import { expect } from 'chai';
import pg from 'pg';
import { ManualClock } from '../../src/platform/clock.js';
import { startTestApp, type TestApp } from '../helpers/app.js';
import {
  createAccount,
  expectInvalidRequest,
  expectInvalidToken,
  expectProblem,
  expectTokenResponse,
  login,
  refresh,
  refreshCounter,
  sleep,
  type Account,
  type TokenResponse,
} from '../helpers/http-assert.js';

const DAY = 86_400;

/** `rt_<region>_<session>_<counter>_<mac>` split into its parts. */
function parts(token: string): { region: string; sessionId: string; counter: string; mac: string } {
  const match = /^rt_([a-z][a-z0-9-]*)_([0-9a-f-]{36})_(\d+)_([A-Za-z0-9_-]{22})$/.exec(token);
  if (!match) throw new Error(`not a refresh token: ${token}`);
  return { region: match[1]!, sessionId: match[2]!, counter: match[3]!, mac: match[4]! };
}

function token(p: { region: string; sessionId: string; counter: string | number; mac: string }): string {
  return `rt_${p.region}_${p.sessionId}_${p.counter}_${p.mac}`;
}

describe('POST /v1/auth/refresh: rotation, grace, reuse (docs/api.md#refresh-tokens)', function () {
  // Time moves only when a test says so: grace windows and lifetimes are exact.
  const clock = new ManualClock();
  let app: TestApp;
  let rita: Account;

  before(async function () {
    app = await startTestApp('http_refresh', { clock });
    rita = await createAccount(app, 'rita');
  });
  after(async function () {
    await app?.close();
  });

  const start = () => login(app, rita.username, rita.password);

  async function expectAccessWorks(accessToken: string): Promise<void> {
    const res = await app.request('/v1/verify', { token: accessToken });
    expect(res.status, await res.clone().text()).to.equal(200);
  }

  /** The session is revoked: its refresh token and every access token of it are refused. */
  async function expectRevoked(refreshToken: string, accessTokens: string[]): Promise<void> {
    await expectProblem(await refresh(app, refreshToken), 401, 'invalid_refresh_token');
    for (const accessToken of accessTokens) {
      await expectInvalidToken(await app.request('/v1/me', { token: accessToken }));
      await expectInvalidToken(await app.request('/v1/verify', { token: accessToken }));
    }
  }

  async function storedCounter(sessionId: string): Promise<number> {
    const session = await app.container.sessions.findById(sessionId);
    expect(session, `session ${sessionId} exists`).not.to.equal(undefined);
    return session!.counter;
  }

  describe('rotation', function () {
    it('returns a new refresh token for the same session, and a new access token that works', async function () {
      const first = await start();
      const second = await expectTokenResponse(await refresh(app, first.refreshToken));
      expect(second.sessionId).to.equal(first.sessionId);
      expect(second.user).to.deep.equal(first.user);
      expect(second.refreshToken).not.to.equal(first.refreshToken);
      expect(refreshCounter(second.refreshToken)).to.equal(refreshCounter(first.refreshToken) + 1);
      expect(second.accessToken).not.to.equal(first.accessToken);
      expect(second.expiresIn).to.equal(900);
      await expectAccessWorks(second.accessToken);
      // Rotation does not end the session: the older access token stays valid until it expires.
      await expectAccessWorks(first.accessToken);
    });

    it('keeps rotating: each token is used once, the chain moves on', async function () {
      let current = await start();
      for (let i = 0; i < 4; i++) {
        const next = await expectTokenResponse(await refresh(app, current.refreshToken));
        expect(refreshCounter(next.refreshToken)).to.equal(refreshCounter(current.refreshToken) + 1);
        current = next;
      }
      expect(await storedCounter(current.sessionId)).to.equal(refreshCounter(current.refreshToken));
      await expectAccessWorks(current.accessToken);
    });
  });

  describe('grace window (default 10 s)', function () {
    it('a retry with the previous token returns 200 and the SAME refresh token the first refresh got, with a fresh access token', async function () {
      const first = await start();
      const winner = await expectTokenResponse(await refresh(app, first.refreshToken));
      clock.advance(5);
      const retry = await expectTokenResponse(await refresh(app, first.refreshToken));
      expect(retry.refreshToken).to.equal(winner.refreshToken);
      expect(retry.sessionId).to.equal(first.sessionId);
      expect(retry.accessToken).not.to.equal(winner.accessToken);
      await expectAccessWorks(retry.accessToken);
      // The retry did not rotate again: one chain, still at the winner's counter.
      expect(await storedCounter(first.sessionId)).to.equal(refreshCounter(winner.refreshToken));
      const next = await expectTokenResponse(await refresh(app, winner.refreshToken));
      expect(refreshCounter(next.refreshToken)).to.equal(refreshCounter(winner.refreshToken) + 1);
    });

    it('20 concurrent refreshes with one token: all 200 with one identical refresh token, and one live chain', async function () {
      const first = await start();
      const responses = await Promise.all(Array.from({ length: 20 }, () => refresh(app, first.refreshToken)));
      const bodies = await Promise.all(responses.map((res) => expectTokenResponse(res)));
      const distinct = new Set(bodies.map((b) => b.refreshToken));
      expect([...distinct]).to.have.length(1);
      const [shared] = distinct;
      expect(refreshCounter(shared!)).to.equal(refreshCounter(first.refreshToken) + 1);
      expect(await storedCounter(first.sessionId)).to.equal(refreshCounter(first.refreshToken) + 1);
      for (const b of bodies.slice(0, 3)) await expectAccessWorks(b.accessToken);
      const next = await expectTokenResponse(await refresh(app, shared!));
      expect(next.sessionId).to.equal(first.sessionId);
      await expectAccessWorks(next.accessToken);
    });

    it('reuse of the previous token after the window (11 s): 401 refresh_token_reused, and the whole session is revoked', async function () {
      const first = await start();
      const second = await expectTokenResponse(await refresh(app, first.refreshToken));
      await expectAccessWorks(second.accessToken);
      clock.advance(11);
      await expectProblem(await refresh(app, first.refreshToken), 401, 'refresh_token_reused');
      // The current token of the session and all its access tokens are refused.
      await expectRevoked(second.refreshToken, [first.accessToken, second.accessToken]);
      // Presenting the stale token again is still refused (no resurrection).
      const again = await refresh(app, first.refreshToken);
      expect(again.status).to.equal(401);
      expect(((await again.json()) as { code: string }).code).to.be.oneOf(['refresh_token_reused', 'invalid_refresh_token']);
    });

    it('reuse revokes only that session: another session of the same user lives on', async function () {
      const victim = await start();
      const bystander = await start();
      await expectTokenResponse(await refresh(app, victim.refreshToken));
      clock.advance(11);
      await expectProblem(await refresh(app, victim.refreshToken), 401, 'refresh_token_reused');
      await expectAccessWorks(bystander.accessToken);
      await expectTokenResponse(await refresh(app, bystander.refreshToken));
    });

    it('an older token (two back) is reuse even inside the window', async function () {
      const t1 = await start();
      const t2 = await expectTokenResponse(await refresh(app, t1.refreshToken));
      const t3 = await expectTokenResponse(await refresh(app, t2.refreshToken));
      clock.advance(1);
      await expectProblem(await refresh(app, t1.refreshToken), 401, 'refresh_token_reused');
      await expectRevoked(t3.refreshToken, [t1.accessToken, t2.accessToken, t3.accessToken]);
    });

    it('no grace for a logged-out session: the previous token inside the window is 401 invalid_refresh_token', async function () {
      const first = await start();
      const second = await expectTokenResponse(await refresh(app, first.refreshToken));
      expect((await app.request('/v1/auth/logout', { method: 'POST', token: second.accessToken })).status).to.equal(204);
      await expectProblem(await refresh(app, first.refreshToken), 401, 'invalid_refresh_token');
      await expectProblem(await refresh(app, second.refreshToken), 401, 'invalid_refresh_token');
    });

    it('the previous token just inside the window (9 s) is still a retry', async function () {
      const first = await start();
      const winner = await expectTokenResponse(await refresh(app, first.refreshToken));
      clock.advance(9);
      const retry = await expectTokenResponse(await refresh(app, first.refreshToken));
      expect(retry.refreshToken).to.equal(winner.refreshToken);
    });
  });

  describe('storage', function () {
    it('the database holds no usable refresh token: neither the token nor its MAC appears in any session row', async function () {
      const first = await start();
      const second = await expectTokenResponse(await refresh(app, first.refreshToken));
      const client = new pg.Client({ connectionString: app.db.url });
      await client.connect();
      try {
        const { rows } = await client.query<{ row: string }>('select row_to_json(s)::text as row from sessions s where id = $1', [second.sessionId]);
        expect(rows).to.have.length(1);
        for (const t of [first.refreshToken, second.refreshToken]) {
          const mac = parts(t).mac;
          expect(rows[0]!.row).not.to.include(t);
          expect(rows[0]!.row).not.to.include(mac);
          expect(rows[0]!.row).not.to.include(Buffer.from(mac, 'base64url').toString('hex'));
          expect(rows[0]!.row).not.to.include(Buffer.from(mac, 'base64url').toString('base64'));
        }
      } finally {
        await client.end();
      }
    });
  });

  describe('forged and malformed tokens', function () {
    let victim: TokenResponse;
    let other: TokenResponse;
    before(async function () {
      const t1 = await start();
      // Move the victim's chain forward, so forged *older* counters would look like reuse if the MAC were not checked first.
      const t2 = await expectTokenResponse(await refresh(app, t1.refreshToken));
      victim = await expectTokenResponse(await refresh(app, t2.refreshToken));
      other = await start();
    });

    /** Nothing was revoked: the real session still refreshes and its access token works. */
    async function expectVictimUntouched(): Promise<void> {
      await expectAccessWorks(victim.accessToken);
      victim = await expectTokenResponse(await refresh(app, victim.refreshToken));
      await expectAccessWorks(other.accessToken);
    }

    const forgeries: Array<[string, () => string]> = [
      ['the right format with a random MAC', () => token({ ...parts(victim.refreshToken), mac: randomBytes(16).toString('base64url') })],
      ['a real token with the MAC of another session', () => token({ ...parts(victim.refreshToken), mac: parts(other.refreshToken).mac })],
      ['a real token with its counter incremented', () => token({ ...parts(victim.refreshToken), counter: refreshCounter(victim.refreshToken) + 1 })],
      ['a real token with an older counter (forged reuse)', () => token({ ...parts(victim.refreshToken), counter: 1 })],
      ['a real token with counter 0', () => token({ ...parts(victim.refreshToken), counter: 0 })],
      ['a real token with another session id spliced in', () => token({ ...parts(other.refreshToken), sessionId: parts(victim.refreshToken).sessionId })],
      ['a real token with another region', () => token({ ...parts(victim.refreshToken), region: 'elsewhere' })],
      [
        'a real token with one MAC character changed',
        () => {
          const p = parts(victim.refreshToken);
          return token({ ...p, mac: (p.mac[0] === 'A' ? 'B' : 'A') + p.mac.slice(1) });
        },
      ],
      [
        'a real token whose MAC is spelled non-canonically (spare bits of the last character set)',
        () => {
          // 22 base64url characters carry 132 bits for a 128-bit MAC: the last character's low 4
          // bits are padding, so flipping one decodes to the same bytes.
          const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';
          const p = parts(victim.refreshToken);
          const last = alphabet[alphabet.indexOf(p.mac.slice(-1)) ^ 1]!;
          const mac = p.mac.slice(0, -1) + last;
          expect(Buffer.from(mac, 'base64url').equals(Buffer.from(p.mac, 'base64url'))).to.equal(true);
          return token({ ...p, mac });
        },
      ],
      ['a real token with trailing data', () => `${victim.refreshToken}x`],
      ['a real token upper-cased', () => victim.refreshToken.toUpperCase()],
      ['a garbage string', () => 'garbage'],
      ['the bare session id', () => victim.sessionId],
    ];
    for (const [label, forge] of forgeries) {
      it(`${label}: 401 invalid_refresh_token and nothing revoked`, async function () {
        await expectProblem(await refresh(app, forge()), 401, 'invalid_refresh_token');
        await expectVictimUntouched();
      });
    }
  });

  describe('invalid request bodies', function () {
    for (const [label, body] of [
      ['an empty string', { refreshToken: '' }],
      ['a number', { refreshToken: 42 }],
      ['null', { refreshToken: null }],
      ['an object', { refreshToken: { counter: 1 } }],
      ['a missing field', {}],
      ['a 600-character string', { refreshToken: 'x'.repeat(600) }],
    ] as const) {
      it(`refreshToken as ${label}: 400 invalid_request on "refreshToken"`, async function () {
        const res = await app.request('/v1/auth/refresh', { method: 'POST', json: body });
        await expectInvalidRequest(res, 'refreshToken');
      });
    }

    it('no body at all: 400 invalid_request', async function () {
      await expectInvalidRequest(await app.request('/v1/auth/refresh', { method: 'POST' }));
    });
  });

  describe('a disabled owner', function () {
    it('refresh of a session whose user was disabled: 401 invalid_refresh_token', async function () {
      const sam = await createAccount(app, 'sam');
      const tokens = await login(app, sam.username, sam.password);
      await app.container.users.setStatus(sam.username, 'disabled');
      await expectProblem(await refresh(app, tokens.refreshToken), 401, 'invalid_refresh_token');
      await app.container.users.setStatus(sam.username, 'active');
      await expectProblem(await refresh(app, tokens.refreshToken), 401, 'invalid_refresh_token');
    });
  });

  // Last: these move the shared clock by weeks.
  describe('absolute session lifetime (default 14 days)', function () {
    it('refreshing does not extend it: refreshExpiresIn decreases and the session ends at its expiry', async function () {
      const first = await start();
      expect(first.refreshExpiresIn).to.equal(14 * DAY);
      clock.advance(5 * DAY);
      const second = await expectTokenResponse(await refresh(app, first.refreshToken));
      expect(second.refreshExpiresIn).to.equal(9 * DAY);
      clock.advance(5 * DAY);
      const third = await expectTokenResponse(await refresh(app, second.refreshToken));
      expect(third.refreshExpiresIn).to.equal(4 * DAY);
      clock.advance(4 * DAY - 10);
      const fourth = await expectTokenResponse(await refresh(app, third.refreshToken));
      expect(fourth.refreshExpiresIn).to.equal(10);
      await expectAccessWorks(fourth.accessToken);
      clock.advance(11);
      await expectProblem(await refresh(app, fourth.refreshToken), 401, 'invalid_refresh_token');
      // Nor is the grace retry a way around expiry.
      await expectProblem(await refresh(app, third.refreshToken), 401, 'invalid_refresh_token');
    });

    it('a fresh login after expiry starts a new full-length session', async function () {
      const fresh = await start();
      expect(fresh.refreshExpiresIn).to.equal(14 * DAY);
      await expectTokenResponse(await refresh(app, fresh.refreshToken));
    });
  });

  describe('with refreshGrace 0 (a second server on the same database)', function () {
    let strict: TestApp;
    let tom: Account;

    before(async function () {
      strict = await startTestApp('http_refresh_strict', { db: app.db, overrides: { tokens: { refreshGrace: 0 } } });
      tom = await createAccount(strict, 'tom');
    });
    after(async function () {
      await strict?.close();
    });

    it('an immediate replay of the previous token is reuse: 401 refresh_token_reused, session revoked', async function () {
      const first = await login(strict, tom.username, tom.password);
      const second = await expectTokenResponse(await refresh(strict, first.refreshToken));
      // Real time: let at least a millisecond pass, as any second request would.
      await sleep(5);
      await expectProblem(await refresh(strict, first.refreshToken), 401, 'refresh_token_reused');
      await expectProblem(await refresh(strict, second.refreshToken), 401, 'invalid_refresh_token');
      await expectInvalidToken(await strict.request('/v1/verify', { token: second.accessToken }));
    });

    it('the current token still rotates normally', async function () {
      const first = await login(strict, tom.username, tom.password);
      const second = await expectTokenResponse(await refresh(strict, first.refreshToken));
      const third = await expectTokenResponse(await refresh(strict, second.refreshToken));
      expect(refreshCounter(third.refreshToken)).to.equal(refreshCounter(first.refreshToken) + 2);
    });
  });
});
