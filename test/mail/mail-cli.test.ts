import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect } from 'chai';
import type { MailTestResult } from '../../commands/mail/test.js';
import { loadConfig } from '../../src/config/load.js';
import type { AppError } from '../../src/platform/errors.js';
import { describeRun, expectJson, expectJsonError, expectNoStackTrace, runCli } from '../cli/run-cli.js';
import { freePort, TestSmtpServer } from './support.js';

const FROM = 'authctl tests <no-reply@example.test>';
/** No database is needed: one that cannot be reached proves it. */
const NO_DATABASE = 'postgres://postgres@127.0.0.1:1/none';

describe('authctl mail test, and the mail configuration it needs', function () {
  this.timeout(60_000);
  let smtp: TestSmtpServer;
  let dir: string;

  before(async function () {
    smtp = await TestSmtpServer.start();
    dir = mkdtempSync(join(tmpdir(), 'authctl-mail-cli-'));
  });

  after(async function () {
    await smtp?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  const run = (args: string[], env: Record<string, string | undefined> = {}) =>
    runCli(['mail', 'test', ...args], { databaseUrl: NO_DATABASE, env: { AUTHCTL_SECRET: undefined, ...env } });
  const smtpEnv = (url: string) => ({ AUTHCTL_MAIL_TRANSPORT: 'smtp', AUTHCTL_SMTP_URL: url, AUTHCTL_MAIL_FROM: FROM });

  it('exit 0: sends now, through SMTP and not the queue (no database needed), and prints the Message-ID', async function () {
    const [json, human] = await Promise.all([run(['bob@example.test', '--json'], smtpEnv(smtp.url)), run(['carol@example.test'], smtpEnv(smtp.url))]);
    const body = expectJson<MailTestResult>(json, 0);
    expect(body).to.include({ to: 'bob@example.test', transport: 'smtp', server: `127.0.0.1:${smtp.port}` });
    expect(body.messageId).to.match(/^<direct\.[0-9a-f-]{36}@example\.test>$/);
    expect(body.response).to.match(/^250/);
    expect(human.code, describeRun(human)).to.equal(0);
    expect(human.stdout).to.match(/✔ Sent to carol@example\.test through 127\.0\.0\.1:\d+ \(250[^)]*\)\.\n\s+Message-ID <direct\.[^>]+>/);

    const received = await smtp.waitFor(2);
    const bob = received.find((m) => m.envelopeTo.includes('bob@example.test'))!;
    expect(bob.parsed.messageId).to.equal(body.messageId);
    expect(bob.parsed.subject).to.equal('authctl: test message');
    expect(bob.parsed.text).to.match(/requested at \d{4}-\d\d-\d\dT/);
  });

  it('exit 69 when the SMTP server cannot be reached, with the hint to check it', async function () {
    const url = `smtp://user:hunter2-secret@127.0.0.1:${await freePort()}`;
    const [json, human] = await Promise.all([run(['bob@example.test', '--json'], smtpEnv(url)), run(['bob@example.test'], smtpEnv(url))]);
    expect(expectJsonError(json, 69, 'unavailable').message).to.match(/^the SMTP server at 127\.0\.0\.1:\d+ cannot be reached: connection refused/);
    expect(human.code, describeRun(human)).to.equal(69);
    expect(human.stderr).to.contain('Check that the SMTP server is running and AUTHCTL_SMTP_URL');
    expectNoStackTrace(human.stderr);
    for (const out of [json.stdout, json.stderr, human.stdout, human.stderr]) expect(out).not.to.contain('hunter2-secret');
  });

  it('exit 78 when mail is not configured: off, or smtp without mail.smtpUrl, or no mail.from, or a URL that is not smtp(s)', async function () {
    const [off, noUrl, noFrom, badUrl] = await Promise.all([
      run(['bob@example.test', '--json']),
      run(['bob@example.test', '--json'], { AUTHCTL_MAIL_TRANSPORT: 'smtp', AUTHCTL_MAIL_FROM: FROM }),
      run(['bob@example.test', '--json'], { AUTHCTL_MAIL_TRANSPORT: 'log' }),
      run(['bob@example.test', '--json'], smtpEnv('https://user:hunter2-secret@mail.example.test')),
    ]);
    expect(expectJsonError(off, 78, 'bad_config').message).to.match(/mail is off .*AUTHCTL_MAIL_TRANSPORT=smtp, AUTHCTL_SMTP_URL/);
    expect(expectJsonError(noUrl, 78, 'bad_config').message).to.match(/mail\.smtpUrl: required when mail\.transport is "smtp": set AUTHCTL_SMTP_URL/);
    expect(expectJsonError(noFrom, 78, 'bad_config').message).to.match(/mail\.from: required when mail\.transport is "log": set AUTHCTL_MAIL_FROM/);
    const bad = expectJsonError(badUrl, 78, 'bad_config').message;
    expect(bad).to.match(/^invalid configuration: AUTHCTL_SMTP_URL: must be a URL like smtp:\/\//);
    expect(bad).not.to.contain('hunter2-secret');
  });

  it('exit 2 for something that is not an address; exit 0 with transport "log" (written to the log, not sent)', async function () {
    const [bad, logged] = await Promise.all([
      run(['not-an-address', '--json'], smtpEnv(smtp.url)),
      run(['dave@example.test', '--json'], { AUTHCTL_MAIL_TRANSPORT: 'log', AUTHCTL_MAIL_FROM: FROM }),
    ]);
    expect(expectJsonError(bad, 2, 'invalid_request').message).to.match(/not an e-mail address/);
    expect(expectJson<MailTestResult>(logged, 0)).to.include({ transport: 'log', server: 'the log', to: 'dave@example.test' });
  });

  it('takes the SMTP URL from an env: reference in the config file (a URL with a password stays out of the file)', async function () {
    const file = join(dir, 'mail.json');
    writeFileSync(file, JSON.stringify({ mail: { transport: 'smtp', smtpUrl: 'env:MY_SMTP_URL', from: FROM, productName: 'Acme ID' } }));
    const [ok, unset] = await Promise.all([
      runCli(['mail', 'test', 'erin@example.test', '--config', file, '--json'], { databaseUrl: NO_DATABASE, env: { MY_SMTP_URL: smtp.url } }),
      runCli(['mail', 'test', 'erin@example.test', '--config', file, '--json'], { databaseUrl: NO_DATABASE }),
    ]);
    const body = expectJson<MailTestResult>(ok, 0);
    const got = (await smtp.waitFor(3)).find((m) => m.parsed.messageId === body.messageId)!;
    expect(got.parsed.subject).to.equal('Acme ID: test message');
    expect(expectJsonError(unset, 78, 'bad_config').message).to.match(
      /mail\.smtpUrl \(in .*mail\.json\) refers to environment variable MY_SMTP_URL, which is not set/,
    );
  });

  it('a region with transport "smtp" and no smtpUrl is refused at start: worker and serve exit 78 saying what to set', async function () {
    const env = { AUTHCTL_MAIL_TRANSPORT: 'smtp', AUTHCTL_MAIL_FROM: FROM };
    const [worker, serve] = await Promise.all([
      runCli(['worker'], { databaseUrl: NO_DATABASE, env }),
      runCli(['serve', '--port', '0'], { databaseUrl: NO_DATABASE, env }),
    ]);
    for (const result of [worker, serve]) {
      expect(result.code, describeRun(result)).to.equal(78);
      expect(result.stderr).to.match(/mail\.smtpUrl: required when mail\.transport is "smtp": set AUTHCTL_SMTP_URL/);
      expectNoStackTrace(result.stderr);
    }
  });

  it('validates every mail key with a message naming it (loadConfig)', function () {
    const refused = (mail: Record<string, unknown>, env: Record<string, string> = {}) => {
      try {
        loadConfig({ env, cwd: '/nonexistent', overrides: { mail } });
      } catch (err) {
        expect((err as AppError).code).to.equal('bad_config');
        return (err as AppError).detail;
      }
      return expect.fail('accepted');
    };
    expect(refused({ transport: 'sendmail' })).to.match(/mail\.transport: /);
    expect(refused({ transport: 'smtp', smtpUrl: 'smtp://h', from: 'Bob <not an address>' })).to.match(/mail\.from: must be an address like/);
    expect(refused({ transport: 'smtp', smtpUrl: 'smtp://h', from: FROM, replyTo: 'a@b.test\r\nBcc: x@y.test' })).to.match(/mail\.replyTo: must be an address/);
    expect(refused({ productName: 'two\nlines' })).to.match(/mail\.productName: must be one line/);
    expect(refused({ timeoutMs: 10 })).to.match(/mail\.timeoutMs: /);
    expect(refused({ retryDelaySeconds: 60, retryDelayMaxSeconds: 10 })).to.match(/mail\.retryDelayMaxSeconds: must be at least mail\.retryDelaySeconds/);
    expect(refused({ surprise: true })).to.match(/unknown config key mail\.surprise/);
    expect(refused({}, { AUTHCTL_MAIL_TRANSPORT: 'carrier-pigeon' })).to.match(/^invalid configuration: AUTHCTL_MAIL_TRANSPORT: /);
    const defaults = loadConfig({ env: {}, cwd: '/nonexistent' }).mail;
    expect(defaults).to.deep.include({
      transport: 'off',
      productName: 'authctl',
      tlsRejectUnauthorized: true,
      requireTls: false,
      timeoutMs: 10_000,
      retryLimit: 8,
      retryDelaySeconds: 15,
      retryDelayMaxSeconds: 1_800,
      jobTimeoutSeconds: 120,
    });
    const smtpConfig = loadConfig({
      env: { AUTHCTL_MAIL_TRANSPORT: 'smtp', AUTHCTL_SMTP_URL: 'smtps://u:p@mail.example.test', AUTHCTL_MAIL_FROM: FROM },
      cwd: '/nonexistent',
    }).mail;
    expect(smtpConfig).to.deep.include({ transport: 'smtp', smtpUrl: 'smtps://u:p@mail.example.test', from: FROM });
  });
});
