import { randomBytes } from 'node:crypto';
import { expect } from 'chai';
import { expectTokenResponse, sleep, uniquePassword } from '../helpers/http-assert.js';
import type { TcpProxy } from '../helpers/http-tcp-proxy.js';
import { waitUntil } from '../jobs/setup.js';
import { freePort, TestSmtpServer } from '../mail/support.js';
import { codeAndLink, expectUnavailable, nextMail, startEmailRegion, startProxiedEmailRegion, type EmailRegion, type ProxiedEmailRegion } from './support.js';

const tag = () => randomBytes(4).toString('hex');

describe('e-mail flows while the SMTP server is down', function () {
  this.timeout(60_000);
  let region: EmailRegion;
  let port: number;
  let smtp: TestSmtpServer | undefined;

  before(async function () {
    port = await freePort();
    // Nothing listens on `port` until the test starts the SMTP server there.
    region = await startEmailRegion('email_smtp_down', { mail: { smtpUrl: `smtp://127.0.0.1:${port}` } });
  });
  after(async function () {
    await region?.close();
    await smtp?.close();
  });

  it('forgot answers 202 while SMTP is down; the message arrives once it is back, and its code works', async function () {
    const username = `down${tag()}`;
    const email = `${username}@example.com`;
    const password = uniquePassword();
    const registered = await region.app.request('/v1/auth/register', { method: 'POST', json: { username, email, password } });
    expect(registered.status).to.equal(201);
    const forgot = await region.app.request('/v1/auth/password/forgot', { method: 'POST', json: { email } });
    expect(forgot.status).to.equal(202);
    // The worker tried and failed (connection refused), and will try again.
    await waitUntil(async () => {
      await region.logs.settle();
      return region.logs.events('mail.failed').length > 0;
    }, 'a failed delivery attempt');
    expect(region.logs.events('mail.sent')).to.deep.equal([]);

    smtp = await TestSmtpServer.start({ port });
    const reset = await nextMail(smtp, email, /reset your password/, 0, 30_000);
    const verify = await nextMail(smtp, email, /verification code/, 0, 30_000);
    const newPassword = uniquePassword();
    const res = await region.app.request('/v1/auth/password/reset', { method: 'POST', json: { email, code: codeAndLink(reset).code, newPassword } });
    expect(res.status).to.equal(204);
    await expectTokenResponse(await region.app.request('/v1/auth/login', { method: 'POST', json: { email, password: newPassword } }));
    // The sign-up's verification, queued while SMTP was down too, came through as well.
    expect(verify.envelopeTo).to.deep.equal([email]);
  });
});

describe('e-mail flows while PostgreSQL is down', function () {
  this.timeout(60_000);
  let outage: ProxiedEmailRegion;
  let region: EmailRegion;
  let proxy: TcpProxy;

  before(async function () {
    outage = await startProxiedEmailRegion('email_db_outage');
    ({ region, proxy } = outage);
  });
  after(async function () {
    await outage?.close();
  });

  const post = (path: string, json: unknown) => region.app.request(path, { method: 'POST', json });

  it('forgot, verify/send and verify answer 503 while the database is away, then work again by themselves', async function () {
    const username = `dbdown${tag()}`;
    const email = `${username}@example.com`;
    const password = uniquePassword();
    expect((await post('/v1/auth/register', { username, email, password })).status).to.equal(201);
    const first = await nextMail(region.smtp, email, /verification code/);

    await proxy.stop();
    const started = Date.now();
    await expectUnavailable(await post('/v1/auth/password/forgot', { email }));
    await expectUnavailable(await post('/v1/auth/password/forgot', { username }));
    await expectUnavailable(await post('/v1/auth/email/verify/send', { email: `other${tag()}@example.com` }));
    await expectUnavailable(await post('/v1/auth/email/verify', { email, code: codeAndLink(first).code }));
    expect(Date.now() - started, 'answered without hanging').to.be.below(10_000);

    await proxy.start();
    const since = region.smtp.received.length;
    let status = 0;
    const deadline = Date.now() + 15_000;
    while (Date.now() < deadline) {
      status = (await post('/v1/auth/password/forgot', { email })).status;
      if (status === 202) break;
      expect(status, 'only 503 while recovering').to.equal(503);
      await sleep(200);
    }
    expect(status).to.equal(202);
    // The requests answered 503 sent nothing, so they did not count against the send limits.
    await region.logs.settle();
    expect(region.logs.events('mail.limited'), 'no send limit reached').to.deep.equal([]);
    const reset = await nextMail(region.smtp, email, /reset your password/, since, 30_000);
    // The verification code is still good: nothing was spent by the failed attempt.
    expect((await post('/v1/auth/email/verify', { email, code: codeAndLink(first).code })).status).to.equal(204);
    const newPassword = uniquePassword();
    expect((await post('/v1/auth/password/reset', { token: codeAndLink(reset).token, newPassword })).status).to.equal(204);
  });
});
