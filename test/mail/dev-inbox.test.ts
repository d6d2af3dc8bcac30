import type { ChildProcessWithoutNullStreams } from 'node:child_process';
import { readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { expect } from 'chai';
import { loadConfig } from '../../src/config/load.js';
import { findCodes, findLinks, startMailCatcher, type CaughtMail, type MailCatcher } from '../../src/dev/mail-catcher.js';
import { startMailInbox, type MailInbox } from '../../src/dev/mail-inbox.js';
import { JobQueue } from '../../src/jobs/job-queue.js';
import { QUEUES } from '../../src/jobs/queues.js';
import { SmtpMailer } from '../../src/mail/smtp-mailer.js';
import { createLogger } from '../../src/platform/logger.js';
import { startTestApp } from '../helpers/app.js';
import { devDataDir, spawnDev, stopProcess } from '../dev/dev-process.js';
import { waitUntil } from '../jobs/setup.js';
import { freePort } from './support.js';

describe('authctl dev: the mail catcher and the dev inbox', function () {
  this.timeout(30_000);

  describe('catcher and inbox', function () {
    let catcher: MailCatcher;
    let inbox: MailInbox;
    const caught: CaughtMail[] = [];

    before(async function () {
      catcher = await startMailCatcher({ onMessage: (mail) => caught.push(mail) });
      inbox = await startMailInbox(catcher);
    });

    after(async function () {
      await inbox?.close();
      await catcher?.close();
    });

    it('finds codes and links in a message text', function () {
      expect(findCodes('Your code is 482913. It expires at 12:30:00 on 2030-01-02; order 1234567890 is not a code.')).to.deep.equal(['482913']);
      expect(findCodes('Your code: AB12-CD34')).to.deep.equal(['AB12-CD34']);
      expect(findLinks('Open https://auth.example.test/verify?t=abc&u=1. Or (http://x.test/y), then stop.')).to.deep.equal([
        'https://auth.example.test/verify?t=abc&u=1',
        'http://x.test/y',
      ]);
      expect(findCodes('see https://auth.example.test/r/12345678')).to.deep.equal([]);
    });

    it('catches what is sent to it and lists it on GET /dev/mail, every value escaped; the HTML part only under a CSP sandbox', async function () {
      const mailer = new SmtpMailer({ url: catcher.smtpUrl, from: 'dev <no-reply@authctl.localhost>', timeoutMs: 2_000, pool: false });
      await mailer.send({
        to: 'grace@example.test',
        subject: 'Hi <script>alert("s")</script>',
        text: 'Your code is 482913.\nOr open https://auth.example.test/verify?t=a&u=b\n<script>alert(1)</script>',
        html: '<p onclick="x()">Hi</p><script>alert("h")</script>',
        messageId: '<dev.1@authctl.localhost>',
        headers: { 'X-Authctl-Kind': 'test' },
      });
      await waitUntil(() => caught.length === 1, 'the message to be caught');
      expect(caught[0]).to.deep.include({
        to: ['grace@example.test'],
        subject: 'Hi <script>alert("s")</script>',
        kind: 'test',
        messageId: '<dev.1@authctl.localhost>',
        codes: ['482913'],
        links: ['https://auth.example.test/verify?t=a&u=b'],
      });

      const page = await fetch(inbox.url);
      expect(page.status).to.equal(200);
      expect(page.headers.get('content-security-policy')).to.match(/default-src 'none'/);
      expect(page.headers.get('cache-control')).to.equal('no-store');
      const html = await page.text();
      expect(html).not.to.contain('<script');
      expect(html).to.contain('Hi &lt;script&gt;alert(&quot;s&quot;)&lt;/script&gt;');
      expect(html).to.contain('&lt;script&gt;alert(1)&lt;/script&gt;');
      expect(html).to.contain('<code class="code">482913</code>');
      expect(html).to.contain('href="https://auth.example.test/verify?t=a&amp;u=b"');
      expect(html).to.contain('grace@example.test');

      const own = await fetch(inbox.url.replace(/\/dev\/mail$/, `/dev/mail/${caught[0]!.id}.html`));
      expect(own.headers.get('content-security-policy')).to.match(/^sandbox; default-src 'none'/);
      expect(await own.text()).to.contain('<p onclick="x()">Hi</p>');

      const json = (await (await fetch(`${inbox.url}.json`)).json()) as { messages: CaughtMail[] };
      expect(json.messages.map((m) => m.subject)).to.deep.equal(['Hi <script>alert("s")</script>']);
      expect((await fetch(inbox.url.replace(/\/dev\/mail$/, '/dev/mail/999.html'))).status).to.equal(404);
      expect((await fetch(inbox.url, { method: 'POST' })).status).to.equal(405);
    });

    it('the production HTTP app has no /dev/mail route, and serves while its SMTP server is down (only workers send)', async function () {
      const app = await startTestApp('mail_no_dev_route', {
        overrides: { mail: { transport: 'smtp', smtpUrl: `smtp://127.0.0.1:${await freePort()}`, from: 'no-reply@example.test' } },
      });
      try {
        expect((await app.request('/dev/mail')).status).to.equal(404);
        expect((await app.request('/dev/mail.json')).status).to.equal(404);
        const started = Date.now();
        expect((await app.request('/readyz')).status).to.equal(200);
        expect(
          (await app.request('/v1/auth/register', { method: 'POST', json: { username: 'mail-down-user', password: 'correct horse battery staple' } })).status,
        ).to.equal(201);
        expect(Date.now() - started).to.be.below(3_000);
      } finally {
        await app.close();
      }
    });
  });

  describe('authctl dev as a process', function () {
    let dir: string;
    let child: ChildProcessWithoutNullStreams | undefined;

    before(function () {
      dir = devDataDir('mail');
    });

    after(async function () {
      await stopProcess(child);
      rmSync(dir, { recursive: true, force: true });
    });

    it('configures itself to send to its catcher and runs the mail worker in-process: a queued message is printed and listed', async function () {
      this.timeout(180_000);
      const dev = await spawnDev(dir, /Dev inbox: http:\/\/127\.0\.0\.1:\d+\/dev\/mail/);
      child = dev.child;
      let output = dev.output();
      dev.child.stdout.on('data', () => (output = dev.output()));
      dev.child.stderr.on('data', () => (output = dev.output()));
      const inboxUrl = /Dev inbox: (http:\/\/127\.0\.0\.1:\d+\/dev\/mail)/.exec(output)?.[1];
      expect(inboxUrl, output).to.be.a('string');
      expect(output).to.match(/mail is caught on smtp:\/\/127\.0\.0\.1:\d+; nothing is delivered/);
      // The API reference page is on in dev, and its document is there.
      const docsUrl = /API reference: (http:\/\/127\.0\.0\.1:\d+\/docs) /.exec(output)?.[1];
      expect(docsUrl, output).to.be.a('string');
      const page = await fetch(docsUrl!);
      expect(page.status).to.equal(200);
      expect(page.headers.get('content-type')).to.match(/^text\/html/);
      const document = (await (await fetch(docsUrl!.replace(/\/docs$/, '/openapi.json'))).json()) as { openapi: string; paths: Record<string, unknown> };
      expect(document.openapi).to.equal('3.1.0');
      expect(document.paths).to.have.property('/docs');

      // Another process enqueues a mail job in the dev database, as a flow of the server would.
      const pgPort = /PostgreSQL on port (\d+)/.exec(output)![1]!;
      const password = readFileSync(join(dir, 'postgres', 'password'), 'utf8').trim();
      const config = loadConfig({
        env: {},
        cwd: '/nonexistent',
        overrides: { database: { url: `postgres://postgres:${encodeURIComponent(password)}@127.0.0.1:${pgPort}/authctl` } },
      });
      const queue = new JobQueue({ config, log: createLogger({ level: 'silent', region: 'local' }) });
      try {
        await queue.send(QUEUES.mail, { kind: 'test', to: 'heidi@example.test', data: {} });
      } finally {
        await queue.stop();
      }

      await waitUntil(() => /✉ {2}mail to heidi@example\.test: "authctl: test message" \(test\)/.test(output), `the terminal line:\n${output}`, 20_000);
      const json = (await (await fetch(`${inboxUrl}.json`)).json()) as { messages: CaughtMail[] };
      expect(json.messages[0]).to.deep.include({
        to: ['heidi@example.test'],
        subject: 'authctl: test message',
        kind: 'test',
        from: 'no-reply@authctl.localhost',
      });
      expect(json.messages[0]!.messageId).to.match(/^<mail\.[0-9a-f-]{36}@authctl\.localhost>$/);

      const exited = new Promise<number | null>((resolve) => dev.child.once('exit', (code) => resolve(code)));
      dev.child.kill('SIGINT');
      expect(await exited, output).to.equal(0);
    });
  });
});
