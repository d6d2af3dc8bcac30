import { expect } from 'chai';
import { decodeJwt } from 'jose';
import { ManualClock } from '../../src/platform/clock.js';
import { startTestApp, type TestApp } from '../helpers/app.js';
import {
  createAccount,
  expectInvalidRequest,
  expectProblem,
  expectTokenResponse,
  login,
  refresh,
  uniquePassword,
  type TokenResponse,
} from '../helpers/http-assert.js';

describe('step-up: recent authentication for password and address changes, POST /v1/auth/reauthenticate', function () {
  const clock = new ManualClock();
  let app: TestApp;
  let window: number;

  before(async function () {
    app = await startTestApp('mfa_step_up', {
      clock,
      overrides: {
        identity: { email: 'optional', sendsPerIpPerHour: 100_000 },
        mail: { transport: 'log', from: 'authctl tests <no-reply@example.test>' },
        log: { level: 'silent' },
      },
    });
    window = app.container.config.identity.reauthWindow;
  });
  after(async function () {
    await app?.close();
  });

  const post = (path: string, json: unknown, token?: string) => app.request(path, { method: 'POST', json, ...(token ? { token } : {}) });

  async function reauthenticate(token: string, json: Record<string, unknown>): Promise<{ accessToken: string; tokenType: string; expiresIn: number }> {
    const res = await post('/v1/auth/reauthenticate', json, token);
    const text = await res.text();
    expect(res.status, text).to.equal(200);
    expect(res.headers.get('cache-control')).to.equal('no-store');
    const body = JSON.parse(text) as { accessToken: string; tokenType: string; expiresIn: number };
    expect(Object.keys(body).sort()).to.deep.equal(['accessToken', 'expiresIn', 'tokenType']);
    return body;
  }

  const authTime = (token: string) => decodeJwt(token).auth_time as number;
  const now = () => Math.floor(clock.now().getTime() / 1000);

  it('a password change with an access token whose auth_time is older than the window: 403 reauthentication_required; after reauthenticating: 204', async function () {
    const a = await createAccount(app, 'stepup');
    const tokens = await login(app, a.username, a.password);
    clock.advance(window + 1);
    const next = uniquePassword();
    const refused = await expectProblem(
      await post('/v1/auth/password', { currentPassword: a.password, newPassword: next }, tokens.accessToken),
      403,
      'reauthentication_required',
    );
    expect(refused.detail).to.include('/v1/auth/reauthenticate');
    // Refreshing is no way around it: the session keeps its authentication time.
    const refreshed = await expectTokenResponse(await refresh(app, tokens.refreshToken));
    expect(authTime(refreshed.accessToken)).to.equal(authTime(tokens.accessToken));
    await expectProblem(
      await post('/v1/auth/password', { currentPassword: a.password, newPassword: next }, refreshed.accessToken),
      403,
      'reauthentication_required',
    );
    // Nothing changed: the old password still logs in.
    await login(app, a.username, a.password);

    const renewed = await reauthenticate(refreshed.accessToken, { password: a.password });
    const claims = decodeJwt(renewed.accessToken);
    expect(claims).to.include({ sid: tokens.sessionId, auth_time: now(), acr: 'aal1' });
    expect(claims.amr).to.deep.equal(['pwd']);
    expect((await post('/v1/auth/password', { currentPassword: a.password, newPassword: next }, renewed.accessToken)).status).to.equal(204);
    await login(app, a.username, next);
  });

  it('inside the window a password change needs nothing more; past it, refused', async function () {
    const a = await createAccount(app, 'stepedge');
    const tokens = await login(app, a.username, a.password);
    // auth_time is in whole seconds (floored): a second short of the window is inside it.
    clock.advance(window - 1);
    const next = uniquePassword();
    expect((await post('/v1/auth/password', { currentPassword: a.password, newPassword: next }, tokens.accessToken)).status).to.equal(204);
    clock.advance(2);
    await expectProblem(
      await post('/v1/auth/password', { currentPassword: next, newPassword: uniquePassword() }, tokens.accessToken),
      403,
      'reauthentication_required',
    );
  });

  it('an address change with an old auth_time: 403; after reauthenticating: 202', async function () {
    const a = await createAccount(app, 'stepmail');
    const tokens = await login(app, a.username, a.password);
    clock.advance(window + 60);
    const email = `step.${Date.now()}@example.com`;
    await expectProblem(await post('/v1/me/email', { email, currentPassword: a.password }, tokens.accessToken), 403, 'reauthentication_required');
    const renewed = await reauthenticate(tokens.accessToken, { password: a.password });
    expect((await post('/v1/me/email', { email, currentPassword: a.password }, renewed.accessToken)).status).to.equal(202);
  });

  it('reauthentication renews the session itself: the refresh token is unchanged, and the next refresh carries the new auth_time', async function () {
    const a = await createAccount(app, 'steprefresh');
    const tokens = await login(app, a.username, a.password);
    const loggedInAt = authTime(tokens.accessToken);
    clock.advance(window + 5);
    const renewed = await reauthenticate(tokens.accessToken, { password: a.password });
    expect(authTime(renewed.accessToken)).to.equal(loggedInAt + window + 5);
    const session = await app.container.sessions.findById(tokens.sessionId);
    expect(session!.counter, 'not rotated').to.equal(1);
    expect(Math.floor(session!.authTime.getTime() / 1000)).to.equal(now());
    // The refresh token of the login is still the current one.
    const refreshed = await expectTokenResponse(await refresh(app, tokens.refreshToken));
    expect(authTime(refreshed.accessToken)).to.equal(now());
    // The old access token still says what it said (tokens are immutable): it stays refused.
    await expectProblem(
      await post('/v1/auth/password', { currentPassword: a.password, newPassword: uniquePassword() }, tokens.accessToken),
      403,
      'reauthentication_required',
    );
  });

  it('a wrong password: 401 invalid_credentials, counted under the account like a failed login (429 with Retry-After past the limit)', async function () {
    const a = await createAccount(app, 'stepwrong');
    const tokens = await login(app, a.username, a.password);
    // Past the free failures the back-off (1 s, then doubling) refuses the next attempt at once.
    const { freeFailures } = app.container.config.rateLimit;
    let limited: Response | undefined;
    for (let i = 0; i <= freeFailures + 1 && !limited; i++) {
      const res = await post('/v1/auth/reauthenticate', { password: uniquePassword() }, tokens.accessToken);
      if (res.status === 429) limited = res;
      else await expectProblem(res, 401, 'invalid_credentials');
    }
    expect(limited, 'throttled').to.not.equal(undefined);
    await expectProblem(limited!, 429, 'rate_limited');
    expect(Number(limited!.headers.get('retry-after'))).to.be.greaterThan(0);
    // The login by password is throttled too: one counter per account.
    await expectProblem(await post('/v1/auth/login', { username: a.username, password: a.password }), 429, 'rate_limited');
  });

  it('needs a live access token: none, a refresh token or a revoked session is 401 invalid_token', async function () {
    const a = await createAccount(app, 'stepbearer');
    const tokens: TokenResponse = await login(app, a.username, a.password);
    await expectProblem(await post('/v1/auth/reauthenticate', { password: a.password }), 401, 'invalid_token');
    await expectProblem(await post('/v1/auth/reauthenticate', { password: a.password }, tokens.refreshToken), 401, 'invalid_token');
    expect((await app.request('/v1/auth/logout', { method: 'POST', token: tokens.accessToken })).status).to.equal(204);
    await expectProblem(await post('/v1/auth/reauthenticate', { password: a.password }, tokens.accessToken), 401, 'invalid_token');
  });

  it('refuses a malformed body: no password, a code that is not 6 digits, both code and recoveryCode, unknown members', async function () {
    const a = await createAccount(app, 'stepbody');
    const tokens = await login(app, a.username, a.password);
    await expectInvalidRequest(await post('/v1/auth/reauthenticate', {}, tokens.accessToken), 'password');
    await expectInvalidRequest(await post('/v1/auth/reauthenticate', { password: a.password, code: '12345' }, tokens.accessToken), 'code');
    await expectInvalidRequest(
      await post('/v1/auth/reauthenticate', { password: a.password, code: '123456', recoveryCode: 'abcd' }, tokens.accessToken),
      'recoveryCode',
    );
    await expectInvalidRequest(await post('/v1/auth/reauthenticate', { password: a.password, extra: 1 }, tokens.accessToken));
  });
});
