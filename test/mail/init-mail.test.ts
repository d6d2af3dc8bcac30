import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect } from 'chai';
import type { MailTestResult } from '../../commands/mail/test.js';
import type { InitResult } from '../../src/cli/init.js';
import { buildConfigFile } from '../../src/cli/init-wizard.js';
import { loadConfig } from '../../src/config/load.js';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';
import { describeRun, expectJson, expectJsonError, expectNoStackTrace, runCli } from '../cli/run-cli.js';
import { ANSWERS, answerRegion, startWizard } from '../cli/wizard.js';
import { freePort, hasOpenssl, selfSignedCertificate, TestSmtpServer, type TestCertificate } from './support.js';

describe('authctl init: the SMTP URL', function () {
  this.timeout(60_000);
  let dir: string;
  let db: TestDatabase;
  let smtp: TestSmtpServer;
  let secured: TestSmtpServer | undefined;
  let cert: TestCertificate | undefined;

  before(async function () {
    db = await createTestDatabase('init_mail');
    smtp = await TestSmtpServer.start();
    if (hasOpenssl()) {
      cert = selfSignedCertificate();
      secured = await TestSmtpServer.start({ tls: { key: cert.key, cert: cert.cert }, auth: { user: 'mailer', pass: 'smtp-pass-789' } });
    }
  });

  after(async function () {
    await smtp?.close();
    await secured?.close();
    cert?.remove();
    await db?.drop();
  });

  beforeEach(function () {
    dir = mkdtempSync(join(tmpdir(), 'authctl-init-mail-'));
  });

  afterEach(function () {
    rmSync(dir, { recursive: true, force: true });
  });

  it('writes mail.* with a URL holding a password as an env: reference, like the other secrets; none: mail stays off', function () {
    const withPassword = buildConfigFile({
      ...ANSWERS,
      smtpUrl: 'smtps://mailer:smtp-pass-789@smtp.example.test:465',
      mailFrom: 'Acme <no-reply@example.test>',
    });
    expect(withPassword.values.mail).to.deep.equal({ transport: 'smtp', smtpUrl: 'env:AUTHCTL_SMTP_URL', from: 'Acme <no-reply@example.test>' });
    expect(JSON.stringify(withPassword.values)).not.to.contain('smtp-pass-789');
    expect(withPassword.secrets.AUTHCTL_SMTP_URL).to.equal('smtps://mailer:smtp-pass-789@smtp.example.test:465');
    expect(withPassword.entered).to.include('AUTHCTL_SMTP_URL');
    const file = join(dir, 'eu.json');
    writeFileSync(file, JSON.stringify(withPassword.values));
    expect(loadConfig({ file, env: withPassword.secrets }).mail).to.deep.include({
      transport: 'smtp',
      smtpUrl: 'smtps://mailer:smtp-pass-789@smtp.example.test:465',
    });

    const plain = buildConfigFile({ ...ANSWERS, smtpUrl: 'smtp://relay.internal:25' });
    expect(plain.values.mail).to.deep.equal({ transport: 'smtp', smtpUrl: 'smtp://relay.internal:25', from: 'no-reply@auth.eu.example.test' });
    expect(plain.secrets).not.to.have.property('AUTHCTL_SMTP_URL');
    expect(buildConfigFile(ANSWERS).values).not.to.have.property('mail');
  });

  it('the wizard tries the SMTP URL like the database and Redis, asks again when it fails, then asks for the sender', async function () {
    const { terminal, done, outcome } = startWizard({ cwd: dir, migrate: false });
    await answerRegion(terminal, { region: 'eu-mail', publicUrl: 'https://auth.eu-mail.example.test', databaseUrl: db.url });
    await terminal.answer(/SMTP URL/, 'http://not-smtp.example.test');
    await terminal.waitFor(/must be a URL like smtp:\/\//);
    // Ctrl-U clears the line; nothing listens on that port: refused, asked again.
    await terminal.answer(/SMTP URL/, `\u0015smtp://127.0.0.1:${await freePort()}`);
    await terminal.waitFor(/✖ the server cannot be reached: connection refused[^\n]*Try again/);
    await terminal.answer(/SMTP URL/, `\u0015${smtp.url}`);
    await terminal.waitFor(new RegExp(`✔ connected \\(SMTP at 127\\.0\\.0\\.1:${smtp.port}\\)`));
    await terminal.answer(/Sender of mail \(From\)/, '');
    await terminal.answer(/Enable "Sign in with Google"/, '');
    await terminal.answer(/Turn on passkeys\?/, '');
    await terminal.answer(/Access token lifetime/, '');
    await terminal.answer(/Session \(refresh token\) lifetime/, '');
    await terminal.answer(/Add a peer region/, 'n');
    expect(await outcome, terminal.screen).to.equal(undefined);
    const result: InitResult = await done;
    const written = JSON.parse(readFileSync(result.file, 'utf8')) as Record<string, unknown>;
    expect(written.mail).to.deep.equal({ transport: 'smtp', smtpUrl: smtp.url, from: 'no-reply@auth.eu-mail.example.test' });
  });

  it('--yes --smtp-url: checked (exit 69 when unreachable, nothing written), the password goes to --secrets-file, and `mail test` works with what it wrote', async function () {
    const output = join(dir, 'eu.json');
    const down = await runCli(
      ['init', '--yes', '--database-url', db.url, '--smtp-url', `smtp://u:hunter2-pass@127.0.0.1:${await freePort()}`, '--output', output],
      { env: { AUTHCTL_SECRET: undefined } },
    );
    expect(down.code, describeRun(down)).to.equal(69);
    expect(down.stderr).to.match(/cannot use the SMTP server at --smtp-url: the server cannot be reached: connection refused.*--no-check/);
    expect(down.stderr + down.stdout).not.to.contain('hunter2-pass');
    expectNoStackTrace(down.stderr);
    expect(existsSync(output)).to.equal(false);

    if (!secured || !cert) this.skip();
    const secretsFile = join(dir, 'eu.secrets');
    const result = await runCli(
      [
        'init',
        '--yes',
        '--region',
        'eu-mail',
        '--public-url',
        'https://auth.eu-mail.example.test',
        '--database-url',
        db.url,
        '--smtp-url',
        secured.url,
        '--mail-from',
        'Acme <no-reply@example.test>',
        '--output',
        output,
        '--secrets-file',
        secretsFile,
        '--no-check',
        '--json',
      ],
      { env: { AUTHCTL_SECRET: undefined } },
    );
    const body = expectJson<InitResult>(result, 0);
    expect(body.secretNames).to.include('AUTHCTL_SMTP_URL');
    const text = readFileSync(output, 'utf8');
    expect(text).not.to.contain('smtp-pass-789');
    expect((JSON.parse(text) as { mail: unknown }).mail).to.deep.equal({
      transport: 'smtp',
      smtpUrl: 'env:AUTHCTL_SMTP_URL',
      from: 'Acme <no-reply@example.test>',
    });
    const secrets = Object.fromEntries([...readFileSync(secretsFile, 'utf8').matchAll(/^export (\w+)='([^']*)'$/gm)].map((m) => [m[1]!, m[2]!]));
    expect(secrets.AUTHCTL_SMTP_URL).to.equal(secured.url);

    // The file plus its secrets, and the CA of the self-signed server: a real message goes out.
    const file = JSON.parse(text) as Record<string, Record<string, unknown>>;
    file.mail!.tlsCaFile = cert.certFile;
    writeFileSync(output, JSON.stringify(file));
    const sent = await runCli(['mail', 'test', 'ivan@example.test', '--config', output, '--json'], { env: { ...secrets } });
    const report = expectJson<MailTestResult>(sent, 0);
    const [got] = await secured.waitFor(1);
    expect(got!.parsed.messageId).to.equal(report.messageId);
    expect(got!.secure).to.equal(true);
    expect(got!.user).to.equal('mailer');
  });

  it('--mail-from without --smtp-url, or a URL that is not smtp(s), is a usage error naming the flag (exit 2)', async function () {
    const [fromOnly, badUrl] = await Promise.all([
      runCli(['init', '--yes', '--no-check', '--mail-from', 'a@b.test', '--output', join(dir, 'a.json'), '--json'], { env: { AUTHCTL_SECRET: undefined } }),
      runCli(['init', '--yes', '--no-check', '--smtp-url', 'mailto:a@b.test', '--output', join(dir, 'b.json'), '--json'], {
        env: { AUTHCTL_SECRET: undefined },
      }),
    ]);
    expect(expectJsonError(fromOnly, 2, 'invalid_request').message).to.match(/^--mail-from: needs --smtp-url/);
    expect(expectJsonError(badUrl, 2, 'invalid_request').message).to.match(/^--smtp-url: must be a URL like smtp:\/\//);
    expect(existsSync(join(dir, 'a.json')) || existsSync(join(dir, 'b.json'))).to.equal(false);
  });
});
