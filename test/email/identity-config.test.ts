import { randomBytes } from 'node:crypto';
import { expect } from 'chai';
import { decodeJwt } from 'jose';
import { loadConfig } from '../../src/config/load.js';
import { checkedConfigSchema, type ConfigInput } from '../../src/config/schema.js';
import { AppError } from '../../src/platform/errors.js';
import { startTestApp, type TestApp } from '../helpers/app.js';
import { expectInvalidRequest, expectProblem, expectTokenResponse, expectUserView, uniquePassword, type UserView } from '../helpers/http-assert.js';
import { codeAndLink, mailQueueIdle, nextMail, startEmailRegion, type EmailRegion } from './support.js';

const tag = () => randomBytes(4).toString('hex');

async function userCount(app: TestApp): Promise<number> {
  const row = await app.container.db.writer('users').count<{ count: string }[]>({ count: '*' }).first();
  return Number(row?.count);
}

describe('identity.requireVerifiedEmail', function () {
  this.timeout(60_000);
  let region: EmailRegion;

  before(async function () {
    region = await startEmailRegion('email_require_verified', { identity: { requireVerifiedEmail: true } });
  });
  after(async function () {
    await region?.close();
  });

  const post = (path: string, json: unknown, token?: string) => region.app.request(path, { method: 'POST', json, ...(token ? { token } : {}) });

  async function signUp(prefix: string) {
    const username = `${prefix}${tag()}`;
    const email = `${username}@example.com`;
    const password = uniquePassword();
    const since = region.smtp.received.length;
    const res = await post('/v1/auth/register', { username, email, password });
    expect(res.status, await res.clone().text()).to.equal(201);
    const { user } = (await res.json()) as { user: UserView };
    return { username, email, password, user, first: await nextMail(region.smtp, email, /verification code/, since) };
  }

  it('login of an unverified user: 403 email_not_verified with the right password only (wrong one: 401); verified: 200', async function () {
    const u = await signUp('unv');
    await expectProblem(await post('/v1/auth/login', { email: u.email, password: uniquePassword() }), 401, 'invalid_credentials');
    await expectProblem(await post('/v1/auth/login', { username: u.username, password: uniquePassword() }), 401, 'invalid_credentials');
    await expectProblem(await post('/v1/auth/login', { email: u.email, password: u.password }), 403, 'email_not_verified');
    await expectProblem(await post('/v1/auth/login', { username: u.username, password: u.password }), 403, 'email_not_verified');
    expect((await post('/v1/auth/email/verify', { email: u.email, code: codeAndLink(u.first).code })).status).to.equal(204);
    const session = await expectTokenResponse(await post('/v1/auth/login', { email: u.email, password: u.password }));
    expect(decodeJwt(session.accessToken)).to.include({ email: u.email, email_verified: true });
  });

  it('sign-up with a taken address: 201 with a body like a fresh one, no new user, and the owner gets a notice', async function () {
    const owner = await signUp('own');
    const before = await userCount(region.app);
    const since = region.smtp.received.length;
    const res = await post('/v1/auth/register', {
      username: `copy${tag()}`,
      email: owner.email.toUpperCase().replace('EXAMPLE.COM', 'example.com'),
      password: uniquePassword(),
    });
    expect(res.status).to.equal(201);
    const { user } = (await res.json()) as { user: UserView };
    expectUserView(user);
    expect(Object.keys(user).sort()).to.deep.equal(Object.keys(owner.user).sort());
    expect(user.id).to.not.equal(owner.user.id);
    expect(user.emailVerified).to.equal(false);
    const notice = await nextMail(region.smtp, owner.email, /someone tried to sign up/, since);
    expect(notice.envelopeTo, 'to the address as the account stores it').to.deep.equal([owner.email]);
    expect(notice.parsed.text).to.contain('No new account was created');
    expect(notice.parsed.text, 'the notice carries no code').to.not.match(/^\s*\d{6}\s*$/m);
    expect(await userCount(region.app)).to.equal(before);
    const rows = await region.app.container.db.writer('users').where({ id: user.id });
    expect(rows).to.deep.equal([]);
    await mailQueueIdle(region);
    expect(region.smtp.received.slice(since).filter((m) => /verification code/.test(m.parsed.subject ?? ''))).to.deep.equal([]);
  });

  it('POST /v1/me/email to a taken address: 202 like any other, and nothing is sent', async function () {
    const a = await signUp('hold');
    const b = await signUp('want');
    expect((await post('/v1/auth/email/verify', { email: b.email, code: codeAndLink(b.first).code })).status).to.equal(204);
    const session = await expectTokenResponse(await post('/v1/auth/login', { email: b.email, password: b.password }));
    const since = region.smtp.received.length;
    expect((await post('/v1/me/email', { email: a.email, currentPassword: b.password }, session.accessToken)).status).to.equal(202);
    await mailQueueIdle(region);
    expect(region.smtp.received.slice(since).map((m) => m.parsed.subject)).to.deep.equal([]);
  });
});

