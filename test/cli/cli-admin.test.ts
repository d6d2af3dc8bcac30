import { generateKeyPairSync, sign, type KeyObject } from 'node:crypto';
import { chmodSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect } from 'chai';
import { buildContainer, type Container } from '../../src/container.js';
import type { TokenResponse } from '../../src/core/auth/auth-service.js';
import type { AppError } from '../../src/platform/errors.js';
import { testConfig } from '../helpers/app.js';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';
import { describeRun, expectJson, expectJsonError, expectNoStackTrace, runCli, type CliOptions, type CliResult } from './run-cli.js';
import { shutdown } from '../../src/runtime.js';
import { loginTokens } from '../helpers/assert.js';

interface Inspection {
  valid: boolean;
  reason: string | null;
  header: Record<string, unknown>;
  claims: Record<string, unknown>;
  checks: Array<{ check: string; ok: boolean; detail: string }>;
}

interface SessionView {
  id: string;
  state: string;
  userId: string;
}

/** A compact JWS as authctl's servers make them, over any header and claims. */
function jws(header: Record<string, unknown>, claims: Record<string, unknown>, key: KeyObject): string {
  const input = `${Buffer.from(JSON.stringify(header)).toString('base64url')}.${Buffer.from(JSON.stringify(claims)).toString('base64url')}`;
  return `${input}.${sign(null, Buffer.from(input), key).toString('base64url')}`;
}

function decodePart(token: string, index: 0 | 1): Record<string, unknown> {
  return JSON.parse(Buffer.from(token.split('.')[index]!, 'base64url').toString('utf8')) as Record<string, unknown>;
}

