import { expect } from 'chai';
import { decodeJwt } from 'jose';
import { loadConfig } from '../../src/config/load.js';
import { checkedConfigSchema } from '../../src/config/schema.js';
import { AppError } from '../../src/platform/errors.js';
import { expectProblem, expectTokenResponse, uniquePassword } from '../helpers/http-assert.js';
import { codeAndLink, mailQueueIdle, nextMail, poster, requestsDone, startEmailRegion, tag, type EmailRegion } from '../email/support.js';
import { allowAnotherSend, mailedCode, sendCode, signInMails, verifyCode } from './support.js';

const REDIS_URL = process.env.AUTHCTL_TEST_REDIS_URL ?? 'redis://127.0.0.1:6379';

describe('identity.otpSignup: a first e-mailed code creates the account', function () {
  this.timeout(60_000);
  let region: EmailRegion;

  before(async function () {
    region = await startEmailRegion('otp_signup', {
      cache: { redisUrl: REDIS_URL, keyPrefix: `otp-signup-${tag()}` },
      identity: { username: 'optional', otpSignup: true },
    });
  });
  after(async function () {
    await region?.close();
  });

  const post = (path: string, json: unknown, token?: string) => poster(region)(path, json, token);
  const users = (email: string) => region.app.container.db.writer<Record<string, unknown>>('users').whereRaw('lower(email) = lower(?)', [email]);

  it('an unknown address gets a code; using it creates a verified account with no username and no password', async function () {
    const email = `new${tag()}@example.com`;
    const code = await mailedCode(region, email);
    expect(await users(email), 'no account before the code is used').to.deep.equal([]);
    const [challenge] = await region.app.container.db.writer<Record<string, unknown>>('email_challenges').whereRaw('lower(email) = lower(?)', [email]);
    expect(challenge).to.include({ purpose: 'login', user_id: null });

    const session = await expectTokenResponse(await verifyCode(region, email, code));
    expect(session.user).to.include({ email, emailVerified: true, username: null });
    expect(decodeJwt(session.accessToken)).to.deep.include({ sub: session.user.id, amr: ['otp'], email_verified: true });
    const [row] = await users(email);
    expect(row).to.include({ id: session.user.id, password_hash: null, username: null, status: 'active' });
    await region.logs.settle();
    expect(region.logs.events('user.registered').map((e) => e.userId)).to.include(session.user.id);

    // The code is spent; the next code to the address signs in to the same account.
    await expectProblem(await verifyCode(region, email, code), 400, 'invalid_code');
    await allowAnotherSend(region, email);
    const again = await expectTokenResponse(await verifyCode(region, email, await mailedCode(region, email)));
    expect(again.user.id).to.equal(session.user.id);
    expect(await users(email)).to.have.length(1);
  });

  it('a password login to a password-less account is invalid_credentials, like a wrong password; so is a password change', async function () {
    const email = `nopw${tag()}@example.com`;
    const session = await expectTokenResponse(await verifyCode(region, email, await mailedCode(region, email)));
    for (const password of [uniquePassword(), 'null']) await expectProblem(await post('/v1/auth/login', { email, password }), 401, 'invalid_credentials');
    await expectProblem(
      await post('/v1/auth/password', { currentPassword: uniquePassword(), newPassword: uniquePassword() }, session.accessToken),
      401,
      'invalid_credentials',
    );
    // The admin's view says so, and listing does not trip over it.
    const shown = await region.app.container.admin.users.show(email);
    expect(shown).to.include({ email, username: null, hasPassword: false, emailVerified: true, activeSessions: 1 });
    const page = await region.app.container.admin.users.list({ limit: 1_000, search: email });
    expect(page.users.map((u) => [u.email, u.hasPassword])).to.deep.equal([[email, false]]);
  });

  it('the reset flow sets a first password: then the password logs in too', async function () {
    const email = `first${tag()}@example.com`;
    await expectTokenResponse(await verifyCode(region, email, await mailedCode(region, email)));
    const since = region.smtp.received.length;
    expect((await post('/v1/auth/password/forgot', { email })).status).to.equal(202);
    const { code } = codeAndLink(await nextMail(region.smtp, email, /reset your password/, since));
    const password = uniquePassword();
    expect((await post('/v1/auth/password/reset', { email, code, newPassword: password })).status).to.equal(204);
    const session = await expectTokenResponse(await post('/v1/auth/login', { email, password }));
    expect(decodeJwt(session.accessToken)).to.deep.include({ amr: ['pwd'] });
    expect((await region.app.container.admin.users.show(email)).hasPassword).to.equal(true);
  });

  it('a sign-up code whose address got an account meanwhile is spent (invalid_code), and the other account is untouched', async function () {
    const email = `taken${tag()}@example.com`;
    const code = await mailedCode(region, email);
    const password = uniquePassword();
    expect((await post('/v1/auth/register', { email, password })).status).to.equal(201);
    await expectProblem(await verifyCode(region, email, code), 400, 'invalid_code');
    const [challenge] = await region.app.container.db
      .writer<Record<string, unknown>>('email_challenges')
      .whereRaw('lower(email) = lower(?)', [email])
      .where({ purpose: 'login' });
    expect(challenge).to.include({ end_reason: 'superseded' });
    expect(await users(email)).to.have.length(1);
    await expectTokenResponse(await post('/v1/auth/login', { email, password }));
  });
});

describe('identity.otpSignup off (the default)', function () {
  this.timeout(60_000);
  let region: EmailRegion;

  before(async function () {
    region = await startEmailRegion('otp_signup_off', { identity: { username: 'optional' } });
  });
  after(async function () {
    await region?.close();
  });

  it('an unknown address is answered 202 and sent nothing, and no account appears', async function () {
    const email = `ghost${tag()}@example.com`;
    await sendCode(region, email);
    await requestsDone(region, { email });
    await mailQueueIdle(region);
    expect(signInMails(region.smtp, email)).to.deep.equal([]);
    expect(await region.app.container.db.writer<Record<string, unknown>>('email_challenges').whereRaw('lower(email) = lower(?)', [email])).to.deep.equal([]);
    expect(await region.app.container.db.writer('users').whereRaw('lower(email) = lower(?)', [email])).to.deep.equal([]);
  });
});

describe('identity.otpSignup configuration rules', function () {
  const paths = (input: object) => {
    const result = checkedConfigSchema.safeParse(input);
    return result.success ? [] : result.error.issues.map((i) => i.path.join('.'));
  };
  const mail = { transport: 'log', from: 'authctl <no-reply@example.com>' } as const;

  it('needs identity.email on, and identity.username "optional" (a code-made account has no username)', function () {
    expect(paths({ identity: { otpSignup: true, username: 'optional' } })).to.include('identity.otpSignup');
    expect(paths({ identity: { otpSignup: true, email: 'optional' }, mail })).to.deep.equal(['identity.otpSignup']);
    expect(paths({ identity: { otpSignup: true, email: 'optional', username: 'optional' }, mail })).to.deep.equal([]);
    let err: unknown;
    try {
      loadConfig({ env: { AUTHCTL_OTP_SIGNUP: 'true', AUTHCTL_IDENTITY_EMAIL: 'optional' }, cwd: '/nonexistent', overrides: { mail } });
    } catch (e) {
      err = e;
    }
    expect(err).to.be.instanceOf(AppError);
    expect((err as AppError).code).to.equal('bad_config');
    expect((err as AppError).detail)
      .to.include('AUTHCTL_OTP_SIGNUP')
      .and.include('identity.username "optional"');
  });
});
