import { randomBytes } from 'node:crypto';
import { expect } from 'chai';
import { MfaTokens } from '../../src/core/mfa/mfa-tokens.js';
import { ServerSecrets } from '../../src/core/keys/secrets.js';
import { ManualClock } from '../../src/platform/clock.js';
import { migrateDatabase, startTestApp, type TestApp } from '../helpers/app.js';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';
import {
  createAccount,
  expectInvalidRequest,
  expectInvalidToken,
  expectProblem,
  expectTokenResponse,
  login,
  refresh,
  type Account,
  type TokenResponse,
} from '../helpers/http-assert.js';
import { TcpProxy } from '../helpers/http-tcp-proxy.js';
import { authClaims, enrolTotp, expectChallenge, totpAt, type Enrolled } from './two-step-support.js';

const STEP = 30;

describe('two-step login: the mfaToken and POST /v1/auth/mfa/verify (identity.mfa: optional)', function () {
  this.timeout(60_000);
  const clock = new ManualClock();
  let app: TestApp;

  before(async function () {
    app = await startTestApp('mfa_two_step', { clock });
  });
  after(async function () {
    await app?.close();
  });

  const post = (path: string, json: unknown, token?: string) => app.request(path, { method: 'POST', json, ...(token ? { token } : {}) });
  const now = () => Math.floor(clock.now().getTime() / 1000);
  const sessionsOf = async (userId: string) => (await app.container.sessions.listForUser(userId)).length;

  /** An account with an active TOTP factor; the clock is then moved to the next step, so a fresh code is accepted. */
  async function enrolled(prefix: string): Promise<Account & Enrolled> {
    const account = await createAccount(app, prefix);
    const tokens = await login(app, account.username, account.password);
    const factor = await enrolTotp(app, tokens.accessToken, clock);
    clock.advance(STEP);
    return { ...account, ...factor };
  }

  const firstStep = async (a: Account) => expectChallenge(await post('/v1/auth/login', { username: a.username, password: a.password }));
  const code = (a: Enrolled) => totpAt(a.secret, clock.now());

  it('without a factor a login answers tokens at once: amr ["pwd"], acr aal1, auth_time the login', async function () {
    const a = await createAccount(app, 'plain');
    const tokens = await login(app, a.username, a.password);
    expect(authClaims(tokens)).to.deep.equal({ auth_time: now(), amr: ['pwd'], acr: 'aal1' });
  });

  it('with a factor: the password gives an mfaToken and no session; the code gives tokens at aal2 (amr pwd, otp, mfa), which refreshes keep', async function () {
    const a = await enrolled('twostep');
    const sessionsBefore = await sessionsOf(a.user.id);
    const challenge = await firstStep(a);
    expect(challenge).to.deep.include({ expiresIn: app.container.config.identity.mfaTokenTtl, factors: ['totp', 'recovery_code'], enrolmentRequired: false });
    expect(await sessionsOf(a.user.id), 'no session before the second step').to.equal(sessionsBefore);

    clock.advance(7);
    const tokens = await expectTokenResponse(await post('/v1/auth/mfa/verify', { mfaToken: challenge.mfaToken, code: code(a) }));
    expect(tokens.user.id).to.equal(a.user.id);
    expect(authClaims(tokens)).to.deep.equal({ auth_time: now(), amr: ['pwd', 'otp', 'mfa'], acr: 'aal2' });
    expect(await sessionsOf(a.user.id)).to.equal(sessionsBefore + 1);
    expect((await app.request('/v1/me', { token: tokens.accessToken })).status).to.equal(200);

    // Refreshing later keeps how and when the user authenticated.
    const loggedInAt = now();
    clock.advance(120);
    const refreshed = await expectTokenResponse(await refresh(app, tokens.refreshToken));
    expect(authClaims(refreshed)).to.deep.equal({ auth_time: loggedInAt, amr: ['pwd', 'otp', 'mfa'], acr: 'aal2' });
    const again = await expectTokenResponse(await refresh(app, refreshed.refreshToken));
    expect(authClaims(again).auth_time).to.equal(loggedInAt);
  });

  it('a recovery code answers the second step too (amr pwd, mfa), once', async function () {
    const a = await enrolled('recovery');
    const recoveryCode = a.recoveryCodes[0]!;
    const tokens = await expectTokenResponse(await post('/v1/auth/mfa/verify', { mfaToken: (await firstStep(a)).mfaToken, recoveryCode }));
    expect(authClaims(tokens)).to.deep.equal({ auth_time: now(), amr: ['pwd', 'mfa'], acr: 'aal2' });
    await expectProblem(await post('/v1/auth/mfa/verify', { mfaToken: (await firstStep(a)).mfaToken, recoveryCode }), 400, 'invalid_code');
  });

  it('a used mfaToken is refused, even with another good code; a wrong code leaves it good for another try', async function () {
    const a = await enrolled('reuse');
    const { mfaToken } = await firstStep(a);
    await expectProblem(await post('/v1/auth/mfa/verify', { mfaToken, code: code(a) === '000000' ? '111111' : '000000' }), 400, 'invalid_code');
    await expectTokenResponse(await post('/v1/auth/mfa/verify', { mfaToken, code: code(a) }));
    clock.advance(STEP);
    const sessions = await sessionsOf(a.user.id);
    await expectProblem(await post('/v1/auth/mfa/verify', { mfaToken, code: code(a) }), 401, 'invalid_mfa_token');
    await expectProblem(await post('/v1/auth/mfa/verify', { mfaToken, recoveryCode: a.recoveryCodes[0] }), 401, 'invalid_mfa_token');
    expect(await sessionsOf(a.user.id)).to.equal(sessions);
    // The refused replays spent nothing: the recovery code still works with a fresh login.
    await expectTokenResponse(await post('/v1/auth/mfa/verify', { mfaToken: (await firstStep(a)).mfaToken, recoveryCode: a.recoveryCodes[0] }));
  });

  it('one mfaToken sent twice at once (a code and a recovery code): one session, the other use refused', async function () {
    const a = await enrolled('race');
    const { mfaToken } = await firstStep(a);
    const sessions = await sessionsOf(a.user.id);
    const results = await Promise.all([
      post('/v1/auth/mfa/verify', { mfaToken, code: code(a) }),
      post('/v1/auth/mfa/verify', { mfaToken, recoveryCode: a.recoveryCodes[1] }),
    ]);
    const statuses = results.map((r) => r.status).sort();
    expect(statuses).to.deep.equal([200, 401]);
    await expectProblem(
      results.find((r) => r.status === 401)!,
      401,
      'invalid_mfa_token',
    );
    await expectTokenResponse(results.find((r) => r.status === 200)!);
    expect(await sessionsOf(a.user.id)).to.equal(sessions + 1);
  });

  it('an expired mfaToken (past identity.mfaTokenTtl) is refused', async function () {
    const a = await enrolled('expired');
    const { mfaToken, expiresIn } = await firstStep(a);
    clock.advance(expiresIn + 1);
    await expectProblem(await post('/v1/auth/mfa/verify', { mfaToken, code: code(a) }), 401, 'invalid_mfa_token');
  });

  it('a tampered, truncated, forged or foreign-secret mfaToken is refused before any code is judged', async function () {
    const a = await enrolled('forged');
    const { mfaToken } = await firstStep(a);
    const body = mfaToken.slice(4);
    const flip = (s: string, i: number) => s.slice(0, i) + (s[i] === 'A' ? 'B' : 'A') + s.slice(i + 1);
    const foreign = new MfaTokens({
      keys: new ServerSecrets('another-secret-0123456789-abcdefghijklmnopqrstuvwxyz').macKeys('authctl/v1/mfa-token'),
      repo: app.container.repos.mfaTokenUses,
      clock,
      region: 'local',
      ttlSeconds: 300,
    }).issue(a.user.id, 'pwd', 'verify').token;
    const attempts = [
      `mfa_${flip(body, 20)}`, // the ciphertext
      `mfa_${flip(body, body.length - 3)}`, // the tag
      `mfa_${flip(body, 2)}`, // the IV
      mfaToken.slice(0, -4),
      `mfa_${randomBytes(120).toString('base64url')}`,
      `mfa_${body}=`,
      foreign,
      body,
    ];
    for (const forged of attempts) {
      await expectProblem(await post('/v1/auth/mfa/verify', { mfaToken: forged, code: code(a) }), 401, 'invalid_mfa_token');
    }
    // The real one still works: nothing above spent it.
    await expectTokenResponse(await post('/v1/auth/mfa/verify', { mfaToken, code: code(a) }));
  });

  it("another user's mfaToken does not take this user's code (the token is bound to its user)", async function () {
    const a = await enrolled('bound-a');
    const b = await enrolled('bound-b');
    const { mfaToken } = await firstStep(a);
    await expectProblem(await post('/v1/auth/mfa/verify', { mfaToken, code: code(b) }), 400, 'invalid_code');
  });

  it('an mfaToken is no Bearer token (/v1/me, logout), no refresh token, and a verify token does not enrol', async function () {
    const a = await enrolled('bearer');
    const { mfaToken } = await firstStep(a);
    await expectInvalidToken(await app.request('/v1/me', { token: mfaToken }));
    await expectInvalidToken(await app.request('/v1/verify', { token: mfaToken }));
    await expectInvalidToken(await app.request('/v1/auth/logout', { method: 'POST', token: mfaToken }));
    await expectProblem(await refresh(app, mfaToken), 401, 'invalid_refresh_token');
    await expectProblem(await app.request('/v1/me/mfa/totp', { method: 'POST', token: mfaToken }), 401, 'invalid_mfa_token');
    // None of that spent it.
    await expectTokenResponse(await post('/v1/auth/mfa/verify', { mfaToken, code: code(a) }));
  });

  it('needs exactly one of code and recoveryCode', async function () {
    const a = await enrolled('body');
    const { mfaToken } = await firstStep(a);
    await expectInvalidRequest(await post('/v1/auth/mfa/verify', { mfaToken }));
    await expectInvalidRequest(await post('/v1/auth/mfa/verify', { mfaToken, code: code(a), recoveryCode: a.recoveryCodes[0] }));
    await expectInvalidRequest(await post('/v1/auth/mfa/verify', { mfaToken, code: '12345' }));
    await expectInvalidRequest(await post('/v1/auth/mfa/verify', { code: code(a) }));
  });

  it("wrong codes count toward the account's login limits: 429 with Retry-After, then the password login is throttled too", async function () {
    const a = await enrolled('brute');
    const { mfaToken } = await firstStep(a);
    const { freeFailures } = app.container.config.rateLimit;
    const right = code(a);
    let limited: Response | undefined;
    for (let i = 0; i <= freeFailures + 1 && !limited; i++) {
      const guess = String((Number(right) + 1 + i) % 1_000_000).padStart(6, '0');
      const res = await post('/v1/auth/mfa/verify', { mfaToken, code: guess });
      if (res.status === 429) limited = res;
      else await expectProblem(res, 400, 'invalid_code');
    }
    expect(limited, 'throttled').to.not.equal(undefined);
    await expectProblem(limited!, 429, 'rate_limited');
    expect(Number(limited!.headers.get('retry-after'))).to.be.greaterThan(0);
    // Even the right code is refused while the account is held off, and so is the password.
    await expectProblem(await post('/v1/auth/mfa/verify', { mfaToken, code: right }), 429, 'rate_limited');
    await expectProblem(await post('/v1/auth/login', { username: a.username, password: a.password }), 429, 'rate_limited');
  });

  it('a disabled account stops between the two steps', async function () {
    const a = await enrolled('disabled');
    const { mfaToken } = await firstStep(a);
    await app.container.users.setStatus(a.user.id, 'disabled');
    await expectProblem(await post('/v1/auth/mfa/verify', { mfaToken, code: code(a) }), 403, 'account_disabled');
  });

  describe('step-up with a second factor', function () {
    it('POST /v1/auth/reauthenticate needs the code as well (400 naming code without it), and renews auth_time at aal2', async function () {
      const a = await enrolled('reauth');
      const tokens = await expectTokenResponse(await post('/v1/auth/mfa/verify', { mfaToken: (await firstStep(a)).mfaToken, code: code(a) }));
      clock.advance(app.container.config.identity.reauthWindow + 1);
      await expectInvalidRequest(await post('/v1/auth/reauthenticate', { password: a.password }, tokens.accessToken), 'code');
      await expectProblem(
        await post('/v1/auth/reauthenticate', { password: a.password, code: '000000' === code(a) ? '111111' : '000000' }, tokens.accessToken),
        400,
        'invalid_code',
      );
      await expectProblem(await post('/v1/auth/reauthenticate', { password: `${a.password}x`, code: code(a) }, tokens.accessToken), 401, 'invalid_credentials');
      const res = await post('/v1/auth/reauthenticate', { password: a.password, code: code(a) }, tokens.accessToken);
      expect(res.status, await res.clone().text()).to.equal(200);
      const renewed = (await res.json()) as { accessToken: string };
      expect(authClaims(renewed)).to.deep.equal({ auth_time: now(), amr: ['pwd', 'otp', 'mfa'], acr: 'aal2' });
      // The same code again (its step is spent) does not reauthenticate twice.
      await expectProblem(await post('/v1/auth/reauthenticate', { password: a.password, code: code(a) }, tokens.accessToken), 400, 'invalid_code');
    });
  });
});

