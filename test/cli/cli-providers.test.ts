import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect } from 'chai';
import type { ProviderEndpoints } from '../../src/core/oidc/oidc-flows.js';
import { startProvider, type TestProvider } from '../oidc/support.js';
import { describeRun, expectJson, expectJsonError, expectNoStackTrace, runCli, type CliOptions } from './run-cli.js';

const GOOGLE_SECRET = 'GOCSPX-never-printed-0123456789';
const OKTA_SECRET = 'okta-secret-never-printed-0123';

/** `authctl providers …` spawned as an admin runs it, over a config file. */
describe('authctl providers (spawned as a user runs it)', function () {
  this.timeout(60_000);
  let dir: string;
  let file: string;
  let op: TestProvider;

  const cli = (args: string[], options: CliOptions = {}) =>
    runCli([...args, '--config', file], { ...options, env: { AUTHCTL_LOG_LEVEL: 'debug', OKTA_SECRET, ...options.env } });

  before(async function () {
    // A real OpenID Provider (oidc-provider) on loopback.
    op = await startProvider({ name: 'Keycloak' });
    dir = mkdtempSync(join(tmpdir(), 'authctl-cli-providers-'));
    file = join(dir, 'eu.json');
    writeFileSync(
      file,
      JSON.stringify({
        region: 'eu',
        publicUrl: 'https://auth.eu.example.test/',
        identity: {
          redirectUrls: ['https://app.example.test/auth/callback'],
          providers: [
            {
              id: 'okta',
              issuer: 'https://example.okta.com',
              clientId: 'okta-client',
              clientSecret: 'env:OKTA_SECRET',
              displayName: 'Okta',
              linking: 'verified-email',
            },
            // Closed port on loopback: discovery is refused at once.
            { id: 'down', issuer: 'http://127.0.0.1:1', clientId: 'down-client' },
            { id: 'keycloak', issuer: op.url, clientId: 'kc-client', clientSecret: 'env:OKTA_SECRET' },
          ],
        },
      }),
    );
  });

  after(async function () {
    await op?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('providers list --json: every provider with its preset applied and the redirect URI to register, never a secret', async function () {
    const run = await cli(['providers', 'list', '--json'], {
      env: { AUTHCTL_GOOGLE_CLIENT_ID: '1234-abc.apps.googleusercontent.com', AUTHCTL_GOOGLE_CLIENT_SECRET: GOOGLE_SECRET },
    });
    const body = expectJson<{ providers: Array<Record<string, unknown>>; redirectUrls: string[] }>(run, 0);
    expect(body.providers).to.deep.equal([
      {
        id: 'okta',
        displayName: 'Okta',
        issuer: 'https://example.okta.com',
        clientId: 'okta-client',
        secretSet: true,
        scopes: ['openid', 'email', 'profile'],
        linking: 'verified-email',
        redirectUri: 'https://auth.eu.example.test/v1/auth/oidc/okta/callback',
      },
      {
        id: 'down',
        displayName: 'down',
        issuer: 'http://127.0.0.1:1',
        clientId: 'down-client',
        secretSet: false,
        scopes: ['openid', 'email', 'profile'],
        linking: 'off',
        redirectUri: 'https://auth.eu.example.test/v1/auth/oidc/down/callback',
      },
      {
        id: 'keycloak',
        displayName: 'keycloak',
        issuer: op.url,
        clientId: 'kc-client',
        secretSet: true,
        scopes: ['openid', 'email', 'profile'],
        linking: 'off',
        redirectUri: 'https://auth.eu.example.test/v1/auth/oidc/keycloak/callback',
      },
      {
        id: 'google',
        displayName: 'Google',
        issuer: 'https://accounts.google.com',
        clientId: '1234-abc.apps.googleusercontent.com',
        secretSet: true,
        scopes: ['openid', 'email', 'profile'],
        linking: 'off',
        redirectUri: 'https://auth.eu.example.test/v1/auth/oidc/google/callback',
      },
    ]);
    expect(body.redirectUrls).to.deep.equal(['https://app.example.test/auth/callback']);
    for (const output of [run.stdout, run.stderr]) expect(output).not.to.contain(GOOGLE_SECRET).and.not.to.contain(OKTA_SECRET);
  });

  it('providers list (human): a table with the redirect URIs and where apps may be sent back; no secret', async function () {
    const run = await cli(['providers', 'list']);
    expect(run.code, describeRun(run)).to.equal(0);
    expect(run.stdout).to.contain('https://auth.eu.example.test/v1/auth/oidc/okta/callback').and.contain('SECRETSET');
    expect(run.stdout).to.contain('Apps may be sent back to: https://app.example.test/auth/callback');
    expect(run.stdout + run.stderr).not.to.contain(OKTA_SECRET);
  });

  it('providers list with no provider says how to add one', async function () {
    const empty = join(dir, 'empty.json');
    writeFileSync(empty, JSON.stringify({ region: 'eu' }));
    const run = await runCli(['providers', 'list', '--config', empty]);
    expect(run.code, describeRun(run)).to.equal(0);
    expect(run.stdout).to.contain('No providers').and.contain('AUTHCTL_GOOGLE_CLIENT_ID');
  });

  it('providers check of an id that is not configured: exit 3 (not_found) naming the configured ones', async function () {
    const run = await cli(['providers', 'check', 'github', '--json']);
    const error = expectJsonError(run, 3, 'not_found');
    expect(error.message).to.contain('github').and.contain('okta, down, keycloak');
    const human = await cli(['providers', 'check', 'github']);
    expect(human.code, describeRun(human)).to.equal(3);
    expectNoStackTrace(human.stderr);
  });

  it('providers check: discovery at the real provider, its endpoints and the redirect URI to register; no secret', async function () {
    const run = await cli(['providers', 'check', 'keycloak', '--json']);
    const body = expectJson<{ provider: string; endpoints: ProviderEndpoints }>(run, 0);
    const discovery = (await (await fetch(`${op.url}/.well-known/openid-configuration`)).json()) as Record<string, string>;
    expect(body.provider).to.equal('keycloak');
    expect(body.endpoints).to.deep.include({
      issuer: discovery.issuer,
      authorizationEndpoint: discovery.authorization_endpoint,
      tokenEndpoint: discovery.token_endpoint,
      jwksUri: discovery.jwks_uri,
      userinfoEndpoint: discovery.userinfo_endpoint,
      redirectUri: 'https://auth.eu.example.test/v1/auth/oidc/keycloak/callback',
    });
    const human = await cli(['providers', 'check', 'keycloak']);
    expect(human.code, describeRun(human)).to.equal(0);
    expect(human.stdout).to.contain(`jwks_uri:               ${discovery.jwks_uri}`);
    expect(human.stdout).to.contain('Register this redirect URI at the provider: https://auth.eu.example.test/v1/auth/oidc/keycloak/callback');
    for (const output of [run.stdout, run.stderr, human.stdout, human.stderr]) expect(output).not.to.contain(OKTA_SECRET);
  });

  it('providers check of a provider that does not answer: exit 69, said plainly, no stack trace', async function () {
    const run = await cli(['providers', 'check', 'down', '--json']);
    const body = expectJson<{ error: { code: string; message: string } }>(run, 69);
    expect(body.error.code).to.be.oneOf(['provider_unavailable', 'provider_error']);
    const human = await cli(['providers', 'check', 'down']);
    expect(human.code, describeRun(human)).to.equal(69);
    expect(human.stderr).to.match(/^Error: /);
    expectNoStackTrace(human.stderr);
  });
});
