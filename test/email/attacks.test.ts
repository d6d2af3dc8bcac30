import { expect } from 'chai';
import { expectInvalidRequest, expectProblem, expectTokenResponse, uniquePassword } from '../helpers/http-assert.js';
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

const PRODUCT = '<b>Acme & Co</b>';
const PRODUCT_ESCAPED = '&lt;b&gt;Acme &amp; Co&lt;/b&gt;';
const INJECTIONS = ['a@example.com\r\nBcc: x@evil.test', 'a@example.com%0d%0aBcc: x@evil.test', 'a@example.com\nBcc:x@evil.test'];

/** The six-digit codes other than `code`: `n` of them, each a different wrong guess. */
function wrongCodes(code: string, n: number): string[] {
  return Array.from({ length: n }, (_, i) => String((Number(code) + i + 1) % 1_000_000).padStart(6, '0'));
}

describe('e-mail flows under attack', function () {
  this.timeout(60_000);
  let region: EmailRegion;

  before(async function () {
    region = await startEmailRegion('email_attacks', { mail: { productName: PRODUCT } });
  });
  after(async function () {
    await region?.close();
  });

  const post = (path: string, json: unknown, token?: string) => poster(region)(path, json, token);
  const postForm = (path: string, fields: Record<string, string>) => region.app.request(path, { method: 'POST', body: new URLSearchParams(fields) });

  const signUp = (prefix: string) => signUpIn(region, prefix);

  async function resetMail(email: string): Promise<{ code: string; link: string; token: string }> {
    const since = region.smtp.received.length;
    expect((await post('/v1/auth/password/forgot', { email })).status).to.equal(202);
    return codeAndLink(await nextMail(region.smtp, email, /reset your password/, since));
  }

  it('5 wrong codes kill the code: the right one (and its link) is then refused', async function () {
    const u = await signUp('guess');
    const { code, token } = codeAndLink(u.first);
    const wrong = wrongCodes(code, 5);
    for (const [i, guess] of wrong.entries()) {
      const problem = await expectProblem(await post('/v1/auth/email/verify', { email: u.email, code: guess }), 400, 'invalid_code');
      if (i < 4) expect(problem.detail).to.contain(`${4 - i} ${i === 3 ? 'try' : 'tries'} left`);
      else expect(problem.detail).to.contain('last try');
    }
    await expectProblem(await post('/v1/auth/email/verify', { email: u.email, code }), 400, 'invalid_code');
    await expectProblem(await post('/v1/auth/email/verify', { token }), 400, 'invalid_code');
    const login = await expectTokenResponse(await post('/v1/auth/login', { email: u.email, password: u.password }));
    expect(login.user.emailVerified).to.equal(false);
  });

  it('a used code or link is refused the second time (verification and reset)', async function () {
    const u = await signUp('reuse');
    const { token } = codeAndLink(u.first);
    expect((await post('/v1/auth/email/verify', { token })).status).to.equal(204);
    await expectProblem(await post('/v1/auth/email/verify', { token }), 400, 'invalid_code');
    const reset = await resetMail(u.email);
    expect((await post('/v1/auth/password/reset', { email: u.email, code: reset.code, newPassword: uniquePassword() })).status).to.equal(204);
    await expectProblem(await post('/v1/auth/password/reset', { email: u.email, code: reset.code, newPassword: uniquePassword() }), 400, 'invalid_code');
    await expectProblem(await post('/v1/auth/password/reset', { token: reset.token, newPassword: uniquePassword() }), 400, 'invalid_code');
  });

  it('a reset sent before a password change is dead after it (link and code)', async function () {
    const u = await signUp('stale');
    const reset = await resetMail(u.email);
    const session = await expectTokenResponse(await post('/v1/auth/login', { username: u.username, password: u.password }));
    const changed = uniquePassword();
    expect((await post('/v1/auth/password', { currentPassword: u.password, newPassword: changed }, session.accessToken)).status).to.equal(204);
    await expectProblem(await post('/v1/auth/password/reset', { token: reset.token, newPassword: uniquePassword() }), 400, 'invalid_code');
    await expectProblem(await post('/v1/auth/password/reset', { email: u.email, code: reset.code, newPassword: uniquePassword() }), 400, 'invalid_code');
    await expectTokenResponse(await post('/v1/auth/login', { username: u.username, password: changed }));
  });

  it("one user's code is no good with another user's address", async function () {
    const a = await signUp('alice');
    const b = await signUp('bob');
    const codeA = codeAndLink(a.first).code;
    const codeB = codeAndLink(b.first).code;
    if (codeA === codeB) this.skip(); // one chance in a million
    await expectProblem(await post('/v1/auth/email/verify', { email: b.email, code: codeA }), 400, 'invalid_code');
    const stillB = await expectTokenResponse(await post('/v1/auth/login', { email: b.email, password: b.password }));
    expect(stillB.user.emailVerified).to.equal(false);
    // Reset codes too: A's reset code does not reset B's password.
    const resetA = await resetMail(a.email);
    await resetMail(b.email);
    await expectProblem(await post('/v1/auth/password/reset', { email: b.email, code: resetA.code, newPassword: uniquePassword() }), 400, 'invalid_code');
    await expectTokenResponse(await post('/v1/auth/login', { email: b.email, password: b.password }));
    // Each code still works for its own address.
    expect((await post('/v1/auth/email/verify', { email: a.email, code: codeA })).status).to.equal(204);
    expect((await post('/v1/auth/email/verify', { email: b.email, code: codeB })).status).to.equal(204);
  });

  it('a tampered link (any character changed, or another challenge id under the MAC) is invalid_code; the real one then works', async function () {
    const a = await signUp('forge');
    const b = await signUp('forgeb');
    const { token } = codeAndLink(a.first);
    const other = codeAndLink(b.first).token;
    const [idPart, macPart] = token.split('.') as [string, string];
    const forged: string[] = [`${other.split('.')[0]!}.${macPart}`, `${idPart}.${other.split('.')[1]!}`];
    for (let i = 0; i < token.length; i++) {
      if (token[i] === '.') continue;
      // The neighbouring character: for the last character of each half it differs only in the bits base64 leaves over.
      const c = token[i]!;
      const swapped = c === 'A' ? 'B' : c === 'B' ? 'A' : c === 'a' ? 'b' : 'a';
      forged.push(token.slice(0, i) + swapped + token.slice(i + 1));
    }
    const accepted: string[] = [];
    for (const candidate of forged) {
      const res = await post('/v1/auth/email/verify', { token: candidate });
      if (res.status === 204) accepted.push(candidate);
      else await expectProblem(res, 400, 'invalid_code');
    }
    expect(accepted, `forged tokens accepted (the real one is ${token})`).to.deep.equal([]);
    expect((await post('/v1/auth/email/verify', { token })).status).to.equal(204);
  });

  it('link scanners: GETs (and HEADs) of the links spend nothing; the links work afterwards', async function () {
    const u = await signUp('scan');
    const verify = codeAndLink(u.first);
    for (let i = 0; i < 5; i++) expect((await fetch(local(region, verify.link))).status).to.equal(200);
    expect((await fetch(local(region, verify.link), { method: 'HEAD' })).status).to.equal(200);
    expect((await post('/v1/auth/email/verify', { token: verify.token })).status).to.equal(204);

    const reset = await resetMail(u.email);
    expect(new URL(reset.link).pathname).to.equal('/v1/auth/password/reset');
    for (let i = 0; i < 5; i++) {
      const page = await fetch(local(region, reset.link));
      expect(page.status).to.equal(200);
      expect(await page.text()).to.contain('name="newPassword"');
    }
    const newPassword = uniquePassword();
    const done = await postForm('/v1/auth/password/reset', { token: reset.token, newPassword });
    expect(done.status).to.equal(200);
    expect(await done.text()).to.contain('Your password is changed');
    await expectTokenResponse(await post('/v1/auth/login', { email: u.email, password: newPassword }));
  });

  it('header injection in an address is 400 invalid_request naming email, wherever an address is taken', async function () {
    const before = region.smtp.received.length;
    for (const email of INJECTIONS) {
      await expectInvalidRequest(await post('/v1/auth/register', { username: `inj${tag()}`, email, password: uniquePassword() }), 'email');
      await expectInvalidRequest(await post('/v1/auth/password/forgot', { email }), 'email');
      await expectInvalidRequest(await post('/v1/auth/email/verify/send', { email }), 'email');
    }
    // Only what these requests could have sent: a notice of an earlier test may still be arriving.
    const injected = region.smtp.received.slice(before).filter((m) => m.envelopeTo.some((to) => /a@example\.com|x@evil\.test/i.test(to)));
    expect(injected, 'no message was sent').to.deep.equal([]);
  });

  it('header injection in a new address (POST /v1/me/email) is 400 naming email', async function () {
    const u = await signUp('injme');
    const session = await expectTokenResponse(await post('/v1/auth/login', { username: u.username, password: u.password }));
    for (const email of INJECTIONS)
      await expectInvalidRequest(await post('/v1/me/email', { email, currentPassword: u.password }, session.accessToken), 'email');
  });

  it('the product name is escaped in the HTML part of a message and on the link pages', async function () {
    const u = await signUp('html');
    const html = typeof u.first.parsed.html === 'string' ? u.first.parsed.html : '';
    expect(html).to.contain(PRODUCT_ESCAPED);
    expect(html).to.not.contain('<b>Acme');
    expect(u.first.parsed.subject, 'the subject is plain text').to.equal(`${PRODUCT}: your verification code`);
    const page = await (await fetch(local(region, codeAndLink(u.first).link))).text();
    expect(page).to.contain(PRODUCT_ESCAPED);
    expect(page).to.not.contain('<b>Acme');
  });

  it('a weak new password is 400 weak_password and spends nothing: the same link then works (JSON and form)', async function () {
    const u = await signUp('weak');
    const reset = await resetMail(u.email);
    const problem = await expectProblem(await post('/v1/auth/password/reset', { token: reset.token, newPassword: 'short' }), 400, 'weak_password');
    expect(problem.errors?.map((e) => e.path)).to.include('newPassword');
    await expectProblem(await post('/v1/auth/password/reset', { email: u.email, code: reset.code, newPassword: u.username }), 400, 'weak_password');
    const form = await postForm('/v1/auth/password/reset', { token: reset.token, newPassword: 'short' });
    expect(form.status).to.equal(400);
    const page = await form.text();
    expect(page, 'the form is shown again').to.contain('name="newPassword"');
    expect(page).to.contain(`value="${reset.token}"`);
    const newPassword = uniquePassword();
    expect((await post('/v1/auth/password/reset', { token: reset.token, newPassword })).status).to.equal(204);
    await expectTokenResponse(await post('/v1/auth/login', { email: u.email, password: newPassword }));
  });

  it('send limits: a second forgot within the interval is 202 and sends no second message', async function () {
    const u = await signUp('limit');
    const since = region.smtp.received.length;
    const first = await post('/v1/auth/password/forgot', { email: u.email });
    const second = await post('/v1/auth/password/forgot', { email: u.email });
    for (const res of [first, second]) {
      expect(res.status).to.equal(202);
      expect(await res.json()).to.deep.equal({ status: 'accepted' });
    }
    await nextMail(region.smtp, u.email, /reset your password/, since);
    await requestsDone(region, { email: u.email });
    await mailQueueIdle(region);
    const resets = region.smtp.received.slice(since).filter((m) => m.envelopeTo.includes(u.email) && /reset your password/.test(m.parsed.subject ?? ''));
    expect(resets.length, 'reset messages sent').to.equal(1);
    const byEmail = (await jobRows(region, ['email-request'])).filter((r) => (r.data as { email?: string }).email === u.email);
    expect(byEmail, 'the second request by address was not even enqueued').to.have.length(1);
    await region.logs.settle();
    expect(region.logs.events('mail.limited').length).to.be.at.least(1);
  });

  it('nothing was ever sent to the injected Bcc address', async function () {
    await mailQueueIdle(region);
    const leaked = region.smtp.received.filter((m) => m.envelopeTo.some((a) => a.includes('evil.test')) || m.raw.includes('evil.test'));
    expect(leaked).to.deep.equal([]);
    const jobs = (await jobRows(region, ['mail', 'email-request'])).filter((r) => JSON.stringify(r.data).includes('evil.test'));
    expect(jobs).to.deep.equal([]);
  });
});