describe('two-step login under identity.mfa: required', function () {
  this.timeout(60_000);
  const clock = new ManualClock();
  let app: TestApp;

  before(async function () {
    app = await startTestApp('mfa_required', { clock, overrides: { identity: { mfa: 'required' } } });
  });
  after(async function () {
    await app?.close();
  });

  const post = (path: string, json: unknown, token?: string) => app.request(path, { method: 'POST', json, ...(token ? { token } : {}) });

  it('a user without a factor gets only an enrolment token; enrolling with it gives tokens (amr pwd, otp, mfa), and the next login asks for the code', async function () {
    const a = await createAccount(app, 'required');
    const challenge = await expectChallenge(await post('/v1/auth/login', { username: a.username, password: a.password }));
    expect(challenge).to.deep.include({ factors: [], enrolmentRequired: true });
    expect(await app.container.sessions.listForUser(a.user.id)).to.have.length(0);

    // Bypass attempts: nothing but enrolment accepts it.
    const enrolToken = challenge.mfaToken;
    await expectInvalidToken(await app.request('/v1/me', { token: enrolToken }));
    await expectInvalidToken(await app.request('/v1/auth/logout-all', { method: 'POST', token: enrolToken }));
    await expectProblem(await refresh(app, enrolToken), 401, 'invalid_refresh_token');
    await expectProblem(await post('/v1/auth/mfa/verify', { mfaToken: enrolToken, code: '123456' }), 401, 'invalid_mfa_token');
    await expectProblem(await post('/v1/auth/reauthenticate', { password: a.password }, enrolToken), 401, 'invalid_token');

    const { confirmed, secret } = await enrolTotp(app, enrolToken, clock);
    const tokens = confirmed.tokens as TokenResponse;
    expect(tokens.user.id).to.equal(a.user.id);
    expect(authClaims(tokens)).to.deep.include({ amr: ['pwd', 'otp', 'mfa'], acr: 'aal2' });
    expect((await app.request('/v1/me', { token: tokens.accessToken })).status).to.equal(200);

    // The enrolment token is spent, and its user has a factor now: it enrols nothing more.
    await expectProblem(await app.request('/v1/me/mfa/totp', { method: 'POST', token: enrolToken }), 401, 'invalid_mfa_token');

    clock.advance(STEP);
    const next = await expectChallenge(await post('/v1/auth/login', { username: a.username, password: a.password }));
    expect(next).to.deep.include({ factors: ['totp', 'recovery_code'], enrolmentRequired: false });
    // A verify token does not enrol, and an enrolment token does not verify.
    await expectProblem(await app.request('/v1/me/mfa/totp', { method: 'POST', token: next.mfaToken }), 401, 'invalid_mfa_token');
    await expectTokenResponse(await post('/v1/auth/mfa/verify', { mfaToken: next.mfaToken, code: totpAt(secret, clock.now()) }));
  });

  it('an enrolment token expires like any mfaToken', async function () {
    const a = await createAccount(app, 'required-exp');
    const challenge = await expectChallenge(await post('/v1/auth/login', { username: a.username, password: a.password }));
    clock.advance(challenge.expiresIn + 1);
    await expectProblem(await app.request('/v1/me/mfa/totp', { method: 'POST', token: challenge.mfaToken }), 401, 'invalid_mfa_token');
  });
});

