import { createServer, type Server, type Socket } from 'node:net';
import { expect } from 'chai';
import { SmtpMailer, type SmtpMailerOptions } from '../../src/mail/smtp-mailer.js';
import type { OutgoingMail } from '../../src/mail/mailer.js';
import { rejectsWith } from '../helpers/assert.js';
import { freePort, hasOpenssl, selfSignedCertificate, TestSmtpServer, type TestCertificate } from './support.js';

const FROM = 'authctl test <no-reply@example.test>';

function message(overrides: Partial<OutgoingMail> = {}): OutgoingMail {
  return {
    to: 'alice@example.test',
    subject: 'Hello from the transport test',
    text: 'plain body',
    html: '<p>html body</p>',
    messageId: `<transport.${Date.now()}.${Math.random().toString(36).slice(2)}@example.test>`,
    headers: { 'Auto-Submitted': 'auto-generated' },
    ...overrides,
  };
}

function mailer(url: string, options: Partial<SmtpMailerOptions> = {}): SmtpMailer {
  return new SmtpMailer({ url, from: FROM, timeoutMs: 2_000, pool: false, ...options });
}

/** A TCP server that accepts and then says nothing: an SMTP server that hangs. */
async function muteServer(): Promise<{ port: number; close(): Promise<void> }> {
  const sockets = new Set<Socket>();
  const server: Server = createServer((socket) => {
    sockets.add(socket);
    socket.on('error', () => undefined);
  });
  const port = await freePort();
  await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve));
  return {
    port,
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}

