import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect } from 'chai';
import { describeRun, expectJson, expectJsonError, expectNoStackTrace, runCli, type CliOptions } from './run-cli.js';

const GOOGLE_SECRET = 'GOCSPX-never-printed-0123456789';
const OKTA_SECRET = 'okta-secret-never-printed-0123';

/** `authctl providers …` spawned as an admin runs it, over a config file. */
describe('authctl providers (spawned as a user runs it)', function () {
  this.timeout(60_000);
  let dir: string;
  let file: string;

  const cli = (args: string[], options: CliOptions = {}) =>
    runCli([...args, '--config', file], { ...options, env: { AUTHCTL_LOG_LEVEL: 'debug', OKTA_SECRET, ...options.env } });

  before(function () {
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
          ],
        },
      }),
    );
  });

  after(function () {
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
    expect(error.message).to.contain('github').and.contain('okta, down');
    const human = await cli(['providers', 'check', 'github']);
    expect(human.code, describeRun(human)).to.equal(3);
    expectNoStackTrace(human.stderr);
  });
});
