import { expect } from 'chai';
import { decodeJwt } from 'jose';
import { expectProblem, expectTokenResponse, uniquePassword, type UserView } from '../helpers/http-assert.js';
import { assertNoSecrets } from '../helpers/log-capture.js';
import type { Received } from '../mail/support.js';
import {
  codeAndLink,
  poster,
  signUp as signUpIn,
  tag,
  jobRows,
  local,
  mailQueueIdle,
  nextMail,
  requestsDone,
  startEmailRegion,
  type EmailRegion,
} from './support.js';

describe('e-mail flows over HTTP and real SMTP', function () {
  this.timeout(60_000);
  let region: EmailRegion;

  before(async function () {
    region = await startEmailRegion('email_flows');
  });
  after(async function () {
    await region?.close();
  });

  const post = (path: string, json: unknown, token?: string) => poster(region)(path, json, token);
  const postForm = (path: string, fields: Record<string, string>) => region.app.request(path, { method: 'POST', body: new URLSearchParams(fields) });
  /** Every message with a code, for the no-secrets checks at the end. */
  const coded: Received[] = [];
  const mail = async (to: string, subject: RegExp, since: number) => {
    const m = await nextMail(region.smtp, to, subject, since);
    if (/verification code|reset your password/.test(m.parsed.subject ?? '')) coded.push(m);
    return m;
  };

  const signUp = (prefix: string) => signUpIn(region, prefix, mail);

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

  it('verification by link: the GET page only shows a form (verifies nothing); its form POST verifies and answers HTML', async function () {
    const u = await signUp('link');
    const { token, link } = codeAndLink(u.first);
    expect(new URL(link).pathname).to.equal('/v1/auth/email/verify');
    const page = await fetch(local(region, link));
    expect(page.status).to.equal(200);
    expect(page.headers.get('content-type')).to.match(/^text\/html/);
    expect(page.headers.get('cache-control')).to.equal('no-store');
    const html = await page.text();
    expect(html).to.match(/<form method="post"/);
    expect(html).to.contain(`name="token" value="${token}"`);
    const unverified = await expectTokenResponse(await post('/v1/auth/login', { email: u.email, password: u.password }));
    expect(decodeJwt(unverified.accessToken), 'the GET verified nothing').to.include({ email_verified: false });

    const confirmed = await postForm('/v1/auth/email/verify', { token });
    expect(confirmed.status).to.equal(200);
    expect(confirmed.headers.get('content-type')).to.match(/^text\/html/);
    expect(await confirmed.text()).to.contain('Your e-mail address is confirmed');
    const verified = await expectTokenResponse(await post('/v1/auth/login', { email: u.email, password: u.password }));
    expect(decodeJwt(verified.accessToken)).to.include({ email_verified: true });
    // Spent: the same form again is an HTML page with the error, not a success.
    const again = await postForm('/v1/auth/email/verify', { token });
    expect(again.status).to.equal(400);
    expect(await again.text()).to.not.contain('Your e-mail address is confirmed');
  });

  it('resend with a Bearer token: a new code replaces the old one (the old code and link are invalid_code)', async function () {
    const u = await signUp('resend');
    const old = codeAndLink(u.first);
    const session = await expectTokenResponse(await post('/v1/auth/login', { username: u.username, password: u.password }));
    const since = region.smtp.received.length;
    const sent = await post('/v1/auth/email/verify/send', {}, session.accessToken);
    expect(sent.status).to.equal(202);
    const fresh = codeAndLink(await mail(u.email, /verification code/, since));
    expect(fresh.token).to.not.equal(old.token);
    await expectProblem(await post('/v1/auth/email/verify', { token: old.token }), 400, 'invalid_code');
    if (old.code !== fresh.code) await expectProblem(await post('/v1/auth/email/verify', { email: u.email, code: old.code }), 400, 'invalid_code');
    expect((await post('/v1/auth/email/verify', { email: u.email, code: fresh.code })).status).to.equal(204);
    // Nothing left to verify.
    await expectProblem(await post('/v1/auth/email/verify/send', {}, session.accessToken), 409, 'conflict');
  });

  it('anonymous verify/send: 202 for an unknown address and no mail; for a known unverified one, a new code', async function () {
    const unknown = `nobody${tag()}@example.com`;
    const res = await post('/v1/auth/email/verify/send', { email: unknown });
    expect(res.status).to.equal(202);
    expect(await res.json()).to.deep.equal({ status: 'accepted' });

    const u = await signUp('anon');
    const since = region.smtp.received.length;
    const known = await post('/v1/auth/email/verify/send', { email: u.email.toUpperCase().replace('EXAMPLE.COM', 'example.com') });
    expect(known.status).to.equal(202);
    expect(await known.json()).to.deep.equal({ status: 'accepted' });
    await mail(u.email, /verification code/, since);

    await requestsDone(region, { email: unknown });
    await mailQueueIdle(region);
    expect(region.smtp.received.filter((m) => m.envelopeTo.includes(unknown))).to.deep.equal([]);
    const queued = (await jobRows(region, ['mail'])).filter((r) => JSON.stringify(r.data).includes(unknown));
    expect(queued, 'no mail job for the unknown address').to.deep.equal([]);
  });

  it("reset by e-mail and code; forgot by username mails the account's address", async function () {
    const u = await signUp('rcode');
    let since = region.smtp.received.length;
    expect((await post('/v1/auth/password/forgot', { email: u.email })).status).to.equal(202);
    const { code } = codeAndLink(await mail(u.email, /reset your password/, since));
    const newPassword = uniquePassword();
    expect((await post('/v1/auth/password/reset', { email: u.email, code, newPassword })).status).to.equal(204);
    await expectTokenResponse(await post('/v1/auth/login', { username: u.username, password: newPassword }));
    await expectProblem(await post('/v1/auth/login', { username: u.username, password: u.password }), 401, 'invalid_credentials');
    // The code proved the address.
    const me = await expectTokenResponse(await post('/v1/auth/login', { email: u.email, password: newPassword }));
    expect(decodeJwt(me.accessToken)).to.include({ email_verified: true });

    const v = await signUp('rname');
    since = region.smtp.received.length;
    const forgot = await post('/v1/auth/password/forgot', { username: v.username.toUpperCase() });
    expect(forgot.status).to.equal(202);
    const byName = codeAndLink(await mail(v.email, /reset your password/, since));
    const third = uniquePassword();
    expect((await post('/v1/auth/password/reset', { token: byName.token, newPassword: third })).status).to.equal(204);
    await expectTokenResponse(await post('/v1/auth/login', { username: v.username, password: third }));
  });

  it('address change: the old address is told, the new one gets a code; once verified the account is at the new address only', async function () {
    const u = await signUp('move');
    expect((await post('/v1/auth/email/verify', { email: u.email, code: codeAndLink(u.first).code })).status).to.equal(204);
    const session = await expectTokenResponse(await post('/v1/auth/login', { email: u.email, password: u.password }));
    // A reset to the old address, pending when the address changes.
    let since = region.smtp.received.length;
    expect((await post('/v1/auth/password/forgot', { email: u.email })).status).to.equal(202);
    const pendingReset = codeAndLink(await mail(u.email, /reset your password/, since));

    const next = `moved${tag()}@example.org`;
    await expectProblem(await post('/v1/me/email', { email: next, currentPassword: uniquePassword() }, session.accessToken), 401, 'invalid_credentials');
    since = region.smtp.received.length;
    const change = await post('/v1/me/email', { email: next, currentPassword: u.password }, session.accessToken);
    expect(change.status).to.equal(202);
    const notice = await nextMail(region.smtp, u.email, /change of your e-mail address was requested/, since);
    expect(notice.parsed.text).to.contain('example.org');
    expect(notice.parsed.text, 'the notice carries no code').to.not.match(/^\s*\d{6}\s*$/m);
    const confirm = await mail(next, /verification code/, since);
    expect(confirm.parsed.text).to.contain('confirm this new address');
    // Nothing changes until the new address is proven.
    await expectTokenResponse(await post('/v1/auth/login', { email: u.email, password: u.password }));

    expect((await post('/v1/auth/email/verify', { email: next, code: codeAndLink(confirm).code })).status).to.equal(204);
    const moved = await expectTokenResponse(await post('/v1/auth/login', { email: next, password: u.password }));
    expect(decodeJwt(moved.accessToken)).to.include({ email: next, email_verified: true });
    await expectProblem(await post('/v1/auth/login', { email: u.email, password: u.password }), 401, 'invalid_credentials');
    const me = (await (await region.app.request('/v1/me', { token: moved.accessToken })).json()) as { user: UserView };
    expect(me.user).to.include({ email: next, emailVerified: true, username: u.username });
    // The reset sent to the old address is superseded, by code and by link.
    await expectProblem(await post('/v1/auth/password/reset', { email: u.email, code: pendingReset.code, newPassword: uniquePassword() }), 400, 'invalid_code');
    await expectProblem(await post('/v1/auth/password/reset', { token: pendingReset.token, newPassword: uniquePassword() }), 400, 'invalid_code');
    await expectTokenResponse(await post('/v1/auth/login', { email: next, password: u.password }));
  });

  it('an address in use: POST /v1/me/email answers 409 email_taken', async function () {
    const a = await signUp('taken');
    const b = await signUp('taker');
    const session = await expectTokenResponse(await post('/v1/auth/login', { username: b.username, password: b.password }));
    await expectProblem(await post('/v1/me/email', { email: a.email.toUpperCase(), currentPassword: b.password }, session.accessToken), 409, 'email_taken');
  });

  it('no secrets in the logs or in the job rows: no code, link or token of any message sent', async function () {
    await mailQueueIdle(region);
    expect(coded.length, 'messages with codes were sent').to.be.at.least(8);
    const secrets: Array<[string, string]> = [];
    coded.forEach((m, i) => {
      const { code, link, token } = codeAndLink(m);
      secrets.push([`code ${i}`, code], [`token ${i}`, token], [`token MAC ${i}`, token.split('.')[1]!], [`link ${i}`, link]);
    });
    await region.logs.settle();
    expect(region.logs.lines.length, 'the region logged').to.be.above(10);
    assertNoSecrets(region.logs.lines, secrets);
    const rows = await jobRows(region, ['mail', 'email-request']);
    expect(rows.length).to.be.at.least(coded.length);
    assertNoSecrets(
      rows.map((r) => JSON.stringify(r.data)),
      secrets,
    );
  });
});
