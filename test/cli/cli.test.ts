import { expect } from 'chai';
import { testConfig } from '../helpers/app.js';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';
import { buildContainer, type Container } from '../../src/container.js';
import { AppError } from '../../src/platform/errors.js';
import type { TokenResponse } from '../../src/core/auth/auth-service.js';
import { describeRun, expectJson, expectJsonError, expectNoStackTrace, packageVersion, runCli, type CliOptions, type CliResult } from './run-cli.js';
import { shutdown } from '../../src/runtime.js';
import { loginTokens } from '../helpers/assert.js';

/** Asserts that `promise` rejects with an AppError of this code. */
async function expectAppError(promise: Promise<unknown>, code: string): Promise<void> {
  let caught: unknown;
  try {
    await promise;
  } catch (err) {
    caught = err;
  }
  expect(caught, `expected an AppError ${code}`).to.be.instanceOf(AppError);
  expect((caught as AppError).code).to.equal(code);
}

interface AdminUser {
  id: string;
  username: string;
  status: string;
  homeRegion: string;
  createdAt: string;
}

const PASSWORDS = {
  alice: 'alice-cli-passphrase-1',
  bob: 'bob-cli-passphrase-2',
  carol: 'carol-cli-passphrase-3',
  dave: 'dave-cli-passphrase-4',
  erin: 'erin-cli-passphrase-5',
  frank: 'frank-cli-passphrase-6',
  gina: 'gina-cli-passphrase-7',
} as const;

