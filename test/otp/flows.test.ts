import { expect } from 'chai';
import { decodeJwt } from 'jose';
import { startTestApp } from '../helpers/app.js';
import { expectProblem, expectTokenResponse, uniquePassword, type TokenResponse } from '../helpers/http-assert.js';
import { assertNoSecrets } from '../helpers/log-capture.js';
import { jobRows, mailQueueIdle, nextMail, poster, requestsDone, startEmailRegion, tag, type EmailRegion } from '../email/support.js';
import { allowAnotherSend, mailedCode, sendCode, SIGN_IN_SUBJECT, signInCode, signInMails, verifyCode, wrongCode } from './support.js';

const REDIS_URL = process.env.AUTHCTL_TEST_REDIS_URL ?? 'redis://127.0.0.1:6379';

interface ChallengeRow {
  purpose: string;
  attempts: number;
  ended_at: Date | null;
  end_reason: string | null;
}

describe('sign-in by e-mailed code (POST /v1/auth/otp/*) over HTTP and real SMTP', function () {
  this.timeout(60_000);
  let region: EmailRegion;
  /** Every code mailed, for the no-secrets check at the end. */
  const codes: string[] = [];
  /** Every token issued, for the no-secrets check at the end. */
  const tokens: TokenResponse[] = [];

  before(async function () {
    // The send limits in Redis (as in production), under this file's own prefix.
    region = await startEmailRegion('otp_flows', { cache: { redisUrl: REDIS_URL, keyPrefix: `otp-flows-${tag()}` } });
  });
  after(async function () {
    await region?.close();
  });

  const post = (path: string, json: unknown, token?: string) => poster(region)(path, json, token);
  const code = async (email: string) => {
    const c = await mailedCode(region, email);
    codes.push(c);
    return c;
  };
  const challenges = (email: string) =>
    region.app.container.db.writer<ChallengeRow>('email_challenges').whereRaw('lower(email) = lower(?)', [email]).orderBy('created_at');
  /** A user signed up with an address and a password (the address unverified). */
  async function account(prefix: string) {
    const username = `${prefix}${tag()}`;
    const email = `${username}@example.com`;
    const password = uniquePassword();
    const res = await post('/v1/auth/register', { username, email, password });
    expect(res.status, await res.clone().text()).to.equal(201);
    return { username, email, password, id: ((await res.json()) as { user: { id: string } }).user.id };
  }

  it('a code mailed to a known address signs in: amr ["otp"], acr aal1, auth_time; the address is now verified', async function () {
    const u = await account('otp');
    const started = Math.floor(Date.now() / 1000);
    const since = region.smtp.received.length;
    await sendCode(region, u.email);
    const mail = await nextMail(region.smtp, u.email, SIGN_IN_SUBJECT, since);
    expect(mail.parsed.text).to.include('10 minutes');
    const c = signInCode(mail);
    codes.push(c);
    const session = await expectTokenResponse(await verifyCode(region, u.email.toUpperCase(), c));
    tokens.push(session);
    expect(session.user).to.include({ id: u.id, email: u.email, emailVerified: true, username: u.username });
    const claims = decodeJwt(session.accessToken);
    expect(claims).to.deep.include({ sub: u.id, amr: ['otp'], acr: 'aal1', email: u.email, email_verified: true });
    expect(claims.auth_time)
      .to.be.a('number')
      .within(started - 1, Math.ceil(Date.now() / 1000));
    // A real session: refresh works, /v1/me answers.
    expect((await region.app.request('/v1/me', { token: session.accessToken })).status).to.equal(200);
    tokens.push(await expectTokenResponse(await post('/v1/auth/refresh', { refreshToken: session.refreshToken })));
    expect((await challenges(u.email).where({ purpose: 'login' })).map((r) => r.end_reason)).to.deep.equal(['used']);
    // The sign-up's verification is pointless now.
    expect((await challenges(u.email).where({ purpose: 'verify' })).map((r) => r.end_reason)).to.deep.equal(['superseded']);
    await region.logs.settle();
    expect(region.logs.events('login.succeeded').map((e) => e.userId)).to.include(u.id);
    expect(region.logs.events('email.challenge_created').filter((e) => e.userId === u.id && e.purpose === 'login')).to.have.length(1);
  });

  it('a used code replayed: 400 invalid_code', async function () {
    const u = await account('replay');
    const c = await code(u.email);
    tokens.push(await expectTokenResponse(await verifyCode(region, u.email, c)));
    await expectProblem(await verifyCode(region, u.email, c), 400, 'invalid_code');
  });

  it('an unknown address: 202 like a known one, and nothing is sent (nor any challenge written)', async function () {
    const email = `nobody${tag()}@example.com`;
    await sendCode(region, email);
    await requestsDone(region, { email });
    await mailQueueIdle(region);
    expect(signInMails(region.smtp, email)).to.deep.equal([]);
    expect(await challenges(email)).to.deep.equal([]);
    await expectProblem(await verifyCode(region, email, '123456'), 400, 'invalid_code');
  });

  it('three wrong codes and the code is dead: the right one is then invalid_code too; details count the tries left', async function () {
    const u = await account('wrong');
    const c = await code(u.email);
    const details: string[] = [];
    for (let i = 1; i <= 3; i++) details.push((await expectProblem(await verifyCode(region, u.email, wrongCode(c, i)), 400, 'invalid_code')).detail);
    expect(details[0]).to.include('2 tries left');
    expect(details[1]).to.include('1 try left');
    expect(details[2]).to.include('last try');
    await expectProblem(await verifyCode(region, u.email, c), 400, 'invalid_code');
    expect((await challenges(u.email).where({ purpose: 'login' })).map((r) => [r.end_reason, r.attempts])).to.deep.equal([['exhausted', 3]]);
  });

  it('a newer code replaces the older one (replaced): the older is invalid_code, the newer works', async function () {
    const u = await account('newer');
    const first = await code(u.email);
    // One message per address a minute (identity.sendInterval): the test gives that send back.
    await allowAnotherSend(region, u.email);
    const second = await code(u.email);
    expect(second).not.to.equal(first);
    await expectProblem(await verifyCode(region, u.email, first), 400, 'invalid_code');
    tokens.push(await expectTokenResponse(await verifyCode(region, u.email, second)));
    expect((await challenges(u.email).where({ purpose: 'login' })).map((r) => r.end_reason)).to.deep.equal(['replaced', 'used']);
  });

  it('two concurrent uses of one code: exactly one signs in, the other is invalid_code', async function () {
    const u = await account('race');
    const c = await code(u.email);
    const answers = await Promise.all([verifyCode(region, u.email, c), verifyCode(region, u.email, c), verifyCode(region, u.email, c)]);
    const ok = answers.filter((r) => r.status === 200);
    expect(ok, 'one success').to.have.length(1);
    tokens.push(await expectTokenResponse(ok[0]!));
    for (const r of answers.filter((a) => a.status !== 200)) await expectProblem(r, 400, 'invalid_code');
    const sessions = await region.app.container.db.writer('sessions').where({ user_id: u.id });
    expect(sessions, 'one session').to.have.length(1);
  });

  it('a second send within identity.sendInterval: 202 and nothing sent (the first code still works)', async function () {
    const u = await account('limit');
    const since = region.smtp.received.length;
    const c = await code(u.email);
    await sendCode(region, u.email);
    // Over the limit nothing is even enqueued: the one request the worker saw is the first.
    await requestsDone(region, { email: u.email }, 1);
    await mailQueueIdle(region);
    expect(signInMails(region.smtp, u.email, since)).to.have.length(1);
    await region.logs.settle();
    expect(region.logs.events('mail.limited').length).to.be.at.least(1);
    tokens.push(await expectTokenResponse(await verifyCode(region, u.email, c)));
  });

  it('a disabled account is sent nothing; a code sent before it was disabled answers 403 account_disabled', async function () {
    const u = await account('off');
    const c = await code(u.email);
    await region.app.container.users.setStatus(u.id, 'disabled');
    await expectProblem(await verifyCode(region, u.email, c), 403, 'account_disabled');
    await allowAnotherSend(region, u.email);
    const since = region.smtp.received.length;
    await sendCode(region, u.email);
    // Over the limit nothing is even enqueued: the one request the worker saw is the first.
    await requestsDone(region, { email: u.email }, 1);
    await mailQueueIdle(region);
    expect(signInMails(region.smtp, u.email, since)).to.deep.equal([]);
  });

  it('a code is not a verification code, nor the other way round', async function () {
    const u = await account('cross');
    const c = await code(u.email);
    await expectProblem(await post('/v1/auth/email/verify', { email: u.email, code: c }), 400, 'invalid_code');
    await expectProblem(await post('/v1/auth/password/reset', { email: u.email, code: c, newPassword: uniquePassword() }), 400, 'invalid_code');
    tokens.push(await expectTokenResponse(await verifyCode(region, u.email, c)));
  });

  it('malformed bodies are 400 invalid_request and count no try', async function () {
    for (const body of [{}, { email: 'a@example.com', code: '12345' }, { email: 'a@example.com', code: 123456 }, { email: 'x@example.com', extra: 1 }]) {
      await expectProblem(await post('/v1/auth/otp/verify', body), 400, 'invalid_request');
    }
    await expectProblem(await post('/v1/auth/otp/send', { email: 'not an address' }), 400, 'invalid_request');
  });

  it('no code, token or message body in the logs or job rows', async function () {
    await mailQueueIdle(region);
    expect(codes.length).to.be.at.least(6);
    const secrets: Array<[string, string]> = [
      ...codes.map((c, i): [string, string] => [`code ${i}`, c]),
      ...tokens.flatMap((t, i): Array<[string, string]> => [
        [`access token ${i}`, t.accessToken],
        [`refresh token ${i}`, t.refreshToken],
      ]),
    ];
    await region.logs.settle();
    assertNoSecrets(region.logs.lines, secrets);
    assertNoSecrets(
      (await jobRows(region, ['mail', 'email-request'])).map((r) => JSON.stringify(r.data)),
      secrets,
    );
  });
});

