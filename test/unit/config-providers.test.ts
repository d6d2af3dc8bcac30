import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect } from 'chai';
import { ENV_VARIABLES, loadConfig } from '../../src/config/load.js';
import { providerSettings } from '../../src/core/oidc/provider-settings.js';
import { rejectsWith } from '../helpers/assert.js';

const loadError = (load: () => unknown) => rejectsWith(Promise.resolve().then(load), 'bad_config');

/** Provider sign-in from the environment: the google provider, the redirect URLs and the timeouts. */
describe('config: provider sign-in from the environment', function () {
  let dir: string;

  beforeEach(function () {
    dir = mkdtempSync(join(tmpdir(), 'authctl-config-providers-'));
  });

  afterEach(function () {
    rmSync(dir, { recursive: true, force: true });
  });

  const file = (value: unknown): string => {
    const path = join(dir, 'authctl.json');
    writeFileSync(path, JSON.stringify(value));
    return path;
  };

  it('AUTHCTL_GOOGLE_CLIENT_ID / _SECRET add the google provider with its preset; AUTHCTL_REDIRECT_URLS is a list', function () {
    const config = loadConfig({
      cwd: dir,
      env: {
        AUTHCTL_GOOGLE_CLIENT_ID: '1234-abc.apps.googleusercontent.com',
        AUTHCTL_GOOGLE_CLIENT_SECRET: 'GOCSPX-secret-value',
        AUTHCTL_REDIRECT_URLS: 'https://app.example.test/auth/callback, https://app.example.test/native/*',
        AUTHCTL_PROVIDER_TIMEOUT_MS: '2500',
        AUTHCTL_PROVIDER_FLOW_TTL: '300',
      },
    });
    expect(config.identity.providers).to.have.length(1);
    expect(config.identity.redirectUrls).to.deep.equal(['https://app.example.test/auth/callback', 'https://app.example.test/native/*']);
    expect(config.identity.providerTimeoutMs).to.equal(2500);
    expect(config.identity.providerFlowTtl).to.equal(300);
    expect(providerSettings(config)).to.deep.equal([
      {
        id: 'google',
        issuer: 'https://accounts.google.com',
        clientId: '1234-abc.apps.googleusercontent.com',
        clientSecret: 'GOCSPX-secret-value',
        scopes: ['openid', 'email', 'profile'],
        displayName: 'Google',
        linking: 'off',
      },
    ]);
  });

  it("fill in the file's google provider (env beats file) and leave the other providers alone", function () {
    const config = loadConfig({
      cwd: dir,
      file: file({
        identity: {
          redirectUrls: ['https://app.example.test/cb'],
          providers: [
            { id: 'okta', issuer: 'https://example.okta.com', clientId: 'okta-client' },
            { id: 'google', clientId: 'from-file', clientSecret: 'env:MY_GOOGLE_SECRET', linking: 'verified-email' },
          ],
        },
      }),
      env: { MY_GOOGLE_SECRET: 'file-secret', AUTHCTL_GOOGLE_CLIENT_ID: 'from-env' },
    });
    expect(config.identity.providers.map((p) => [p.id, p.clientId, p.clientSecret, p.linking])).to.deep.equal([
      ['okta', 'okta-client', undefined, 'off'],
      ['google', 'from-env', 'file-secret', 'verified-email'],
    ]);
  });

  it('a secret without a client id, or a provider without redirect URLs, is bad config (exit 78) that never shows the secret', async function () {
    const alone = await loadError(() =>
      loadConfig({ cwd: dir, env: { AUTHCTL_GOOGLE_CLIENT_SECRET: 'GOCSPX-do-not-print', AUTHCTL_REDIRECT_URLS: 'https://app.example.test/cb' } }),
    );
    expect(alone.code).to.equal('bad_config');
    expect(alone.exitCode).to.equal(78);
    expect(alone.detail).to.include('AUTHCTL_GOOGLE_CLIENT_ID').and.not.include('GOCSPX-do-not-print');

    const noRedirect = await loadError(() =>
      loadConfig({ cwd: dir, env: { AUTHCTL_GOOGLE_CLIENT_ID: 'id', AUTHCTL_GOOGLE_CLIENT_SECRET: 'GOCSPX-do-not-print' } }),
    );
    expect(noRedirect.detail).to.include('identity.redirectUrls').and.not.include('GOCSPX-do-not-print');

    const badTimeout = await loadError(() => loadConfig({ cwd: dir, env: { AUTHCTL_PROVIDER_TIMEOUT_MS: '5' } }));
    expect(badTimeout.detail).to.include('AUTHCTL_PROVIDER_TIMEOUT_MS');
  });

  it("every variable is documented in README's configuration table", function () {
    const readme = readFileSync(new URL('../../../README.md', import.meta.url), 'utf8');
    for (const name of [
      'AUTHCTL_GOOGLE_CLIENT_ID',
      'AUTHCTL_GOOGLE_CLIENT_SECRET',
      'AUTHCTL_REDIRECT_URLS',
      'AUTHCTL_PROVIDER_TIMEOUT_MS',
      'AUTHCTL_PROVIDER_FLOW_TTL',
    ]) {
      expect(Object.keys(ENV_VARIABLES)).to.include(name);
      expect(readme, name).to.match(new RegExp(`^\\| [^\\n]*\`${name}\``, 'm'));
    }
  });
});