describe('two-step login under identity.mfa: off', function () {
  let app: TestApp;

  before(async function () {
    app = await startTestApp('mfa_off', { overrides: { identity: { mfa: 'off' } } });
  });
  after(async function () {
    await app?.close();
  });

  it('logins answer tokens and POST /v1/auth/mfa/verify is 404', async function () {
    const a = await createAccount(app, 'off');
    await login(app, a.username, a.password);
    await expectProblem(await app.request('/v1/auth/mfa/verify', { method: 'POST', json: { mfaToken: 'mfa_x', code: '123456' } }), 404, 'not_found');
  });
});

describe('two-step login while PostgreSQL is down', function () {
  this.timeout(60_000);
  const clock = new ManualClock();
  let pgDb: TestDatabase;
  let proxy: TcpProxy;
  let app: TestApp;

  before(async function () {
    pgDb = await createTestDatabase('mfa_db_outage');
    proxy = new TcpProxy({ host: '127.0.0.1', port: Number(new URL(pgDb.url).port || 5432) });
    await proxy.start();
    const proxied = new URL(pgDb.url);
    proxied.port = String(proxy.port);
    await migrateDatabase(proxied.toString());
    app = await startTestApp('mfa_db_outage', {
      clock,
      db: { ...pgDb, url: proxied.toString() },
      migrate: false,
      overrides: { database: { connectTimeoutMs: 500, statementTimeoutMs: 1_000 } },
    });
  });
  after(async function () {
    await app?.close();
    await proxy?.stop();
    await pgDb?.drop();
  });

  it('POST /v1/auth/mfa/verify is 503 with Retry-After, and the mfaToken works once the database is back', async function () {
    const a = await createAccount(app, 'outage');
    const { secret } = await enrolTotp(app, (await login(app, a.username, a.password)).accessToken, clock);
    clock.advance(STEP);
    const { mfaToken } = await expectChallenge(await app.request('/v1/auth/login', { method: 'POST', json: { username: a.username, password: a.password } }));
    await proxy.stop();
    const down = await app.request('/v1/auth/mfa/verify', { method: 'POST', json: { mfaToken, code: totpAt(secret, clock.now()) } });
    await expectProblem(down, 503, 'unavailable');
    expect(down.headers.get('retry-after')).to.match(/^\d+$/);
    await proxy.start();
    let tokens: Response | undefined;
    // The pool reconnects on its own; the first requests after the restart may still meet a dead
    // connection (each try on the next step's code, in case a failed one had spent its step).
    for (let i = 0; i < 8 && tokens?.status !== 200; i++) {
      tokens = await app.request('/v1/auth/mfa/verify', { method: 'POST', json: { mfaToken, code: totpAt(secret, clock.now()) } });
      if (tokens.status !== 200) {
        await expectProblem(tokens.clone(), 503, 'unavailable');
        clock.advance(STEP);
      }
    }
    await expectTokenResponse(tokens!);
  });
});
