import { expect } from 'chai';
import { decodeJwt } from 'jose';
import { expectProblem, expectTokenResponse, uniquePassword } from '../helpers/http-assert.js';
import { codeAndLink, nextMail, startEmailRegion, type EmailRegion } from './support.js';

describe('e-mail flows over HTTP and real SMTP', function () {
  this.timeout(60_000);
  let region: EmailRegion;

  before(async function () {
    region = await startEmailRegion('email_flows');
  });
  after(async function () {
    await region?.close();
  });

  const post = (path: string, json: unknown, token?: string) => region.app.request(path, { method: 'POST', json, ...(token ? { token } : {}) });

  it('sign-up with an address mails a code; the code verifies it; the token then says email_verified', async function () {
    const email = `Ann.${Date.now()}@Example.COM`;
    const password = uniquePassword();
    const since = region.smtp.received.length;
    const res = await post('/v1/auth/register', { username: `ann${Date.now()}`, email, password });
    expect(res.status).to.equal(201);
    const { user } = (await res.json()) as { user: { email: string; emailVerified: boolean } };
    const stored = email.replace('Example.COM', 'example.com');
    expect(user.email).to.equal(stored);
    expect(user.emailVerified).to.equal(false);

    const mail = await nextMail(region.smtp, stored, /verification code/, since);
    const { code } = codeAndLink(mail);
    const before = await expectTokenResponse(await post('/v1/auth/login', { email: email.toLowerCase(), password }));
    expect(decodeJwt(before.accessToken)).to.include({ email: stored, email_verified: false });

    expect((await post('/v1/auth/email/verify', { email: stored, code })).status).to.equal(204);
    const after = await expectTokenResponse(await post('/v1/auth/login', { email: stored, password }));
    expect(decodeJwt(after.accessToken)).to.include({ email: stored, email_verified: true });
    const me = (await (await region.app.request('/v1/me', { token: after.accessToken })).json()) as { user: { emailVerified: boolean } };
    expect(me.user.emailVerified).to.equal(true);
    // Single use.
    await expectProblem(await post('/v1/auth/email/verify', { email: stored, code }), 400, 'invalid_code');
  });

  it('forgot → 202 → the link resets the password, revokes sessions, and the link is spent', async function () {
    const email = `bo.${Date.now()}@example.com`;
    const password = uniquePassword();
    expect((await post('/v1/auth/register', { username: `bo${Date.now()}`, email, password })).status).to.equal(201);
    const session = await expectTokenResponse(await post('/v1/auth/login', { email, password }));
    const since = region.smtp.received.length;
    const forgot = await post('/v1/auth/password/forgot', { email });
    expect(forgot.status).to.equal(202);
    const mail = await nextMail(region.smtp, email, /reset your password/, since);
    const { token, link } = codeAndLink(mail);
    // A GET on the link shows a form and spends nothing.
    const page = await fetch(link.replace(/^https?:\/\/[^/]+/, region.app.url));
    expect(page.status).to.equal(200);
    expect(await page.text()).to.contain('name="newPassword"');
    const newPassword = uniquePassword();
    expect((await post('/v1/auth/password/reset', { token, newPassword })).status).to.equal(204);
    await expectProblem(await post('/v1/auth/password/reset', { token, newPassword: uniquePassword() }), 400, 'invalid_code');
    await expectProblem(await post('/v1/auth/refresh', { refreshToken: session.refreshToken }), 401, 'invalid_refresh_token');
    await expectTokenResponse(await post('/v1/auth/login', { email, password: newPassword }));
    await nextMail(region.smtp, email, /password was changed/, since);
  });
});
