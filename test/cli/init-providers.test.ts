import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { expect } from 'chai';
import { buildConfigFile } from '../../src/cli/init-wizard.js';
import { loadConfig } from '../../src/config/load.js';
import { providerSettings } from '../../src/core/oidc/provider-settings.js';
import { describeRun, expectJson, expectJsonError, runCli } from './run-cli.js';
import { ANSWERS, answerRegion, finishWizard, initFixture, startWizard } from './wizard.js';

const GOOGLE_SECRET = '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789';
const CLIENT_ID = '1234-abc.apps.googleusercontent.com';

/** `authctl init` adding "Sign in with Google": the secret in the environment, never in the file. */
describe('authctl init: a provider', function () {
  this.timeout(60_000);
  const fx = initFixture('init_providers');

  /** The file loads with the secrets in the environment and gives the google provider, its preset applied. */
  function expectGoogleConfig(file: string, env: Record<string, string>, redirectUrls: string[]): void {
    const text = readFileSync(file, 'utf8');
    expect(text).not.to.contain(GOOGLE_SECRET);
    const written = JSON.parse(text) as { identity: unknown };
    expect(written.identity).to.deep.equal({
      providers: [{ id: 'google', clientId: CLIENT_ID, clientSecret: 'env:AUTHCTL_GOOGLE_CLIENT_SECRET' }],
      redirectUrls,
    });
    const config = loadConfig({ file, env });
    expect(config.identity.redirectUrls).to.deep.equal(redirectUrls);
    expect(providerSettings(config)).to.deep.equal([
      {
        id: 'google',
        issuer: 'https://accounts.google.com',
        clientId: CLIENT_ID,
        clientSecret: GOOGLE_SECRET,
        scopes: ['openid', 'email', 'profile'],
        displayName: 'Google',
        linking: 'off',
      },
    ]);
  }

  it('writes the google provider with its secret as "env:AUTHCTL_GOOGLE_CLIENT_SECRET" (an entered secret); no provider: no identity block', function () {
    const built = buildConfigFile({ ...ANSWERS, google: { clientId: CLIENT_ID, clientSecret: GOOGLE_SECRET }, redirectUrls: ['https://app.example.test/cb'] });
    expect(built.secrets.AUTHCTL_GOOGLE_CLIENT_SECRET).to.equal(GOOGLE_SECRET);
    expect(built.entered).to.deep.equal(['AUTHCTL_GOOGLE_CLIENT_SECRET']);
    expect(JSON.stringify(built.values)).not.to.contain(GOOGLE_SECRET);
    expect(buildConfigFile(ANSWERS).values).not.to.have.property('identity');
  });

  it('the wizard offers "Sign in with Google": shows the redirect URI to register, masks the secret, checks the app URLs', async function () {
    const wizard = startWizard({ cwd: fx.dir, output: join(fx.dir, 'eu.json') });
    const { terminal } = wizard;
    await answerRegion(terminal, { region: 'eu', publicUrl: 'https://auth.eu.example.test', databaseUrl: fx.db.url });
    await terminal.answer(/SMTP URL/, '');
    await terminal.answer(/Enable "Sign in with Google"/, 'y');
    await terminal.waitFor(/Authorized redirect URI to enter at Google: https:\/\/auth\.eu\.example\.test\/v1\/auth\/oidc\/google\/callback/);
    await terminal.answer(/Google client ID/, CLIENT_ID);
    await terminal.answer(/Google client secret/, GOOGLE_SECRET);
    await terminal.answer(/URLs that sign-in may return to/, 'app.example.test/cb');
    await terminal.waitFor(/an absolute http\(s\) URL/);
    await terminal.answer(/URLs that sign-in may return to/, '\u0015https://app.example.test/cb, https://app.example.test/native/*');
    await terminal.answer(/Turn on passkeys\?/, '');
    const result = await finishWizard(wizard);
    expect(terminal.screen).not.to.contain(GOOGLE_SECRET);
    expect(result.secrets).not.to.have.property('AUTHCTL_GOOGLE_CLIENT_SECRET');
    expect(result.entered).to.deep.equal(['AUTHCTL_GOOGLE_CLIENT_SECRET']);
    expectGoogleConfig(result.file, { AUTHCTL_SECRET: result.secrets.AUTHCTL_SECRET!, AUTHCTL_GOOGLE_CLIENT_SECRET: GOOGLE_SECRET }, [
      'https://app.example.test/cb',
      'https://app.example.test/native/*',
    ]);
  });

  it('--yes --google-client-id with the secret on standard input: in --secrets-file only; the redirect URI to register is printed', async function () {
    const output = join(fx.dir, 'eu.json');
    const secretsFile = join(fx.dir, 'eu.secrets');
    const args = [
      'init',
      '--yes',
      '--public-url',
      'https://auth.eu.example.test',
      '--database-url',
      fx.db.url,
      '--output',
      output,
      '--secrets-file',
      secretsFile,
    ];
    const google = ['--google-client-id', CLIENT_ID, '--google-client-secret-stdin', '--redirect-url', 'https://app.example.test/cb'];
    const run = await runCli([...args, ...google], { input: `${GOOGLE_SECRET}\n`, env: { AUTHCTL_SECRET: undefined } });
    expect(run.code, describeRun(run)).to.equal(0);
    expect(run.stdout).to.contain('enter https://auth.eu.example.test/v1/auth/oidc/google/callback as an authorized redirect URI');
    expect(run.stdout + run.stderr).not.to.contain(GOOGLE_SECRET);
    const secrets = Object.fromEntries([...readFileSync(secretsFile, 'utf8').matchAll(/^export (\w+)='([^']*)'$/gm)].map((m) => [m[1]!, m[2]!]));
    expect(secrets.AUTHCTL_GOOGLE_CLIENT_SECRET).to.equal(GOOGLE_SECRET);
    expectGoogleConfig(output, secrets, ['https://app.example.test/cb']);

    // Usage errors (exit 2), nothing written: the secret as a flag does not exist, and each piece needs the others.
    const again = [...args.slice(0, -4), '--output', join(fx.dir, 'other.json')];
    const cases: Array<[string[], RegExp]> = [
      [['--google-client-id', CLIENT_ID, '--redirect-url', 'https://app.example.test/cb'], /--google-client-secret-stdin/],
      [['--google-client-id', CLIENT_ID, '--google-client-secret-stdin'], /needs --redirect-url/],
      [['--redirect-url', 'https://app.example.test/cb'], /needs a provider/],
      [[...google.slice(0, -1), 'not a url'], /--redirect-url not a url: an absolute http\(s\) URL/],
    ];
    for (const [extra, message] of cases) {
      const refused = await runCli([...again, ...extra, '--json'], { input: `${GOOGLE_SECRET}\n`, env: { AUTHCTL_SECRET: undefined } });
      expect(expectJsonError(refused, 2, 'invalid_request').message).to.match(message);
    }
    expect(expectJson(await runCli(['providers', 'list', '--config', output, '--json'], { env: secrets }), 0)).to.have.nested.property(
      'providers[0].id',
      'google',
    );
  });
});