describe('identity.email "required" with identity.username "optional"', function () {
  this.timeout(60_000);
  let region: EmailRegion;

  before(async function () {
    region = await startEmailRegion('email_required', { identity: { email: 'required', username: 'optional' } });
  });
  after(async function () {
    await region?.close();
  });

  const post = (path: string, json: unknown) => region.app.request(path, { method: 'POST', json });

  it('sign-up without an address: 400 naming email', async function () {
    await expectInvalidRequest(await post('/v1/auth/register', { username: `noaddr${tag()}`, password: uniquePassword() }), 'email');
    await expectInvalidRequest(await post('/v1/auth/register', { password: uniquePassword() }), 'email');
  });

  it('sign-up with an address alone: 201 with username null; login by address; the token has email and no preferred_username', async function () {
    const email = `solo${tag()}@example.com`;
    const password = uniquePassword();
    const res = await post('/v1/auth/register', { email, password });
    expect(res.status, await res.clone().text()).to.equal(201);
    const { user } = (await res.json()) as { user: UserView };
    expect(user).to.include({ username: null, email, emailVerified: false });
    const session = await expectTokenResponse(await post('/v1/auth/login', { email, password }));
    const claims = decodeJwt(session.accessToken);
    expect(claims).to.include({ sub: user.id, email, email_verified: false });
    expect(claims).to.not.have.property('preferred_username');
    const me = (await (await region.app.request('/v1/me', { token: session.accessToken })).json()) as { user: UserView };
    expect(me.user).to.include({ id: user.id, username: null, email });
    // A reset works for an account without a username (the address is its only name).
    const since = region.smtp.received.length;
    expect((await post('/v1/auth/password/forgot', { email })).status).to.equal(202);
    const { token } = codeAndLink(await nextMail(region.smtp, email, /reset your password/, since));
    const newPassword = uniquePassword();
    expect((await post('/v1/auth/password/reset', { token, newPassword })).status).to.equal(204);
    await expectTokenResponse(await post('/v1/auth/login', { email, password: newPassword }));
  });
});

describe('identity.email "off" (the default)', function () {
  this.timeout(30_000);
  let app: TestApp;

  before(async function () {
    app = await startTestApp('email_off');
  });
  after(async function () {
    await app?.close();
  });

  const post = (path: string, json: unknown) => app.request(path, { method: 'POST', json });

  it('sign-up with an address: 400 naming email; without one it works and has email null', async function () {
    await expectInvalidRequest(
      await post('/v1/auth/register', { username: `off${tag()}`, email: `off${tag()}@example.com`, password: uniquePassword() }),
      'email',
    );
    const res = await post('/v1/auth/register', { username: `off${tag()}`, password: uniquePassword() });
    expect(res.status).to.equal(201);
    expect(((await res.json()) as { user: UserView }).user).to.include({ email: null, emailVerified: false });
  });

  it('the e-mail flows are 404 not_found', async function () {
    await expectProblem(await post('/v1/auth/password/forgot', { email: 'a@example.com' }), 404, 'not_found');
    await expectProblem(await post('/v1/auth/password/forgot', { username: 'someone' }), 404, 'not_found');
    await expectProblem(await post('/v1/auth/email/verify/send', { email: 'a@example.com' }), 404, 'not_found');
    await expectProblem(await post('/v1/auth/email/verify', { email: 'a@example.com', code: '123456' }), 404, 'not_found');
    await expectProblem(await post('/v1/auth/password/reset', { email: 'a@example.com', code: '123456', newPassword: uniquePassword() }), 404, 'not_found');
    await expectProblem(await app.request('/v1/auth/email/verify?token=x'), 404, 'not_found');
    await expectProblem(await app.request('/v1/auth/password/reset?token=x'), 404, 'not_found');
  });
});

describe('identity config: the rules across sections', function () {
  const load = (overrides: ConfigInput) => loadConfig({ env: {}, cwd: '/nonexistent', overrides });
  const failure = (overrides: ConfigInput): AppError => {
    try {
      load(overrides);
    } catch (err) {
      if (err instanceof AppError) return err;
      throw err;
    }
    expect.fail(`accepted: ${JSON.stringify(overrides)}`);
  };
  const paths = (input: ConfigInput) => {
    const result = checkedConfigSchema.safeParse(input);
    return result.success ? [] : result.error.issues.map((i) => i.path.join('.'));
  };

  it('identity.email on with mail.transport "off" fails naming mail.transport', function () {
    for (const email of ['optional', 'required'] as const) {
      expect(paths({ identity: { email } })).to.deep.equal(['mail.transport']);
      const err = failure({ identity: { email } });
      expect(err.code).to.equal('bad_config');
      expect(err.detail).to.contain('mail.transport');
    }
  });

  it('identity.username "optional" with identity.email "off" fails naming identity.username', function () {
    expect(paths({ identity: { username: 'optional' } })).to.deep.equal(['identity.username']);
    expect(failure({ identity: { username: 'optional', email: 'off' } }).detail).to.contain('identity.username');
  });

  it('requireVerifiedEmail with identity.email "off" fails naming it', function () {
    expect(paths({ identity: { requireVerifiedEmail: true } })).to.deep.equal(['identity.requireVerifiedEmail']);
  });

  it('the valid combinations load', function () {
    const mail = { transport: 'log', from: 'no-reply@example.com' } as const;
    expect(paths({})).to.deep.equal([]);
    expect(paths({ identity: { email: 'optional' }, mail })).to.deep.equal([]);
    expect(paths({ identity: { email: 'required', username: 'optional', requireVerifiedEmail: true }, mail })).to.deep.equal([]);
    expect(load({ identity: { email: 'required', username: 'optional' }, mail }).identity).to.include({ email: 'required', username: 'optional' });
  });
});
