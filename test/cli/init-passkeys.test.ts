import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { expect } from 'chai';
import { buildConfigFile, defaultRpId } from '../../src/cli/init-wizard.js';
import { loadConfig } from '../../src/config/load.js';
import { describeRun, expectJsonError, runCli } from './run-cli.js';
import { ANSWERS, answerRegion, finishWizard, initFixture, startWizard } from './wizard.js';

const ANDROID_ORIGIN = `android:apk-key-hash:${'A'.repeat(42)}E`;

/** `authctl init` turning passkeys on: identity.webauthn written, its RP ID and origins checked as a browser would. */
describe('authctl init: passkeys', function () {
  this.timeout(60_000);
  const fx = initFixture('init_passkeys');

  /** The file's identity.webauthn, and the config it loads to (the schema's checks passed). */
  function webauthnOf(file: string, secrets: Record<string, string>): { written: unknown; loaded: unknown } {
    const written = (JSON.parse(readFileSync(file, 'utf8')) as { identity?: { webauthn?: unknown } }).identity?.webauthn;
    return { written, loaded: loadConfig({ file, env: secrets }).identity.webauthn };
  }

  it('defaults: the RP ID is the public URL’s host (localhost for an IP address), the origin https://<RP ID>; off: no identity block', function () {
    expect(buildConfigFile({ ...ANSWERS, passkeys: {} }).values.identity).to.deep.equal({
      webauthn: { enabled: true, rpId: 'auth.eu.example.test', origins: ['https://auth.eu.example.test'] },
    });
    expect(buildConfigFile(ANSWERS).values).not.to.have.property('identity');
    const withGoogle = buildConfigFile({
      ...ANSWERS,
      google: { clientId: '1234-abc.apps.googleusercontent.com', clientSecret: 'GOCSPX-x' },
      redirectUrls: ['https://app.example.test/cb'],
      passkeys: { rpId: 'example.test', rpName: 'Example', origins: ['https://app.example.test'] },
    }).values.identity as Record<string, unknown>;
    expect(Object.keys(withGoogle)).to.have.members(['providers', 'redirectUrls', 'webauthn']);
    expect(withGoogle.webauthn).to.deep.equal({ enabled: true, rpId: 'example.test', rpName: 'Example', origins: ['https://app.example.test'] });
    expect([defaultRpId('http://127.0.0.1:8080'), defaultRpId('http://[::1]:8080'), defaultRpId('https://Auth.Example.test:8443/x')]).to.deep.equal([
      'localhost',
      'localhost',
      'auth.example.test',
    ]);
  });

  it('the wizard asks for the RP ID, the name and the origins, refusing an RP ID that is not a domain and an origin off the RP ID', async function () {
    const wizard = startWizard({ cwd: fx.dir, output: join(fx.dir, 'eu.json') });
    const { terminal } = wizard;
    await answerRegion(terminal, { region: 'eu', publicUrl: 'https://auth.eu.example.test', databaseUrl: fx.db.url });
    await terminal.answer(/SMTP URL/, '');
    await terminal.answer(/Enable "Sign in with Google"/, 'n');
    await terminal.answer(/Turn on passkeys\?/, 'y');
    await terminal.waitFor(/Changing it later orphans every passkey/);
    // The default is shown: the public URL's host.
    await terminal.answer(/Passkeys RP ID[^\n]*\(auth\.eu\.example\.test\)/, '\u0015https://example.test');
    await terminal.waitFor(/a lowercase domain name/);
    await terminal.answer(/Passkeys RP ID/, '\u0015example.test');
    await terminal.answer(/Name the browser shows[^\n]*\(authctl\)/, '\u0015Example App');
    // The origin suggested follows the RP ID now given.
    await terminal.answer(/Origins passkeys are used on[^\n]*\(https:\/\/example\.test\)/, '\u0015https://evil.example');
    await terminal.waitFor(/https:\/\/evil\.example is not on example\.test/);
    await terminal.answer(/Origins passkeys are used on/, `\u0015https://app.example.test, ${ANDROID_ORIGIN}`);
    const result = await finishWizard(wizard);
    const { written, loaded } = webauthnOf(result.file, result.secrets);
    const expected = { enabled: true, rpId: 'example.test', rpName: 'Example App', origins: ['https://app.example.test', ANDROID_ORIGIN] };
    expect(written).to.deep.equal(expected);
    expect(loaded).to.deep.equal(expected);
  });

  it('--yes --passkeys: the defaults from --public-url, or the --webauthn-* flags; a bad one is a usage error (exit 2) and nothing is written', async function () {
    const base = ['init', '--yes', '--no-check', '--public-url', 'https://auth.example.test', '--database-url', fx.db.url];
    const output = join(fx.dir, 'defaults.json');
    const secretsFile = join(fx.dir, 'defaults.secrets');
    const run = await runCli([...base, '--passkeys', '--output', output, '--secrets-file', secretsFile], { env: { AUTHCTL_SECRET: undefined } });
    expect(run.code, describeRun(run)).to.equal(0);
    const secrets = Object.fromEntries([...readFileSync(secretsFile, 'utf8').matchAll(/^export (\w+)='([^']*)'$/gm)].map((m) => [m[1]!, m[2]!]));
    expect(webauthnOf(output, secrets).written).to.deep.equal({ enabled: true, rpId: 'auth.example.test', origins: ['https://auth.example.test'] });
    expect(webauthnOf(output, secrets).loaded).to.deep.include({ enabled: true, rpId: 'auth.example.test' });

    const chosen = join(fx.dir, 'chosen.json');
    const flags = [
      '--webauthn-rp-id',
      'example.test',
      '--webauthn-rp-name',
      'Example',
      '--webauthn-origin',
      'https://app.example.test',
      '--webauthn-origin',
      ANDROID_ORIGIN,
    ];
    const second = await runCli([...base, '--passkeys', ...flags, '--output', chosen], { env: { AUTHCTL_SECRET: undefined } });
    expect(second.code, describeRun(second)).to.equal(0);
    expect(webauthnOf(chosen, { AUTHCTL_SECRET: secrets.AUTHCTL_SECRET! }).written).to.deep.equal({
      enabled: true,
      rpId: 'example.test',
      rpName: 'Example',
      origins: ['https://app.example.test', ANDROID_ORIGIN],
    });

    const refused = join(fx.dir, 'refused.json');
    const cases: Array<[string[], RegExp]> = [
      [['--webauthn-rp-id', 'example.test'], /--webauthn-\*: needs --passkeys/],
      [['--passkeys', '--webauthn-rp-id', 'https://example.test'], /--webauthn-rp-id https:\/\/example\.test: a lowercase domain name/],
      [['--passkeys', '--webauthn-rp-id', '10.0.0.5'], /not an IP address/],
      [['--passkeys', '--webauthn-rp-id', 'example.test', '--webauthn-origin', 'https://example.test.evil.example'], /is not on example\.test/],
      [['--passkeys', '--webauthn-origin', 'http://app.example.test'], /--webauthn-origin http:\/\/app\.example\.test: an origin: https:\/\/host/],
      [['--passkeys', '--webauthn-rp-name', ''], /--webauthn-rp-name/],
    ];
    for (const [extra, message] of cases) {
      const result = await runCli([...base, ...extra, '--output', refused, '--json'], { env: { AUTHCTL_SECRET: undefined } });
      expect(expectJsonError(result, 2, 'invalid_request').message).to.match(message);
    }
    expect(() => readFileSync(refused)).to.throw(/ENOENT/);
  });
});