describe('mail transport: SmtpMailer over a real SMTP conversation', function () {
  this.timeout(30_000);
  const servers: TestSmtpServer[] = [];
  let cert: TestCertificate | undefined;

  before(function () {
    if (hasOpenssl()) cert = selfSignedCertificate();
  });

  after(async function () {
    await Promise.all(servers.map((s) => s.close()));
    cert?.remove();
  });

  async function server(options: Parameters<typeof TestSmtpServer.start>[0] = {}): Promise<TestSmtpServer> {
    const s = await TestSmtpServer.start(options);
    servers.push(s);
    return s;
  }

  function requireCert(this: Mocha.Context): TestCertificate {
    if (!cert) this.skip();
    return cert;
  }

  it('delivers text and HTML with the given Message-ID, sender, recipient and headers (pooled and not)', async function () {
    const smtp = await server();
    for (const pool of [false, true]) {
      const m = mailer(smtp.url, { pool, replyTo: 'help@example.test' });
      const sent = message();
      const result = await m.send(sent);
      m.close();
      expect(result.messageId).to.equal(sent.messageId);
      expect(result.response).to.match(/^250/);
    }
    const [first] = await smtp.waitFor(2);
    expect(first!.envelopeFrom).to.equal('no-reply@example.test');
    expect(first!.envelopeTo).to.deep.equal(['alice@example.test']);
    expect(first!.parsed.subject).to.equal('Hello from the transport test');
    expect(first!.parsed.text?.trim()).to.equal('plain body');
    expect(first!.parsed.html).to.contain('<p>html body</p>');
    expect(first!.parsed.from?.value).to.deep.equal([{ name: 'authctl test', address: 'no-reply@example.test' }]);
    expect(first!.parsed.replyTo?.text).to.equal('help@example.test');
    expect(first!.parsed.headers.get('auto-submitted')).to.equal('auto-generated');
    expect(first!.secure, 'no STARTTLS offered: clear text').to.equal(false);
  });

  it('upgrades with STARTTLS when offered, trusting a self-signed certificate given as mail.tlsCaFile, and logs in', async function () {
    const { key, cert: pem, certFile } = requireCert.call(this);
    const smtp = await server({ tls: { key, cert: pem }, auth: { user: 'mailer', pass: 'p@ss:w/rd' } });
    expect(smtp.url).to.match(/^smtp:\/\/mailer:p%40ss%3Aw%2Frd@127\.0\.0\.1:\d+$/);
    const m = mailer(smtp.url, { tlsCaFile: certFile });
    await m.verify();
    await m.send(message({ subject: 'over STARTTLS' }));
    const [got] = await smtp.waitFor(1);
    expect(got!.secure, 'upgraded with STARTTLS').to.equal(true);
    expect(got!.user).to.equal('mailer');
    expect(got!.parsed.subject).to.equal('over STARTTLS');
  });

  it('refuses a certificate it does not trust (bad_config, naming mail.tlsCaFile), or accepts any with tlsRejectUnauthorized false', async function () {
    const { key, cert: pem } = requireCert.call(this);
    const smtp = await server({ tls: { key, cert: pem } });
    const refused = await rejectsWith(mailer(smtp.url).send(message()), 'bad_config');
    expect(refused.detail).to.match(/TLS certificate that is not trusted .*mail\.tlsCaFile/);
    expect(refused.exitCode).to.equal(78);
    await rejectsWith(mailer(smtp.url).verify(), 'bad_config');
    expect(smtp.received).to.have.length(0);

    await mailer(smtp.url, { tlsRejectUnauthorized: false }).send(message({ subject: 'unchecked' }));
    const [got] = await smtp.waitFor(1);
    expect(got!.secure).to.equal(true);
  });

  it('speaks TLS from the first byte on smtps://', async function () {
    const { key, cert: pem, certFile } = requireCert.call(this);
    const smtp = await server({ tls: { key, cert: pem }, secure: true });
    expect(smtp.url).to.match(/^smtps:/);
    await mailer(smtp.url, { tlsCaFile: certFile }).send(message({ subject: 'implicit TLS' }));
    const [got] = await smtp.waitFor(1);
    expect(got!.secure).to.equal(true);
    // smtp:// against a TLS-only port: no greeting ever comes, so it times out rather than hangs.
    const plain = smtp.url.replace(/^smtps:/, 'smtp:');
    const started = Date.now();
    await rejectsWith(mailer(plain, { timeoutMs: 1_000 }).send(message()), 'unavailable');
    expect(Date.now() - started).to.be.below(5_000);
  });

  it('with requireTls, refuses to send in clear text to a server that offers no STARTTLS', async function () {
    const smtp = await server();
    const err = await rejectsWith(mailer(smtp.url, { requireTls: true }).send(message()), 'bad_config');
    expect(err.detail).to.match(/STARTTLS/);
    expect(smtp.received).to.have.length(0);
  });

  it('a wrong password is bad_config (exit 78) naming mail.smtpUrl, without the password', async function () {
    const { key, cert: pem, certFile } = requireCert.call(this);
    const smtp = await server({ tls: { key, cert: pem }, auth: { user: 'mailer', pass: 'right-password' } });
    const wrong = smtp.url.replace('right-password', 'wrong-password');
    const err = await rejectsWith(mailer(wrong, { tlsCaFile: certFile }).verify(), 'bad_config');
    expect(err.detail).to.match(/refused the login.*mail\.smtpUrl/);
    expect(err.detail).not.to.contain('wrong-password');
  });

  it('a refused recipient is invalid_request; a 4xx reply is unavailable (worth retrying)', async function () {
    const smtp = await server({
      rejectRecipient: (address) => address.startsWith('nobody@'),
      onMessage: (received) => (received.parsed.subject === 'defer me' ? Object.assign(new Error('Try again later'), { responseCode: 451 }) : undefined),
    });
    const refused = await rejectsWith(mailer(smtp.url).send(message({ to: 'nobody@example.test' })), 'invalid_request');
    expect(refused.detail).to.match(/refused the recipient: 550/);
    const deferred = await rejectsWith(mailer(smtp.url).send(message({ subject: 'defer me' })), 'unavailable');
    expect(deferred.detail).to.match(/deferred the message: 451/);
  });

  it('an unreachable server is unavailable (exit 69) at once; a mute one within the timeout, so no worker hangs', async function () {
    const port = await freePort();
    const refused = await rejectsWith(mailer(`smtp://127.0.0.1:${port}`).send(message()), 'unavailable');
    expect(refused.detail).to.match(/cannot be reached: connection refused/);
    expect(refused.exitCode).to.equal(69);

    const mute = await muteServer();
    try {
      for (const pool of [false, true]) {
        const started = Date.now();
        const m = mailer(`smtp://127.0.0.1:${mute.port}`, { timeoutMs: 800, pool });
        const err = await rejectsWith(m.send(message()), 'unavailable');
        m.close();
        expect(err.detail).to.match(/no greeting in time|timed out/);
        expect(Date.now() - started, 'bounded by timeoutMs').to.be.within(700, 4_000);
      }
    } finally {
      await mute.close();
    }
  });

  it('an unreadable mail.tlsCaFile is bad_config naming the key', async function () {
    const smtp = await server();
    const err = await rejectsWith(mailer(smtp.url, { tlsCaFile: '/nonexistent/ca.pem' }).send(message()), 'bad_config');
    expect(err.detail).to.match(/^mail\.tlsCaFile: cannot read \/nonexistent\/ca\.pem \(ENOENT\)/);
  });
});
