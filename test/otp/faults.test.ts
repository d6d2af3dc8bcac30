import { expect } from 'chai';
import { decodeJwt } from 'jose';
import { expectTokenResponse, sleep, uniquePassword } from '../helpers/http-assert.js';
import type { TcpProxy } from '../helpers/http-tcp-proxy.js';
import { waitUntil } from '../jobs/setup.js';
import { freePort, TestSmtpServer } from '../mail/support.js';
import { expectUnavailable, nextMail, startEmailRegion, startProxiedEmailRegion, tag, type EmailRegion, type ProxiedEmailRegion } from '../email/support.js';
import { mailedCode, sendCode, SIGN_IN_SUBJECT, signInCode, verifyCode } from './support.js';

describe('sign-in codes while the SMTP server is down', function () {
  this.timeout(60_000);
  let region: EmailRegion;
  let port: number;
  let smtp: TestSmtpServer | undefined;

  before(async function () {
    port = await freePort();
    // Nothing listens on `port` until the test starts the SMTP server there.
    region = await startEmailRegion('otp_smtp_down', { mail: { smtpUrl: `smtp://127.0.0.1:${port}` } });
  });
  after(async function () {
    await region?.close();
    await smtp?.close();
  });

  it('otp/send answers 202 while SMTP is down; the code arrives once it is back, and signs in', async function () {
    const username = `down${tag()}`;
    const email = `${username}@example.com`;
    expect((await region.app.request('/v1/auth/register', { method: 'POST', json: { username, email, password: uniquePassword() } })).status).to.equal(201);
    await sendCode(region, email);
    await waitUntil(async () => {
      await region.logs.settle();
      return region.logs.events('mail.failed').length > 0;
    }, 'a failed delivery attempt');
    expect(region.logs.events('mail.sent')).to.deep.equal([]);

    smtp = await TestSmtpServer.start({ port });
    const code = signInCode(await nextMail(smtp, email, SIGN_IN_SUBJECT, 0, 30_000));
    const session = await expectTokenResponse(await verifyCode(region, email, code));
    expect(decodeJwt(session.accessToken).amr).to.deep.equal(['otp']);
  });
});

describe('sign-in codes while PostgreSQL is down', function () {
  this.timeout(60_000);
  let outage: ProxiedEmailRegion;
  let region: EmailRegion;
  let proxy: TcpProxy;

  before(async function () {
    outage = await startProxiedEmailRegion('otp_db_outage');
    ({ region, proxy } = outage);
  });
  after(async function () {
    await outage?.close();
  });

  const post = (path: string, json: unknown) => region.app.request(path, { method: 'POST', json });

  it('otp/send and otp/verify answer 503 while the database is away; the code then still works, and a send is not lost to the limits', async function () {
    const username = `dbdown${tag()}`;
    const email = `${username}@example.com`;
    expect((await post('/v1/auth/register', { username, email, password: uniquePassword() })).status).to.equal(201);
    const code = await mailedCode(region, email);
    const other = `other${tag()}@example.com`;

    await proxy.stop();
    const started = Date.now();
    await expectUnavailable(await post('/v1/auth/otp/send', { email: other }));
    await expectUnavailable(await post('/v1/auth/otp/verify', { email, code }));
    await expectUnavailable(await post('/v1/auth/otp/verify', { email, code: String((Number(code) + 1) % 1_000_000).padStart(6, '0') }));
    expect(Date.now() - started, 'answered without hanging').to.be.below(10_000);

    await proxy.start();
    let status = 0;
    const deadline = Date.now() + 15_000;
    while (Date.now() < deadline) {
      status = (await post('/v1/auth/otp/send', { email: other })).status;
      if (status === 202) break;
      expect(status, 'only 503 while recovering').to.equal(503);
      await sleep(200);
    }
    expect(status).to.equal(202);
    // The send answered 503 was given back to the limits: its retry was not refused by them.
    await region.logs.settle();
    expect(region.logs.events('mail.limited'), 'no send limit reached').to.deep.equal([]);
    // Nothing was spent by the failed attempts: the code signs in, with all its tries.
    const session = await expectTokenResponse(await post('/v1/auth/otp/verify', { email, code }));
    expect(decodeJwt(session.accessToken).amr).to.deep.equal(['otp']);
    const [row] = await region.app.container.db
      .writer<{ attempts: number; end_reason: string | null; purpose: string }>('email_challenges')
      .whereRaw('lower(email) = lower(?)', [email])
      .where({ purpose: 'login' })
      .select('attempts', 'end_reason');
    expect(row).to.deep.equal({ attempts: 0, end_reason: 'used' });
  });
});