describe('authctl CLI (spawned as a user runs it)', function () {
  let db: TestDatabase;
  /** The same region in-process: sees what the CLI changed, as a running server would. */
  let container: Container;
  const cli = (args: string[], options: CliOptions = {}): Promise<CliResult> => runCli(args, { databaseUrl: db.url, ...options });
  const login = (username: keyof typeof PASSWORDS, password: string = PASSWORDS[username]): Promise<TokenResponse> =>
    loginTokens(container.auth, username, password, { userAgent: 'cli-test' });

  before(async function () {
    db = await createTestDatabase('cli');
    container = buildContainer(testConfig(db.url));
    await container.db.migrateLatest();
    await container.keys.ensureSigningKey();
    await container.revocations.poll();
    // Each scenario gets its own user, so one failing test does not cascade into the others.
    for (const name of ['bob', 'carol', 'dave', 'erin', 'frank', 'gina'] as const) {
      await container.users.register(name, PASSWORDS[name]);
    }
  });

  after(async function () {
    await shutdown(container);
    await db?.drop();
  });

  describe('user create', function () {
    it('creates a user from --password-stdin and prints it without any secret', async function () {
      const result = await cli(['user', 'create', 'alice', '--password-stdin', '--json'], { input: `${PASSWORDS.alice}\n` });
      const user = expectJson<AdminUser & Record<string, unknown>>(result, 0);
      expect(user.id).to.match(/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/);
      expect(user.username).to.equal('alice');
      expect(user.status).to.equal('active');
      expect(user).not.to.have.property('passwordHash');
      const output = result.stdout + result.stderr;
      expect(output).not.to.match(/hash|\$argon2/i);
      expect(output).not.to.contain(PASSWORDS.alice);
      // The trailing newline of the input is not part of the password.
      const stored = await container.users.authenticate('alice', PASSWORDS.alice);
      expect(stored.id).to.equal(user.id);
    });

    it('refuses a username that differs only in case: exit 4 with a clear message', async function () {
      const result = await cli(['user', 'create', 'ALICE', '--password-stdin'], { input: 'another-fine-passphrase' });
      expect(result.code, describeRun(result)).to.equal(4);
      expect(result.stderr).to.match(/already taken/i);
      expect(result.stdout).to.equal('');
      expect(result.stderr).not.to.contain('another-fine-passphrase');
      expectNoStackTrace(result.stderr);
    });

    it('refuses a common password: exit 2, code weak_password', async function () {
      const error = expectJsonError(await cli(['user', 'create', 'weakling', '--password-stdin', '--json'], { input: 'password' }), 2, 'weak_password');
      expect(error.message).to.match(/common/i);
      await expectAppError(container.users.find('weakling'), 'not_found');
    });

    it('refuses empty standard input: exit 2', async function () {
      const error = expectJsonError(await cli(['user', 'create', 'nobody', '--password-stdin', '--json'], { input: '' }), 2, 'invalid_request');
      expect(error.message).to.match(/standard input/i);
    });

    it('without --password-stdin and without a terminal: exit 2, pointing at --password-stdin', async function () {
      const result = await cli(['user', 'create', 'nobody']);
      expect(result.code, describeRun(result)).to.equal(2);
      expect(result.stderr).to.contain('--password-stdin');
      expectNoStackTrace(result.stderr);
      await expectAppError(container.users.find('nobody'), 'not_found');
    });
  });

  describe('user list / show', function () {
    let expected: string[];
    before(async function () {
      expected = (await container.users.list({ limit: 1000 })).map((u) => u.username!);
      expect(expected.length).to.be.at.least(3);
    });

    it('lists every user ordered by username, with next null on the last page', async function () {
      const body = expectJson<{ users: AdminUser[]; next: string | null }>(await cli(['user', 'list', '--json']), 0);
      expect(body.users.map((u) => u.username)).to.deep.equal(expected);
      expect(body.next).to.equal(null);
      expect(JSON.stringify(body)).not.to.match(/hash/i);
    });

    it('pages with --limit and --after', async function () {
      const first = expectJson<{ users: AdminUser[]; next: string | null }>(await cli(['user', 'list', '--limit', '1', '--json']), 0);
      expect(first.users.map((u) => u.username)).to.deep.equal([expected[0]]);
      expect(first.next).to.equal(expected[0]);
      const second = expectJson<{ users: AdminUser[]; next: string | null }>(await cli(['user', 'list', '--limit', '1', '--after', first.next!, '--json']), 0);
      expect(second.users.map((u) => u.username)).to.deep.equal([expected[1]]);
    });

    it('filters with --search', async function () {
      const body = expectJson<{ users: AdminUser[]; next: string | null }>(await cli(['user', 'list', '--search', 'AR', '--json']), 0);
      expect(body.users.map((u) => u.username)).to.deep.equal(['carol']);
      expect(body.next).to.equal(null);
    });

    it('shows a user by username and by id', async function () {
      const alice = await container.users.find('alice');
      const byName = expectJson<AdminUser & { activeSessions: number }>(await cli(['user', 'show', 'Alice', '--json']), 0);
      expect(byName).to.include({ id: alice.id, username: 'alice', status: 'active' });
      expect(byName.activeSessions).to.be.a('number');
      expect(byName).not.to.have.property('passwordHash');
      const byId = expectJson<AdminUser>(await cli(['user', 'show', alice.id.toUpperCase(), '--json']), 0);
      expect(byId).to.deep.equal(byName);
    });

    it('an unknown user is exit 3, code not_found', async function () {
      expectJsonError(await cli(['user', 'show', 'nosuchuser', '--json']), 3, 'not_found');
    });
  });

  describe('user disable / enable', function () {
    it('disable refuses refresh and (after the revocation poll) the access token; enable allows login again', async function () {
      const tokens = await login('dave');
      await container.auth.authenticate(tokens.accessToken);

      const disabled = await cli(['user', 'disable', 'dave']);
      expect(disabled.code, describeRun(disabled)).to.equal(0);
      expect(disabled.stdout).to.match(/dave is now disabled; 1 session\(s\) revoked/);

      await expectAppError(container.auth.refresh(tokens.refreshToken), 'invalid_refresh_token');
      await container.revocations.poll();
      await expectAppError(container.auth.authenticate(tokens.accessToken), 'invalid_token');
      await expectAppError(login('dave'), 'account_disabled');

      const enabled = expectJson<{ user: AdminUser; revokedSessions: number }>(await cli(['user', 'enable', 'dave', '--json']), 0);
      expect(enabled.user).to.include({ username: 'dave', status: 'active' });
      expect(enabled.revokedSessions).to.equal(0);
      const again = await login('dave');
      expect(again.user.username).to.equal('dave');
    });
  });

  describe('user set-password', function () {
    it('replaces the password and revokes every session', async function () {
      const tokens = await login('erin');
      const newPassword = 'erin-brand-new-passphrase';
      const result = await cli(['user', 'set-password', 'erin', '--password-stdin', '--json'], { input: newPassword });
      const body = expectJson<{ username: string; revokedSessions: number }>(result, 0);
      expect(body).to.include({ username: 'erin', revokedSessions: 1 });
      expect(result.stdout + result.stderr).not.to.contain(newPassword);

      await expectAppError(container.users.authenticate('erin', PASSWORDS.erin), 'invalid_credentials');
      expect((await container.users.authenticate('erin', newPassword)).username).to.equal('erin');
      await expectAppError(container.auth.refresh(tokens.refreshToken), 'invalid_refresh_token');
    });

    it('refuses a weak new password and keeps the old one', async function () {
      expectJsonError(await cli(['user', 'set-password', 'frank', '--password-stdin', '--json'], { input: 'password' }), 2, 'weak_password');
      expect((await container.users.authenticate('frank', PASSWORDS.frank)).username).to.equal('frank');
    });
  });

  describe('token revoke', function () {
    it('--session revokes that session only', async function () {
      const revoked = await login('frank');
      const kept = await login('frank');
      const body = expectJson<{ revokedSessions: number }>(await cli(['token', 'revoke', '--session', revoked.sessionId, '--json']), 0);
      expect(body.revokedSessions).to.equal(1);
      await expectAppError(container.auth.refresh(revoked.refreshToken), 'invalid_refresh_token');
      await container.revocations.poll();
      await expectAppError(container.auth.authenticate(revoked.accessToken), 'invalid_token');
      expect((await container.auth.authenticate(kept.accessToken)).sessionId).to.equal(kept.sessionId);
    });

    it('--session with an unknown id is exit 3', async function () {
      expectJsonError(await cli(['token', 'revoke', '--session', '01900000-0000-7000-8000-000000000000', '--json']), 3, 'not_found');
    });

    it('--user revokes every live session of the user', async function () {
      const one = await login('frank');
      const two = await login('frank');
      const body = expectJson<{ revokedSessions: number; sessionIds: string[] }>(await cli(['token', 'revoke', '--user', 'frank', '--json']), 0);
      // Two from this test, plus the one the previous test kept.
      expect(body.sessionIds).to.include.members([one.sessionId, two.sessionId]);
      expect(body.revokedSessions).to.equal(body.sessionIds.length);
      expect(await container.sessions.listForUser(one.user.id)).to.deep.equal([]);
      await expectAppError(container.auth.refresh(two.refreshToken), 'invalid_refresh_token');
    });

    it('needs exactly one of --session and --user: exit 2', async function () {
      const [both, neither] = await Promise.all([
        cli(['token', 'revoke', '--session', '01900000-0000-7000-8000-000000000000', '--user', 'frank']),
        cli(['token', 'revoke']),
      ]);
      expect(both.code, describeRun(both)).to.equal(2);
      expect(both.stderr).to.match(/--session cannot also be provided when using --user|--user cannot also be provided/);
      expect(neither.code, describeRun(neither)).to.equal(2);
      expect(neither.stderr).to.match(/exactly one of .*--session, --user/i);
    });

    it('a usage error with --json is one {"error":{code,message}} document', async function () {
      const result = await cli(['token', 'revoke', '--session', '01900000-0000-7000-8000-000000000000', '--user', 'frank', '--json']);
      const error = expectJsonError(result, 2, 'invalid_request');
      expect(error.message).to.match(/--session|--user/);
      expect(Object.keys(error)).to.have.members(['code', 'message']);
    });
  });

  describe('keys', function () {
    it('rotate adds a pending key; list shows it and never prints private key material', async function () {
      const rotated = await cli(['keys', 'rotate', '--json']);
      const { key } = expectJson<{ key: { kid: string; state: string; alg: string } }>(rotated, 0);
      expect(key.kid).to.be.a('string').and.not.be.empty;
      expect(key.state).to.equal('pending');

      const listed = await cli(['keys', 'list', '--json']);
      const { keys } = expectJson<{ keys: Array<{ kid: string; state: string }> }>(listed, 0);
      expect(keys.map((k) => k.kid)).to.include(key.kid);
      expect(keys.length).to.be.at.least(2);
      for (const k of keys) expect(['pending', 'active', 'retiring']).to.include(k.state);
      expect(keys.find((k) => k.kid === key.kid)!.state).to.equal('pending');

      for (const output of [rotated.stdout, rotated.stderr, listed.stdout, listed.stderr]) {
        expect(output).not.to.match(/"d"\s*:/);
        expect(output).not.to.match(/private/i);
      }
    });

    it('rotate without AUTHCTL_SECRET is exit 78 naming AUTHCTL_SECRET', async function () {
      await container.keys.load();
      const keyCount = container.keys.list().length;
      const result = await cli(['keys', 'rotate'], { env: { AUTHCTL_SECRET: undefined } });
      expect(result.code, describeRun(result)).to.equal(78);
      expect(result.stderr).to.contain('AUTHCTL_SECRET');
      expectNoStackTrace(result.stderr);
      await container.keys.load();
      expect(container.keys.list().length).to.equal(keyCount);
    });
  });

  describe('user delete', function () {
    it('without --yes and without a terminal: exit 2, nothing deleted', async function () {
      const result = await cli(['user', 'delete', 'gina']);
      expect(result.code, describeRun(result)).to.equal(2);
      expect(result.stderr).to.contain('--yes');
      expect((await container.users.find('gina')).username).to.equal('gina');
    });

    it('with --yes deletes the user and revokes their sessions; show is then exit 3', async function () {
      const tokens = await login('gina');
      const body = expectJson<{ username: string; deleted: boolean; revokedSessions: number }>(await cli(['user', 'delete', 'gina', '--yes', '--json']), 0);
      expect(body).to.include({ username: 'gina', deleted: true, revokedSessions: 1 });
      await expectAppError(container.auth.refresh(tokens.refreshToken), 'invalid_refresh_token');

      const shown = await cli(['user', 'show', 'gina']);
      expect(shown.code, describeRun(shown)).to.equal(3);
      expect(shown.stderr).to.match(/no such user/);
    });
  });

  describe('usage', function () {
    it('an unknown flag is exit 2 naming the flag', async function () {
      const result = await cli(['user', 'list', '--colour']);
      expect(result.code, describeRun(result)).to.equal(2);
      expect(result.stderr).to.contain('--colour');
    });

    it('an invalid flag value is exit 2 (a usage error), naming the flag', async function () {
      const result = await cli(['user', 'list', '--limit', '0']);
      expect(result.stderr).to.contain('--limit');
      expect(result.code, describeRun(result)).to.equal(2);
    });

    it('a missing required argument is exit 2', async function () {
      const result = await cli(['user', 'show']);
      expect(result.code, describeRun(result)).to.equal(2);
      expect(result.stderr).to.match(/missing 1 required arg/i);
    });

    it('an unknown command fails with a helpful message', async function () {
      const result = await cli(['frobnicate']);
      expect(result.code, describeRun(result)).to.be.a('number').and.not.equal(0);
      expect(result.stderr).to.match(/command frobnicate not found/i);
    });

    it('user create --help documents --password-stdin', async function () {
      const result = await cli(['user', 'create', '--help']);
      expect(result.code, describeRun(result)).to.equal(0);
      expect(result.stdout).to.contain('--password-stdin');
      expect(result.stdout).to.match(/USAGE\s+\$ authctl user create \[USERNAME\]/);
      expect(result.stdout).to.contain('--email');
    });

    it('--version prints the package version', async function () {
      const result = await cli(['--version']);
      expect(result.code, describeRun(result)).to.equal(0);
      expect(result.stdout).to.match(new RegExp(`^authctl/${packageVersion.replace(/\./g, '\\.')} `));
    });
  });

  describe('an unreachable database', function () {
    it('is exit 69, code unavailable, with a hint and no stack trace', async function () {
      const unreachable = { databaseUrl: 'postgres://postgres@127.0.0.1:1/authctl' };
      const [json, human] = await Promise.all([runCli(['user', 'list', '--json'], unreachable), runCli(['user', 'list'], unreachable)]);
      expectJsonError(json, 69, 'unavailable');
      expectNoStackTrace(json.stdout + json.stderr);
      expect(human.code, describeRun(human)).to.equal(69);
      expect(human.stderr).to.match(/database is unavailable/);
      expect(human.stderr).to.contain('AUTHCTL_DATABASE_URL');
      expectNoStackTrace(human.stderr);
    });
  });
});
