import { expect } from 'chai';
import pg from 'pg';
import { startTestApp, type TestApp } from '../helpers/app.js';
import {
  createAccount,
  expectInvalidRequest,
  expectInvalidToken,
  expectProblem,
  expectTokenResponse,
  expectUserView,
  JSON_CONTENT_TYPE,
  login,
  refresh,
  register,
  uniquePassword,
  type Account,
  type Problem,
  type SessionView,
  type TokenResponse,
  type UserView,
} from '../helpers/http-assert.js';

const DAY = 86_400;

describe('HTTP auth flows (docs/api.md#endpoints)', function () {
  let app: TestApp;

  before(async function () {
    app = await startTestApp('http_auth_flow');
  });
  after(async function () {
    await app?.close();
  });

  async function expectSessionRevoked(tokens: TokenResponse): Promise<void> {
    await expectInvalidToken(await app.request('/v1/me', { token: tokens.accessToken }));
    await expectInvalidToken(await app.request('/v1/verify', { token: tokens.accessToken }));
    await expectProblem(await refresh(app, tokens.refreshToken), 401, 'invalid_refresh_token');
  }

  async function expectSessionAlive(tokens: TokenResponse): Promise<void> {
    const me = await app.request('/v1/me', { token: tokens.accessToken });
    expect(me.status, await me.clone().text()).to.equal(200);
    const verify = await app.request('/v1/verify', { token: tokens.accessToken });
    expect(verify.status, await verify.clone().text()).to.equal(200);
  }

  describe('POST /v1/auth/register', function () {
    it('creates a user: 201 {user} with exactly id, username, homeRegion, createdAt and no secret', async function () {
      const password = uniquePassword();
      const before = Date.now();
      const res = await app.request('/v1/auth/register', { method: 'POST', json: { username: 'carol', password } });
      const text = await res.text();
      expect(res.status, text).to.equal(201);
      expect(res.headers.get('content-type')).to.match(JSON_CONTENT_TYPE);
      expect(res.headers.get('cache-control')).to.equal('no-store');
      const body = JSON.parse(text) as { user: UserView };
      expect(Object.keys(body)).to.deep.equal(['user']);
      expectUserView(body.user);
      expect(body.user.username).to.equal('carol');
      expect(body.user.homeRegion).to.equal(app.container.config.region);
      expect(new Date(body.user.createdAt).getTime()).to.be.within(before - 5_000, Date.now() + 5_000);
      expect(text).not.to.include(password);
      expect(text).not.to.match(/argon2|hash/i);
    });

    it('stores only an argon2id hash (OWASP parameters or stronger), never the password', async function () {
      const password = uniquePassword();
      const user = await register(app, 'hashcheck', password);
      const client = new pg.Client({ connectionString: app.db.url });
      await client.connect();
      try {
        const { rows } = await client.query<{ row: string; password_hash: string }>(
          'select row_to_json(u)::text as row, u.password_hash from users u where id = $1',
          [user.id],
        );
        expect(rows).to.have.length(1);
        expect(rows[0]!.row).not.to.include(password);
        // PHC string: $argon2id$v=19$<params in any order>$<salt>$<hash>
        const [, algorithm, version, params] = rows[0]!.password_hash.split('$');
        expect(algorithm).to.equal('argon2id');
        expect(version).to.equal('v=19');
        const cost = Object.fromEntries((params ?? '').split(',').map((kv) => kv.split('=') as [string, string]));
        expect(Number(cost.m), 'memory KiB').to.be.at.least(19_456);
        expect(Number(cost.t), 'passes').to.be.at.least(2);
        expect(Number(cost.p), 'lanes').to.be.at.least(1);
      } finally {
        await client.end();
      }
    });

    it('concurrent registrations of one name (in different spellings): exactly one 201, the rest 409 username_taken', async function () {
      const spellings = ['quinn', 'Quinn', 'QUINN', 'ｑｕｉｎｎ', 'Ｑuinn', 'quInn'];
      const responses = await Promise.all(
        spellings.map((username) => app.request('/v1/auth/register', { method: 'POST', json: { username, password: uniquePassword() } })),
      );
      const created = responses.filter((res) => res.status === 201);
      expect(created, `statuses ${responses.map((r) => r.status).join(',')}`).to.have.length(1);
      for (const res of responses.filter((r) => r.status !== 201)) await expectProblem(res, 409, 'username_taken');
    });

    it('stores the NFKC-normalized, case-folded username ("Ａlice" → "alice")', async function () {
      const password = uniquePassword();
      const user = await register(app, 'Ａlice', password);
      expect(user.username).to.equal('alice');
      const tokens = await login(app, 'ALICE', password);
      expect(tokens.user.id).to.equal(user.id);
    });

    for (const variant of ['alice', 'ALICE', 'ａｌｉｃｅ', 'Alice']) {
      it(`refuses "${variant}" once "Ａlice" exists: 409 username_taken`, async function () {
        const res = await app.request('/v1/auth/register', { method: 'POST', json: { username: variant, password: uniquePassword() } });
        await expectProblem(res, 409, 'username_taken');
      });
    }

    it('refuses a short password: 400 weak_password on errors[].path "password"', async function () {
      const res = await app.request('/v1/auth/register', { method: 'POST', json: { username: 'weakling', password: 'short1' } });
      const problem = await expectProblem(res, 400, 'weak_password');
      expect(problem.errors?.map((e) => e.path)).to.deep.equal(['password']);
    });

    for (const common of ['qwertyuiop', 'Trustno1', 'ｐａｓｓｗｏｒｄ']) {
      it(`refuses the common password "${common}": 400 weak_password`, async function () {
        const res = await app.request('/v1/auth/register', { method: 'POST', json: { username: 'commoner', password: common } });
        const problem = await expectProblem(res, 400, 'weak_password');
        expect(problem.errors?.map((e) => e.path)).to.deep.equal(['password']);
        expect(JSON.stringify(problem)).not.to.include(common);
      });
    }

    it('refuses a password over 256 code points: 400 (weak_password or invalid_request on "password")', async function () {
      const res = await app.request('/v1/auth/register', { method: 'POST', json: { username: 'longpw', password: 'x'.repeat(257) } });
      expect(res.status).to.equal(400);
      const problem = (await res.json()) as Problem;
      expect(problem.code).to.be.oneOf(['weak_password', 'invalid_request']);
      expect(problem.errors?.map((e) => e.path)).to.include('password');
    });

    it('refuses a missing body: 400 invalid_request with errors[]', async function () {
      await expectInvalidRequest(await app.request('/v1/auth/register', { method: 'POST' }));
    });

    it('refuses {}: 400 invalid_request naming both fields', async function () {
      await expectInvalidRequest(await app.request('/v1/auth/register', { method: 'POST', json: {} }), 'username', 'password');
    });

    it('refuses wrong-typed fields: 400 invalid_request naming each field', async function () {
      const res = await app.request('/v1/auth/register', { method: 'POST', json: { username: 42, password: ['a', 'b'] } });
      await expectInvalidRequest(res, 'username', 'password');
    });

    it('refuses a JSON array body: 400 invalid_request', async function () {
      await expectInvalidRequest(await app.request('/v1/auth/register', { method: 'POST', json: ['carol', 'x'] }));
    });

    for (const [label, username] of [
      ['too short', 'ab'],
      ['too long', 'a'.repeat(65)],
      ['with a space', 'bad name'],
      ['with a slash', 'a/b/c'],
      ['with a zero-width joiner', 'ev\u200dil'],
    ] as const) {
      it(`refuses a username ${label}: 400 invalid_request on "username"`, async function () {
        const res = await app.request('/v1/auth/register', { method: 'POST', json: { username, password: uniquePassword() } });
        await expectInvalidRequest(res, 'username');
      });
    }
  });

  describe('POST /v1/auth/login', function () {
    let dave: Account;
    before(async function () {
      dave = await createAccount(app, 'dave');
    });

    it('answers a TokenResponse with Cache-Control: no-store', async function () {
      const before = Date.now();
      const res = await app.request('/v1/auth/login', { method: 'POST', json: { username: dave.username, password: dave.password } });
      const tokens = await expectTokenResponse(res);
      expect(tokens.expiresIn).to.equal(900);
      expect(tokens.refreshExpiresIn).to.be.within(14 * DAY - 5, 14 * DAY);
      expect(tokens.user).to.deep.equal(dave.user);
      expect(tokens.refreshToken.startsWith(`rt_${app.container.config.region}_${tokens.sessionId}_`)).to.equal(true);
      const claims = JSON.parse(Buffer.from(tokens.accessToken.split('.')[1]!, 'base64url').toString()) as Record<string, unknown>;
      expect(claims.sub).to.equal(dave.user.id);
      expect(claims.sid).to.equal(tokens.sessionId);
      expect(claims.exp).to.equal((claims.iat as number) + 900);
      expect((claims.iat as number) * 1000).to.be.within(before - 5_000, Date.now() + 5_000);
    });

    it('accepts the username in any case or compatibility form', async function () {
      const tokens = await login(app, dave.username.toUpperCase(), dave.password);
      expect(tokens.user.id).to.equal(dave.user.id);
    });

    it('gives a wrong password and an unknown user the same status, code, detail and headers', async function () {
      const wrong = await app.request('/v1/auth/login', { method: 'POST', json: { username: dave.username, password: 'not the password' } });
      const unknown = await app.request('/v1/auth/login', { method: 'POST', json: { username: 'nobody-here', password: 'not the password' } });
      const unnormalizable = await app.request('/v1/auth/login', { method: 'POST', json: { username: 'x', password: 'not the password' } });
      const bodies: Problem[] = [];
      for (const res of [wrong, unknown, unnormalizable]) {
        const problem = await expectProblem(res, 401, 'invalid_credentials');
        const { requestId, ...rest } = problem;
        expect(requestId).to.be.a('string');
        bodies.push(rest as Problem);
      }
      expect(bodies[1]).to.deep.equal(bodies[0]);
      expect(bodies[2]).to.deep.equal(bodies[0]);
      const headerNames = (res: Response) => [...res.headers.keys()].filter((h) => !['date', 'x-request-id', 'content-length'].includes(h)).sort();
      expect(headerNames(unknown)).to.deep.equal(headerNames(wrong));
      expect(unknown.headers.get('www-authenticate')).to.equal(wrong.headers.get('www-authenticate'));
    });

    it('spends comparable time on an unknown user and on a wrong password (argon2 either way)', async function () {
      const time = async (username: string) => {
        const started = performance.now();
        const res = await app.request('/v1/auth/login', { method: 'POST', json: { username, password: 'not the password' } });
        expect(res.status).to.equal(401);
        return performance.now() - started;
      };
      await time('warm-up-unknown');
      const median = (xs: number[]) => xs.sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
      // One failure per account, so that login throttling cannot be what is measured.
      const targets = await Promise.all(Array.from({ length: 5 }, (_, i) => createAccount(app, `timing${i}`)));
      const wrong: number[] = [];
      const unknown: number[] = [];
      for (const [i, target] of targets.entries()) {
        wrong.push(await time(target.username));
        unknown.push(await time(`ghost-${i}`));
      }
      expect(median(unknown), `unknown ${unknown.join(',')} vs wrong ${wrong.join(',')} ms`).to.be.above(median(wrong) * 0.5);
    });

    it('refuses missing or wrong-typed fields: 400 invalid_request', async function () {
      await expectInvalidRequest(await app.request('/v1/auth/login', { method: 'POST', json: { username: dave.username } }), 'password');
      await expectInvalidRequest(await app.request('/v1/auth/login', { method: 'POST', json: { username: 7, password: true } }), 'username', 'password');
    });

    describe('a disabled account', function () {
      let erin: Account;
      let erinTokens: TokenResponse;
      before(async function () {
        erin = await createAccount(app, 'erin');
        erinTokens = await login(app, erin.username, erin.password);
        await app.container.users.setStatus(erin.username, 'disabled');
      });
      after(async function () {
        await app.container.users.setStatus(erin.username, 'active');
      });

      it('with the right password: 403 account_disabled', async function () {
        const res = await app.request('/v1/auth/login', { method: 'POST', json: { username: erin.username, password: erin.password } });
        await expectProblem(res, 403, 'account_disabled');
      });

      it('with a wrong password: 401 invalid_credentials (the state is not revealed)', async function () {
        const res = await app.request('/v1/auth/login', { method: 'POST', json: { username: erin.username, password: 'not the password' } });
        await expectProblem(res, 401, 'invalid_credentials');
      });

      it('has its existing sessions revoked (access and refresh tokens refused)', async function () {
        await expectSessionRevoked(erinTokens);
      });

      it('logs in again once enabled, but the sessions from before stay revoked', async function () {
        await app.container.users.setStatus(erin.username, 'active');
        const fresh = await login(app, erin.username, erin.password);
        await expectSessionAlive(fresh);
        await expectSessionRevoked(erinTokens);
      });
    });
  });

  describe('GET /v1/me and GET /v1/verify', function () {
    let frank: Account;
    let tokens: TokenResponse;
    before(async function () {
      frank = await createAccount(app, 'frank');
      tokens = await login(app, frank.username, frank.password);
    });

    it('/v1/me answers {user} of the caller with Cache-Control: no-store', async function () {
      const res = await app.request('/v1/me', { token: tokens.accessToken });
      expect(res.status).to.equal(200);
      expect(res.headers.get('cache-control')).to.equal('no-store');
      const body = (await res.json()) as { user: UserView };
      expect(Object.keys(body)).to.deep.equal(['user']);
      expect(body.user).to.deep.equal(frank.user);
    });

    it('/v1/verify answers 200 with X-Auth-User-Id, X-Auth-Session-Id and X-Auth-Username', async function () {
      const res = await app.request('/v1/verify', { token: tokens.accessToken });
      expect(res.status).to.equal(200);
      expect(res.headers.get('x-auth-user-id')).to.equal(frank.user.id);
      expect(res.headers.get('x-auth-session-id')).to.equal(tokens.sessionId);
      expect(res.headers.get('x-auth-username')).to.equal(frank.username);
    });

    it('accepts the auth scheme case-insensitively ("bearer")', async function () {
      const res = await app.request('/v1/verify', { headers: { authorization: `bearer ${tokens.accessToken}` } });
      expect(res.status).to.equal(200);
    });

    for (const path of ['/v1/me', '/v1/verify', '/v1/sessions']) {
      it(`${path} without a token: 401 invalid_token with a Bearer challenge and no identity headers`, async function () {
        const res = await app.request(path);
        await expectInvalidToken(res);
        expect(res.headers.get('x-auth-user-id')).to.equal(null);
      });
    }

    for (const [label, authorization] of [
      ['Basic credentials', () => `Basic ${Buffer.from(`${frank.username}:${frank.password}`).toString('base64')}`],
      ['an empty Bearer', () => 'Bearer '],
      ['a token with spaces', () => 'Bearer abc def'],
      ['the token without a scheme', () => tokens.accessToken],
      ['a refresh token as Bearer', () => `Bearer ${tokens.refreshToken}`],
    ] as const) {
      it(`/v1/verify with ${label}: 401 invalid_token`, async function () {
        const res = await app.request('/v1/verify', { headers: { authorization: authorization() } });
        await expectInvalidToken(res);
        expect(res.headers.get('x-auth-user-id')).to.equal(null);
      });
    }

    it('does not take the token from the query string', async function () {
      await expectInvalidToken(await app.request(`/v1/me?access_token=${encodeURIComponent(tokens.accessToken)}`));
    });
  });

  describe('GET /v1/sessions and DELETE /v1/sessions/:id', function () {
    let gina: Account;
    let other: Account;
    let laptop: TokenResponse;
    let phone: TokenResponse;
    let othersSession: TokenResponse;
    before(async function () {
      gina = await createAccount(app, 'gina');
      other = await createAccount(app, 'hank');
      laptop = await login(app, gina.username, gina.password, { 'user-agent': 'laptop-browser/1.0' });
      phone = await login(app, gina.username, gina.password, { 'user-agent': 'phone-app/2.0' });
      othersSession = await login(app, other.username, other.password);
    });

    it("lists the caller's live sessions with `current` true only for the caller's own", async function () {
      const res = await app.request('/v1/sessions', { token: laptop.accessToken });
      expect(res.status).to.equal(200);
      expect(res.headers.get('cache-control')).to.equal('no-store');
      const { sessions } = (await res.json()) as { sessions: SessionView[] };
      expect(sessions.map((s) => s.id).sort()).to.deep.equal([laptop.sessionId, phone.sessionId].sort());
      for (const s of sessions) {
        expect(Object.keys(s).sort()).to.deep.equal(['createdAt', 'current', 'expiresAt', 'id', 'lastUsedAt', 'region', 'userAgent']);
        expect(s.region).to.equal(app.container.config.region);
        expect(new Date(s.expiresAt).getTime() - new Date(s.createdAt).getTime()).to.equal(14 * DAY * 1000);
        expect(new Date(s.lastUsedAt).toISOString()).to.equal(s.lastUsedAt);
      }
      const byId = new Map(sessions.map((s) => [s.id, s]));
      expect(byId.get(laptop.sessionId)?.current).to.equal(true);
      expect(byId.get(phone.sessionId)?.current).to.equal(false);
      expect(byId.get(laptop.sessionId)?.userAgent).to.equal('laptop-browser/1.0');
      expect(byId.get(phone.sessionId)?.userAgent).to.equal('phone-app/2.0');

      const fromPhone = (await (await app.request('/v1/sessions', { token: phone.accessToken })).json()) as { sessions: SessionView[] };
      expect(fromPhone.sessions.filter((s) => s.current).map((s) => s.id)).to.deep.equal([phone.sessionId]);
    });

    it("another user's session id: 404 not_found, and that session lives on", async function () {
      const res = await app.request(`/v1/sessions/${othersSession.sessionId}`, { method: 'DELETE', token: laptop.accessToken });
      await expectProblem(res, 404, 'not_found');
      await expectSessionAlive(othersSession);
      const r = await refresh(app, othersSession.refreshToken);
      othersSession = await expectTokenResponse(r);
    });

    // Path segments as sent on the wire.
    for (const id of ['not-a-uuid', '00000000-0000-7000-8000-000000000000', encodeURIComponent("1' or '1'='1"), '..%2F..%2Fetc']) {
      it(`DELETE /v1/sessions/${id}: 404 not_found`, async function () {
        const res = await app.request(`/v1/sessions/${id}`, { method: 'DELETE', token: laptop.accessToken });
        await expectProblem(res, 404, 'not_found');
      });
    }

    it('revokes an own session: 204, then its access and refresh tokens are refused and it is no longer listed', async function () {
      const res = await app.request(`/v1/sessions/${phone.sessionId}`, { method: 'DELETE', token: laptop.accessToken });
      expect(res.status, await res.clone().text()).to.equal(204);
      expect(await res.text()).to.equal('');
      await expectSessionRevoked(phone);
      await expectSessionAlive(laptop);
      const { sessions } = (await (await app.request('/v1/sessions', { token: laptop.accessToken })).json()) as { sessions: SessionView[] };
      expect(sessions.map((s) => s.id)).to.deep.equal([laptop.sessionId]);
    });

    it('an already revoked own session: 404 not_found', async function () {
      const res = await app.request(`/v1/sessions/${phone.sessionId}`, { method: 'DELETE', token: laptop.accessToken });
      await expectProblem(res, 404, 'not_found');
    });

    it("the caller's own current session: 204, then the caller is logged out", async function () {
      const res = await app.request(`/v1/sessions/${laptop.sessionId}`, { method: 'DELETE', token: laptop.accessToken });
      expect(res.status).to.equal(204);
      await expectSessionRevoked(laptop);
    });
  });

  describe('POST /v1/auth/logout and /v1/auth/logout-all', function () {
    let ivy: Account;
    let jack: Account;
    before(async function () {
      ivy = await createAccount(app, 'ivy');
      jack = await createAccount(app, 'jack');
    });

    it('logout: 204, then the access token is 401 invalid_token on /v1/me and /v1/verify and the refresh token 401 invalid_refresh_token', async function () {
      const tokens = await login(app, ivy.username, ivy.password);
      const res = await app.request('/v1/auth/logout', { method: 'POST', token: tokens.accessToken });
      expect(res.status, await res.clone().text()).to.equal(204);
      expect(res.headers.get('cache-control')).to.equal('no-store');
      expect(await res.text()).to.equal('');
      await expectSessionRevoked(tokens);
    });

    it('logout with {} works the same', async function () {
      const tokens = await login(app, ivy.username, ivy.password);
      const res = await app.request('/v1/auth/logout', { method: 'POST', token: tokens.accessToken, json: {} });
      expect(res.status).to.equal(204);
      await expectSessionRevoked(tokens);
    });

    it('logout without a token: 401 invalid_token', async function () {
      await expectInvalidToken(await app.request('/v1/auth/logout', { method: 'POST', json: {} }));
    });

    it('logout with {refreshToken} of another own session revokes both; a third session lives on', async function () {
      const a = await login(app, ivy.username, ivy.password);
      const b = await login(app, ivy.username, ivy.password);
      const c = await login(app, ivy.username, ivy.password);
      const res = await app.request('/v1/auth/logout', { method: 'POST', token: a.accessToken, json: { refreshToken: b.refreshToken } });
      expect(res.status).to.equal(204);
      await expectSessionRevoked(a);
      await expectSessionRevoked(b);
      await expectSessionAlive(c);
    });

    it("logout with {refreshToken} of another user's session does not revoke that session", async function () {
      const mine = await login(app, ivy.username, ivy.password);
      const theirs = await login(app, jack.username, jack.password);
      const res = await app.request('/v1/auth/logout', { method: 'POST', token: mine.accessToken, json: { refreshToken: theirs.refreshToken } });
      expect(res.status).to.be.oneOf([204, 404]);
      await expectSessionAlive(theirs);
      await expectTokenResponse(await refresh(app, theirs.refreshToken));
    });

    it('logout-all: 204, then every session of the user is refused; other users are untouched', async function () {
      const sessions = [
        await login(app, ivy.username, ivy.password),
        await login(app, ivy.username, ivy.password),
        await login(app, ivy.username, ivy.password),
      ];
      const bystander = await login(app, jack.username, jack.password);
      const res = await app.request('/v1/auth/logout-all', { method: 'POST', token: sessions[1]!.accessToken, json: {} });
      expect(res.status, await res.clone().text()).to.equal(204);
      for (const s of sessions) await expectSessionRevoked(s);
      await expectSessionAlive(bystander);
    });
  });

  describe('POST /v1/auth/password', function () {
    let kim: Account;
    let current: TokenResponse;
    let other: TokenResponse;
    before(async function () {
      kim = await createAccount(app, 'kim');
      current = await login(app, kim.username, kim.password);
      other = await login(app, kim.username, kim.password);
    });

    it('wrong current password: 401 invalid_credentials, and nothing is revoked', async function () {
      const res = await app.request('/v1/auth/password', {
        method: 'POST',
        token: current.accessToken,
        json: { currentPassword: 'not the password', newPassword: uniquePassword() },
      });
      await expectProblem(res, 401, 'invalid_credentials');
      await expectSessionAlive(other);
    });

    it('weak new password: 400 weak_password on errors[].path "newPassword"', async function () {
      const res = await app.request('/v1/auth/password', {
        method: 'POST',
        token: current.accessToken,
        json: { currentPassword: kim.password, newPassword: 'baseball' },
      });
      const problem = await expectProblem(res, 400, 'weak_password');
      expect(problem.errors?.map((e) => e.path)).to.deep.equal(['newPassword']);
    });

    it('missing fields: 400 invalid_request', async function () {
      const res = await app.request('/v1/auth/password', { method: 'POST', token: current.accessToken, json: { newPassword: uniquePassword() } });
      await expectInvalidRequest(res, 'currentPassword');
    });

    it('without a token: 401 invalid_token', async function () {
      const res = await app.request('/v1/auth/password', { method: 'POST', json: { currentPassword: kim.password, newPassword: uniquePassword() } });
      await expectInvalidToken(res);
    });

    it("success: 204; the caller's session keeps working, every other session is revoked, only the new password logs in", async function () {
      const newPassword = uniquePassword();
      const res = await app.request('/v1/auth/password', {
        method: 'POST',
        token: current.accessToken,
        json: { currentPassword: kim.password, newPassword },
      });
      expect(res.status, await res.clone().text()).to.equal(204);

      await expectSessionAlive(current);
      await expectSessionRevoked(other);
      const rotated = await expectTokenResponse(await refresh(app, current.refreshToken));
      expect(rotated.sessionId).to.equal(current.sessionId);

      await expectProblem(
        await app.request('/v1/auth/login', { method: 'POST', json: { username: kim.username, password: kim.password } }),
        401,
        'invalid_credentials',
      );
      await login(app, kim.username, newPassword);
    });
  });

  describe('revocation reaches another server of the region within 2 s (docs/api.md#revocation)', function () {
    let peer: TestApp;
    let nina: Account;
    before(async function () {
      peer = await startTestApp('http_auth_flow_peer', { db: app.db });
      nina = await createAccount(app, 'nina');
    });
    after(async function () {
      await peer?.close();
    });

    /** Polls the peer's /v1/verify until it refuses `accessToken`; returns how long that took. */
    async function refusedByPeerWithin(accessToken: string, limitMs: number): Promise<number> {
      const started = Date.now();
      while (Date.now() - started < limitMs + 500) {
        const res = await peer.request('/v1/verify', { token: accessToken });
        if (res.status !== 200) {
          await expectInvalidToken(res);
          return Date.now() - started;
        }
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
      return expect.fail(`the peer still accepts the token after ${limitMs + 500} ms`);
    }

    async function acceptedByPeer(accessToken: string): Promise<void> {
      const res = await peer.request('/v1/verify', { token: accessToken });
      expect(res.status, `peer before the revocation: ${await res.clone().text()}`).to.equal(200);
    }

    it('logout on one server', async function () {
      const tokens = await login(app, nina.username, nina.password);
      await acceptedByPeer(tokens.accessToken);
      expect((await app.request('/v1/auth/logout', { method: 'POST', token: tokens.accessToken })).status).to.equal(204);
      expect(await refusedByPeerWithin(tokens.accessToken, 2_000)).to.be.at.most(2_000);
    });

    it('a password change on one server (the other sessions)', async function () {
      const caller = await login(app, nina.username, nina.password);
      const other = await login(app, nina.username, nina.password);
      await acceptedByPeer(other.accessToken);
      const newPassword = uniquePassword();
      const res = await app.request('/v1/auth/password', { method: 'POST', token: caller.accessToken, json: { currentPassword: nina.password, newPassword } });
      expect(res.status).to.equal(204);
      nina = { ...nina, password: newPassword };
      expect(await refusedByPeerWithin(other.accessToken, 2_000)).to.be.at.most(2_000);
      await acceptedByPeer(caller.accessToken);
    });

    it('refresh-token reuse detected on one server', async function () {
      const strictPeer = await startTestApp('http_auth_flow_strict', { db: app.db, overrides: { tokens: { refreshGrace: 0 } } });
      try {
        const tokens = await login(strictPeer, nina.username, nina.password);
        await acceptedByPeer(tokens.accessToken);
        await expectTokenResponse(await refresh(strictPeer, tokens.refreshToken));
        await new Promise((resolve) => setTimeout(resolve, 5));
        await expectProblem(await refresh(strictPeer, tokens.refreshToken), 401, 'refresh_token_reused');
        expect(await refusedByPeerWithin(tokens.accessToken, 2_000)).to.be.at.most(2_000);
      } finally {
        await strictPeer.close();
      }
    });

    it('an admin disabling the user on one server', async function () {
      const tokens = await login(app, nina.username, nina.password);
      await acceptedByPeer(tokens.accessToken);
      await app.container.users.setStatus(nina.username, 'disabled');
      try {
        expect(await refusedByPeerWithin(tokens.accessToken, 2_000)).to.be.at.most(2_000);
      } finally {
        await app.container.users.setStatus(nina.username, 'active');
      }
    });
  });

  describe('admin deletion of a user', function () {
    it("revokes the user's sessions: Bearer refused, refresh refused, login refused; the name can be taken again", async function () {
      const lee = await createAccount(app, 'lee');
      const tokens = await login(app, lee.username, lee.password);
      await app.container.users.delete(lee.user.id);
      await expectSessionRevoked(tokens);
      await expectProblem(
        await app.request('/v1/auth/login', { method: 'POST', json: { username: lee.username, password: lee.password } }),
        401,
        'invalid_credentials',
      );
      const again = await register(app, lee.username, uniquePassword());
      expect(again.id).not.to.equal(lee.user.id);
      await expectInvalidToken(await app.request('/v1/me', { token: tokens.accessToken }));
    });
  });
});