describe('sign-in by e-mailed code with identity.email "off"', function () {
  it('both routes answer 404 not_found', async function () {
    const app = await startTestApp('otp_email_off');
    try {
      await expectProblem(await app.request('/v1/auth/otp/send', { method: 'POST', json: { email: 'a@example.com' } }), 404, 'not_found');
      await expectProblem(await app.request('/v1/auth/otp/verify', { method: 'POST', json: { email: 'a@example.com', code: '123456' } }), 404, 'not_found');
    } finally {
      await app.close();
    }
  });
});

describe('sign-in by e-mailed code under regions.loginPolicy "home"', function () {
  this.timeout(60_000);
  let region: EmailRegion;

  before(async function () {
    // A peer that is never reached: the policy only needs to know where to send the user.
    region = await startEmailRegion('otp_home_policy', {
      regions: { loginPolicy: 'home', peers: [{ name: 'far', url: 'http://127.0.0.1:9/', secret: 'a-peer-secret-of-at-least-32-characters' }] },
    });
  });
  after(async function () {
    await region?.close();
  });

  it('a user homed in another region is sent there (421 wrong_region) before the code is spent: it still works once the user is homed here', async function () {
    const username = `far${tag()}`;
    const email = `${username}@example.com`;
    expect((await poster(region)('/v1/auth/register', { username, email, password: uniquePassword() })).status).to.equal(201);
    const users = () => region.app.container.db.writer('users').whereRaw('lower(email) = lower(?)', [email]);
    await users().update({ home_region: 'far' });
    const code = await mailedCode(region, email);

    const res = await verifyCode(region, email, code);
    expect(res.status, await res.clone().text()).to.equal(421);
    expect(await res.json()).to.include({ code: 'wrong_region', region: 'far', location: 'http://127.0.0.1:9/v1/auth/login' });
    const [challenge] = await region.app.container.db
      .writer<ChallengeRow>('email_challenges')
      .whereRaw('lower(email) = lower(?)', [email])
      .where({ purpose: 'login' });
    expect(challenge, 'the code is not spent').to.include({ ended_at: null });

    // Where the policy lets the user in (here, once homed here), the same code signs in.
    await users().update({ home_region: region.app.container.config.region });
    await expectTokenResponse(await verifyCode(region, email, code));
  });
});