describe('authctl session, token inspect, keys retire, region (spawned as a user runs it)', function () {
  this.timeout(60_000);
  let db: TestDatabase;
  let container: Container;
  const cli = (args: string[], options: CliOptions = {}): Promise<CliResult> => runCli(args, { databaseUrl: db.url, ...options });
  const PASSWORD = 'admin-cli-passphrase-9';

  before(async function () {
    db = await createTestDatabase('cli_admin');
    container = buildContainer(testConfig(db.url));
    await container.db.migrateLatest();
    await container.keys.ensureSigningKey();
    await container.revocations.poll();
    for (const name of ['sam', 'tess', 'uma']) await container.users.register(name, PASSWORD);
  });

  after(async function () {
    await shutdown(container);
    await db?.drop();
  });

  const login = (username: string): Promise<TokenResponse> => loginTokens(container.auth, username, PASSWORD, { userAgent: 'cli-admin-test', ip: '192.0.2.7' });

  describe('session list / revoke', function () {
    it('lists live sessions of a user, with no token material; revoke ends one; a second revoke says so', async function () {
      const one = await login('sam');
      const two = await login('sam');
      const listed = expectJson<{ user: { username: string }; sessions: SessionView[] }>(await cli(['session', 'list', '--user', 'SAM', '--json']), 0);
      expect(listed.user.username).to.equal('sam');
      expect(listed.sessions.map((s) => s.id)).to.have.members([one.sessionId, two.sessionId]);
      for (const s of listed.sessions) expect(s).to.include({ state: 'live', userAgent: 'cli-admin-test', ip: '192.0.2.7' });
      const text = JSON.stringify(listed);
      expect(text).not.to.contain(one.refreshToken);
      expect(text).not.to.match(/counter|token/i);

      const revoked = expectJson<{ id: string; revoked: boolean }>(await cli(['session', 'revoke', one.sessionId.toUpperCase(), '--json']), 0);
      expect(revoked).to.include({ id: one.sessionId, revoked: true });
      let caught: unknown;
      await container.auth.refresh(one.refreshToken).catch((err: unknown) => (caught = err));
      expect((caught as AppError).code).to.equal('invalid_refresh_token');

      const after = expectJson<{ sessions: SessionView[] }>(await cli(['session', 'list', '--user', 'sam', '--json']), 0);
      expect(after.sessions.map((s) => s.id)).to.deep.equal([two.sessionId]);
      const again = await cli(['session', 'revoke', one.sessionId]);
      expect(again.code, describeRun(again)).to.equal(0);
      expect(again.stdout).to.match(/already revoked or expired/);
    });

    it('human output is an aligned table without colour when not on a terminal', async function () {
      await login('tess');
      const result = await cli(['session', 'list', '--user', 'tess']);
      expect(result.code, describeRun(result)).to.equal(0);
      const [header, row] = result.stdout.split('\n');
      expect(header).to.match(/^ID\s+STATE\s+CREATEDAT\s+LASTUSEDAT\s+EXPIRESAT\s+IP\s+USERAGENT$/);
      expect(row!.indexOf('live')).to.equal(header!.indexOf('STATE'));
      expect(result.stdout).not.to.contain('\u001b[');
    });

    it('unknown user or session: exit 3 with what to do next; a missing --user: exit 2', async function () {
      expectJsonError(await cli(['session', 'list', '--user', 'nobody-here', '--json']), 3, 'not_found');
      const unknown = expectJsonError(await cli(['session', 'revoke', '01900000-0000-7000-8000-000000000000', '--json']), 3, 'not_found');
      expect(unknown.message).to.contain('authctl session list --user');
      expectJsonError(await cli(['session', 'revoke', 'not-a-uuid', '--json']), 3, 'not_found');
      const human = await cli(['session', 'list', '--user', 'nobody-here']);
      expect(human.code, describeRun(human)).to.equal(3);
      expect(human.stderr).to.match(/no such user[\s\S]*authctl user list --search/);
      const missing = await cli(['session', 'list']);
      expect(missing.code, describeRun(missing)).to.equal(2);
      expect(missing.stderr).to.match(/Missing required flag user/);
      expectJsonError(await cli(['session', 'list', '--json']), 2, 'invalid_request');
    });
  });

  describe('token inspect', function () {
    let tokens: TokenResponse;
    let signer: { kid: string; key: KeyObject };
    before(async function () {
      tokens = await login('uma');
      signer = container.keys.signingKey();
    });
    const header = () => ({ alg: 'EdDSA', kid: signer.kid, typ: 'at+jwt' });
    const claims = (over: Record<string, unknown> = {}) => ({ ...decodePart(tokens.accessToken, 1), ...over });

    it('a live token: exit 0, valid, header and claims decoded, every check passed', async function () {
      const report = expectJson<Inspection>(await cli(['token', 'inspect', tokens.accessToken, '--json']), 0);
      expect(report.valid).to.equal(true);
      expect(report.reason).to.equal(null);
      expect(report.header).to.include({ alg: 'EdDSA', typ: 'at+jwt', kid: signer.kid });
      expect(report.claims).to.include({ sid: tokens.sessionId, preferred_username: 'uma' });
      expect(report.checks.map((c) => c.check)).to.include.members([
        'format',
        'alg',
        'typ',
        'kid',
        'signature',
        'iss',
        'aud',
        'exp',
        'iat',
        'claims',
        'session',
      ]);
      expect(report.checks.every((c) => c.ok)).to.equal(true);
    });

    it('reads the token from standard input with -', async function () {
      const report = expectJson<Inspection>(await cli(['token', 'inspect', '-', '--json'], { input: `${tokens.accessToken}\n` }), 0);
      expect(report.valid).to.equal(true);
    });

    const failures: Array<[string, () => string, RegExp]> = [
      ['expired', () => jws(header(), claims({ exp: Math.floor(Date.now() / 1000) - 3600 }), signer.key), /^exp: expired (60 min|1 h) ago/],
      ['unknown kid', () => jws({ ...header(), kid: 'no-such-kid' }, claims(), generateKeyPairSync('ed25519').privateKey), /^kid: unknown kid no-such-kid/],
      ['bad signature', () => jws(header(), claims(), generateKeyPairSync('ed25519').privateKey), /^signature: bad signature/],
      ['wrong issuer', () => jws(header(), claims({ iss: 'https://evil.example' }), signer.key), /^iss: wrong issuer "https:\/\/evil\.example"/],
      ['wrong audience', () => jws(header(), claims({ aud: 'other-app' }), signer.key), /^aud: wrong audience "other-app"; this region expects "authctl"/],
      ['wrong typ', () => jws({ ...header(), typ: 'JWT' }, claims(), signer.key), /^typ: typ is JWT/],
      ['a key in the header', () => jws({ ...header(), jku: 'https://evil.example/jwks' }, claims(), signer.key), /^kid: the header names its own key \(jku\)/],
      ['a padded spelling of a genuine token', () => `${tokens.accessToken}==`, /^format: not the canonical spelling/],
    ];
    for (const [what, make, reason] of failures) {
      it(`${what}: exit 1, invalid, the reason says so`, async function () {
        const report = expectJson<Inspection>(await cli(['token', 'inspect', make(), '--json']), 1);
        expect(report.valid).to.equal(false);
        expect(report.reason).to.match(reason);
      });
    }

    it('a revoked session: exit 1, the session check says when and why; human output names the reason', async function () {
      const other = await login('uma');
      await container.sessions.revoke(other.sessionId, 'admin');
      const report = expectJson<Inspection>(await cli(['token', 'inspect', other.accessToken, '--json']), 1);
      expect(report.reason).to.match(new RegExp(`^session: session ${other.sessionId} was revoked at .* \\(admin\\)`));
      const human = await cli(['token', 'inspect', other.accessToken]);
      expect(human.code, describeRun(human)).to.equal(1);
      expect(human.stdout).to.match(/Invalid: session: session .* was revoked/);
      expect(human.stdout).to.match(/^signature\s+ok\s+valid signature/m);
    });

    it('not a JWT at all: exit 2 explaining the expected shape', async function () {
      const error = expectJsonError(await cli(['token', 'inspect', 'rt_local_not-a-jwt', '--json']), 2, 'invalid_request');
      expect(error.message).to.match(/not a JWT/);
    });
  });

  describe('keys retire', function () {
    it('refuses the key that signs now (exit 4), retires an older one at once with --now, then says it is retired (exit 4)', async function () {
      await container.keys.load();
      const current = container.keys.signingKey().kid;
      const oldToken = (await login('tess')).accessToken;

      const refused = expectJsonError(await cli(['keys', 'retire', '--json', '--', current]), 4, 'conflict');
      expect(refused.message).to.contain('authctl keys rotate');

      // A rotation that activates at once: the old key stops signing and is scheduled to retire.
      const rotated = expectJson<{ key: { kid: string; state: string } }>(
        await cli(['keys', 'rotate', '--json'], { env: { AUTHCTL_KEY_ACTIVATION_DELAY: '0' } }),
        0,
      );
      expect(rotated.key.state).to.equal('active');

      const scheduled = expectJson<{ key: { kid: string; state: string; retiresAt: string } }>(await cli(['keys', 'retire', '--json', '--', current]), 0);
      expect(scheduled.key).to.include({ kid: current, state: 'retiring' });
      // Not later than the access-token lifetime plus skew from now: tokens it signed still verify.
      expect(Date.parse(scheduled.key.retiresAt) - Date.now()).to.be.within(0, (900 + 30) * 1000);
      await container.keys.load();
      expect((await container.auth.authenticate(oldToken)).username).to.equal('tess');

      const now = expectJson<{ key: { state: string } }>(await cli(['keys', 'retire', '--now', '--json', '--', current]), 0);
      expect(now.key.state).to.equal('retired');
      await container.keys.load();
      expect(container.keys.jwks().keys.map((k) => k.kid)).not.to.include(current);
      let caught: unknown;
      await container.auth.authenticate(oldToken).catch((err: unknown) => (caught = err));
      expect((caught as AppError).code).to.equal('invalid_token');

      const inspected = expectJson<Inspection>(await cli(['token', 'inspect', oldToken, '--json']), 1);
      expect(inspected.reason).to.match(new RegExp(`^kid: key ${current} \\(region local\\) was retired`));
      expectJsonError(await cli(['keys', 'retire', '--json', '--', current]), 4, 'conflict');
    });

    it('a kid that starts with "-" reads as a flag: the usage error says to put -- before it', async function () {
      const result = await cli(['keys', 'retire', '-AbC_not-a-flag', '--json']);
      expect(expectJsonError(result, 2, 'invalid_request').message).to.contain('put -- before it: `-- -AbC_not-a-flag`');
      const passed = await cli(['keys', 'retire', '--json', '--', '-AbC_not-a-flag']);
      expectJsonError(passed, 3, 'not_found');
    });

    it('an unknown kid is exit 3 pointing at keys list', async function () {
      const error = expectJsonError(await cli(['keys', 'retire', 'no-such-kid', '--json']), 3, 'not_found');
      expect(error.message).to.contain('authctl keys list');
    });
  });

  describe('region list / add / remove (the config file)', function () {
    let dir: string;
    let file: string;
    beforeEach(function () {
      dir = mkdtempSync(join(tmpdir(), 'authctl-region-'));
      file = join(dir, 'eu.json');
      writeFileSync(
        file,
        `${JSON.stringify({ region: 'eu', publicUrl: 'https://auth.eu.example.com', database: { url: 'postgres://db/authctl' } }, null, 2)}\n`,
      );
    });
    afterEach(function () {
      rmSync(dir, { recursive: true, force: true });
    });
    const region = (args: string[], env: Record<string, string | undefined> = {}) => runCli(['region', ...args, '--config', file, '--json'], { env });

    it('add writes an env reference (never a secret), list shows it, remove takes it out; other keys are kept', async function () {
      const added = expectJson<{ peer: { name: string; secretFrom: string } }>(await region(['add', 'us', '--url', 'https://auth.us.example.com']), 0);
      expect(added.peer).to.deep.equal({ name: 'us', url: 'https://auth.us.example.com', secretFrom: 'AUTHCTL_PEER_US_SECRET' });
      const generated = expectJson<{ generatedSecret: string }>(
        await region(['add', 'ap', '--url', 'https://auth.ap.example.com', '--secret-env', 'AP_SECRET', '--generate-secret']),
        0,
      );
      expect(generated.generatedSecret).to.match(/^[A-Za-z0-9_-]{64}$/);

      const written = JSON.parse(readFileSync(file, 'utf8')) as { database: unknown; regions: { peers: unknown[] } };
      expect(written.database).to.deep.equal({ url: 'postgres://db/authctl' });
      expect(written.regions.peers).to.deep.equal([
        { name: 'us', url: 'https://auth.us.example.com', secret: 'env:AUTHCTL_PEER_US_SECRET' },
        { name: 'ap', url: 'https://auth.ap.example.com', secret: 'env:AP_SECRET' },
      ]);
      expect(readFileSync(file, 'utf8')).not.to.contain(generated.generatedSecret);

      const listed = expectJson<{ region: string; peers: Array<{ name: string; secretSet: boolean }> }>(
        await region(['list'], { AP_SECRET: generated.generatedSecret }),
        0,
      );
      expect(listed.region).to.equal('eu');
      expect(listed.peers).to.deep.equal([
        { name: 'us', url: 'https://auth.us.example.com', secretFrom: 'AUTHCTL_PEER_US_SECRET', secretSet: false },
        { name: 'ap', url: 'https://auth.ap.example.com', secretFrom: 'AP_SECRET', secretSet: true },
      ]);

      expectJson(await region(['remove', 'us']), 0);
      expect((JSON.parse(readFileSync(file, 'utf8')) as { regions: { peers: Array<{ name: string }> } }).regions.peers.map((p) => p.name)).to.deep.equal([
        'ap',
      ]);
    });

    it("keeps the file's mode: a config made private (600) stays private after add and remove", async function () {
      chmodSync(file, 0o600);
      expectJson(await region(['add', 'us', '--url', 'https://auth.us.example.com']), 0);
      expect(statSync(file).mode & 0o777).to.equal(0o600);
      expectJson(await region(['remove', 'us']), 0);
      expect(statSync(file).mode & 0o777).to.equal(0o600);
    });

    it('a duplicate is exit 4 (unless --force); a bad URL or name is exit 2; removing an unknown peer is exit 3; the file is unchanged', async function () {
      expectJson(await region(['add', 'us', '--url', 'https://auth.us.example.com']), 0);
      const before = readFileSync(file, 'utf8');
      expect(expectJsonError(await region(['add', 'us', '--url', 'https://other.example.com']), 4, 'conflict').message).to.contain('--force');
      expectJsonError(await region(['add', 'ap', '--url', 'ftp://auth.ap.example.com']), 2, 'invalid_request');
      expectJsonError(await region(['add', 'Not_A_Name', '--url', 'https://x.example.com']), 2, 'invalid_request');
      expectJsonError(await region(['add', 'eu', '--url', 'https://x.example.com']), 2, 'invalid_request');
      expect(expectJsonError(await region(['remove', 'nowhere']), 3, 'not_found').message).to.contain('peers: us');
      expect(readFileSync(file, 'utf8')).to.equal(before);
      expectJson(await region(['add', 'us', '--url', 'https://other.example.com', '--force']), 0);
      expect(readFileSync(file, 'utf8')).to.contain('https://other.example.com');
      const missingUrl = await runCli(['region', 'add', 'ap', '--config', file]);
      expect(missingUrl.code, describeRun(missingUrl)).to.equal(2);
    });

    it('no config file, or a broken one: exit 78 saying what to do', async function () {
      const none = await runCli(['region', 'list', '--json']);
      expect(expectJsonError(none, 78, 'bad_config').message).to.contain('authctl init');
      writeFileSync(file, '{ "region": "eu", ');
      const broken = await runCli(['region', 'list', '--config', file]);
      expect(broken.code, describeRun(broken)).to.equal(78);
      expect(broken.stderr).to.match(/not valid JSON/);
      expectNoStackTrace(broken.stderr);
    });
  });

  describe('shell completion', function () {
    it('autocomplete builds a completion script that knows every topic and command', async function () {
      const cache = mkdtempSync(join(tmpdir(), 'authctl-completion-'));
      try {
        const env = { XDG_CACHE_HOME: cache, HOME: cache, SHELL: '/bin/bash' };
        const setup = await runCli(['autocomplete', 'bash'], { env });
        expect(setup.code, describeRun(setup)).to.equal(0);
        expect(setup.stdout).to.match(/bashrc/);
        const script = await runCli(['autocomplete', 'script', 'bash'], { env });
        expect(script.code, describeRun(script)).to.equal(0);
        const setupPath = /AUTHCTL_AC_BASH_SETUP_PATH=(\S+)/.exec(script.stdout)?.[1];
        expect(setupPath, script.stdout).to.be.a('string');
        const setupFile = readFileSync(setupPath!, 'utf8');
        const completions = readFileSync(/AUTHCTL_AC_BASH_COMPFUNC_PATH=(\S+)/.exec(setupFile)?.[1] ?? '', 'utf8');
        for (const word of ['session', 'token', 'inspect', 'retire', 'region', 'init', '--secrets-file']) expect(completions).to.contain(word);
      } finally {
        rmSync(cache, { recursive: true, force: true });
      }
    });

    it('--version prints authctl/<version>', async function () {
      const result = await runCli(['--version']);
      expect(result.code, describeRun(result)).to.equal(0);
      expect(result.stdout).to.match(/^authctl\/\d+\.\d+\.\d+ /);
    });
  });

  describe('services and configuration', function () {
    it('an unreachable database is exit 69 for session, token and keys commands', async function () {
      const down = { databaseUrl: 'postgres://postgres@127.0.0.1:1/authctl' };
      const results = await Promise.all([
        runCli(['session', 'list', '--user', 'sam', '--json'], down),
        runCli(['session', 'revoke', '01900000-0000-7000-8000-000000000000', '--json'], down),
        runCli(['token', 'inspect', jws({ alg: 'EdDSA', kid: 'k', typ: 'at+jwt' }, {}, generateKeyPairSync('ed25519').privateKey), '--json'], down),
        runCli(['keys', 'retire', 'k', '--json'], down),
      ]);
      for (const result of results) {
        expectJsonError(result, 69, 'unavailable');
        expectNoStackTrace(result.stdout + result.stderr);
      }
    });

    it('a bad configuration value is exit 78 naming the variable', async function () {
      const result = await cli(['session', 'list', '--user', 'sam'], { env: { AUTHCTL_ACCESS_TTL: 'soon' } });
      expect(result.code, describeRun(result)).to.equal(78);
      expect(result.stderr).to.contain('AUTHCTL_ACCESS_TTL');
    });
  });
});
