import { Config } from '@oclif/core';
import { expect } from 'chai';
import { buildContainer, type Container } from '../../src/container.js';
import { AppError } from '../../src/platform/errors.js';
import { migrate, shutdown } from '../../src/runtime.js';
import { testConfig } from '../helpers/app.js';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';
import { describeRun, expectJson, expectJsonError, expectNoStackTrace, repoRoot, runCli, type CliOptions, type CliResult } from './run-cli.js';

/** What `--json` prints for a user (AdminUserView). */
interface AdminUser {
  id: string;
  username: string | null;
  email: string | null;
  emailVerified: boolean;
  emailVerifiedAt: string | null;
  homeRegion: string;
  createdAt: string;
  status: string;
  updatedAt: string;
  passwordChangedAt: string;
  hasPassword: boolean;
}

const ADMIN_USER_KEYS = [
  'id',
  'username',
  'email',
  'emailVerified',
  'emailVerifiedAt',
  'homeRegion',
  'createdAt',
  'status',
  'updatedAt',
  'passwordChangedAt',
  'hasPassword',
];
const PASSWORD = 'email-cli-passphrase-7';

/** Addresses on: what a region with e-mail identity runs with (mail written to the log). */
const EMAIL_ON = { AUTHCTL_IDENTITY_EMAIL: 'optional', AUTHCTL_MAIL_TRANSPORT: 'log', AUTHCTL_MAIL_FROM: 'authctl <no-reply@example.com>' };
/** ... and users may have an address alone. */
const ADDRESS_ONLY = { ...EMAIL_ON, AUTHCTL_IDENTITY_USERNAME: 'optional' };

describe('authctl user … with e-mail addresses (spawned as a user runs it)', function () {
  this.timeout(60_000);
  let db: TestDatabase;
  /** The same region in-process: sees what the CLI changed. */
  let container: Container;
  const cli = (args: string[], options: CliOptions = {}): Promise<CliResult> =>
    runCli(args, { databaseUrl: db.url, ...options, env: { ...EMAIL_ON, ...options.env } });
  const create = (args: string[], env: Record<string, string | undefined> = {}) =>
    cli(['user', 'create', ...args, '--password-stdin', '--json'], { input: PASSWORD, env });
  const notFound = async (ref: string) => {
    const caught = await container.users.find(ref).then(
      () => undefined,
      (err: unknown) => err,
    );
    expect(caught, `${ref} should not exist`).to.be.instanceOf(AppError);
    expect((caught as AppError).code).to.equal('not_found');
  };

  before(async function () {
    db = await createTestDatabase('cli_email');
    container = buildContainer(
      testConfig(db.url, {
        identity: { username: 'optional', email: 'optional' },
        mail: { transport: 'log', from: 'authctl <no-reply@example.com>' },
      }),
    );
    // The schema and the job queue: a user with an address gets a verification message enqueued.
    await migrate(container);
    await container.keys.ensureSigningKey();
    await container.users.register({ username: 'holder', email: 'holder@example.com', password: PASSWORD });
    await container.users.register({ username: 'plain', password: PASSWORD });
    await container.users.register({ email: 'solo@example.com', password: PASSWORD });
  });

  after(async function () {
    await shutdown(container);
    await db?.drop();
  });

  it('every command that takes a user says it takes an id, a username or an address', async function () {
    const config = await Config.load(repoRoot);
    const ids = ['user:show', 'user:delete', 'user:disable', 'user:enable', 'user:set-password', 'user:set-email', 'user:verify-email'];
    for (const id of ids) {
      const command = config.findCommand(id);
      expect(command, id).to.not.equal(undefined);
      expect(command!.args.user?.description, id).to.equal('User id, username or e-mail address.');
    }
  });

  describe('user create --email', function () {
    it('creates a user with an unverified address (domain lower-cased, local part kept)', async function () {
      const user = expectJson<AdminUser>(await create(['anna', '--email', ' Anna@Example.COM ']), 0);
      expect(Object.keys(user)).to.have.members(ADMIN_USER_KEYS);
      expect(user).to.include({ username: 'anna', email: 'Anna@example.com', emailVerified: false, emailVerifiedAt: null, status: 'active' });
      const stored = await container.users.find('anna@EXAMPLE.com');
      expect(stored.id).to.equal(user.id);
      expect(stored.emailVerifiedAt).to.equal(null);
      // The address logs in.
      expect((await container.users.authenticate({ email: 'anna@example.com' }, PASSWORD)).id).to.equal(user.id);
    });

    it('--verified marks the address verified at once; the human output names the address and its state', async function () {
      const result = await cli(['user', 'create', 'bea', '--email', 'bea@example.com', '--verified', '--password-stdin'], { input: PASSWORD });
      expect(result.code, describeRun(result)).to.equal(0);
      expect(result.stdout).to.match(/^Created user bea \([0-9a-f-]{36}\), e-mail bea@example\.com \(verified\)\.$/m);
      expect(result.stdout + result.stderr).not.to.contain(PASSWORD);
      expect((await container.users.find('bea')).emailVerifiedAt).to.be.instanceOf(Date);
    });

    it('without a username where identity.username is "optional": the user is named by address', async function () {
      const result = await cli(['user', 'create', '--email', 'cleo@example.com', '--password-stdin'], { input: PASSWORD, env: ADDRESS_ONLY });
      expect(result.code, describeRun(result)).to.equal(0);
      expect(result.stdout).to.match(/^Created user cleo@example\.com \(/m);
      const stored = await container.users.find('cleo@example.com');
      expect(stored.username).to.equal(null);
      const json = expectJson<AdminUser>(await create(['--email', 'cleo2@example.com'], ADDRESS_ONLY), 0);
      expect(json).to.include({ username: null, email: 'cleo2@example.com', emailVerified: false });
    });

    it('without a username where one is required (the default): exit 2', async function () {
      const error = expectJsonError(await create(['--email', 'nousername@example.com']), 2, 'invalid_request');
      expect(error.message).to.match(/username is required/);
      await notFound('nousername@example.com');
    });

    it('neither a username nor an address: exit 2', async function () {
      expectJsonError(await create([], ADDRESS_ONLY), 2, 'invalid_request');
    });

    it('an invalid address: exit 2 with what is wrong, before any password is asked for', async function () {
      // No --password-stdin and no terminal: it is the address that is refused, not the missing password.
      const result = await cli(['user', 'create', 'dora', '--email', 'dora.example.com', '--json']);
      const error = expectJsonError(result, 2, 'invalid_request');
      expect(error.message).to.match(/one "@"/);
      expect(error.errors).to.deep.equal([{ path: 'email', message: error.message }]);
      const human = await cli(['user', 'create', 'dora', '--email', 'dora@exa mple.com', '--password-stdin'], { input: PASSWORD });
      expect(human.code, describeRun(human)).to.equal(2);
      expect(human.stderr).to.match(/^Error: email must not contain spaces/m);
      expectNoStackTrace(human.stderr);
      await notFound('dora');
    });

    it('an address another user holds (in any case): exit 4, email_taken, nothing created', async function () {
      const error = expectJsonError(await create(['eve', '--email', 'HOLDER@example.com']), 4, 'email_taken');
      expect(error.message).to.match(/already in use/);
      await notFound('eve');
      const human = await cli(['user', 'create', 'eve', '--email', 'holder@EXAMPLE.com', '--password-stdin'], { input: PASSWORD });
      expect(human.code, describeRun(human)).to.equal(4);
      expect(human.stderr).to.match(/already in use/);
      expect(human.stdout).to.equal('');
    });

    it('identity.requireVerifiedEmail does not hide a taken address from an admin: exit 4', async function () {
      const error = expectJsonError(await create(['fay', '--email', 'holder@example.com'], { AUTHCTL_REQUIRE_VERIFIED_EMAIL: 'true' }), 4, 'email_taken');
      expect(error.message).to.match(/already in use/);
      await notFound('fay');
    });

    it('with identity.email "off": --email is refused with exit 2, naming the setting', async function () {
      const off = { AUTHCTL_IDENTITY_EMAIL: undefined, AUTHCTL_MAIL_TRANSPORT: undefined, AUTHCTL_MAIL_FROM: undefined };
      const error = expectJsonError(await create(['gus', '--email', 'gus@example.com'], off), 2, 'invalid_request');
      expect(error.message).to.match(/identity\.email is "off"/);
      expect(error.message).to.contain('AUTHCTL_IDENTITY_EMAIL');
      await notFound('gus');
      // Without --email, creation works as before.
      expect(expectJson<AdminUser>(await create(['gus'], off), 0)).to.include({ username: 'gus', email: null, emailVerified: false });
    });

    it('--verified without --email is a usage error: exit 2', async function () {
      const result = await cli(['user', 'create', 'hal', '--verified', '--password-stdin', '--json'], { input: PASSWORD });
      const error = expectJsonError(result, 2, 'invalid_request');
      expect(error.message).to.contain('--email');
      await notFound('hal');
    });
  });

  describe('user show', function () {
    it('by address: the JSON has the address, whether it is verified and since when', async function () {
      const body = expectJson<AdminUser & { activeSessions: number }>(await cli(['user', 'show', 'Holder@Example.com', '--json']), 0);
      expect(Object.keys(body)).to.have.members([...ADMIN_USER_KEYS, 'activeSessions', 'mfaEnabled', 'identities', 'passkeys']);
      expect(body).to.include({
        username: 'holder',
        email: 'holder@example.com',
        emailVerified: false,
        emailVerifiedAt: null,
        activeSessions: 0,
        mfaEnabled: false,
      });
    });

    it('human output shows the address and its verification', async function () {
      const result = await cli(['user', 'show', 'bea']);
      expect(result.code, describeRun(result)).to.equal(0);
      expect(result.stdout).to.match(/^email\s+bea@example\.com$/m);
      expect(result.stdout).to.match(/^emailVerified\s+true$/m);
      expect(result.stdout).to.match(/^emailVerifiedAt\s+\d{4}-\d\d-\d\dT/m);
      const none = await cli(['user', 'show', 'plain']);
      expect(none.stdout).to.match(/^email\s+-$/m);
      expect(none.stdout).to.match(/^emailVerified\s+false$/m);
    });

    it('an unknown address: exit 3', async function () {
      expectJsonError(await cli(['user', 'show', 'nobody@example.com', '--json']), 3, 'not_found');
    });

    it('an unreachable database is exit 69, not "no such user", for a username or an address', async function () {
      const down = { databaseUrl: 'postgres://postgres@127.0.0.1:1/authctl' };
      for (const ref of ['holder', 'holder@example.com']) {
        const result = await runCli(['user', 'show', ref, '--json'], { ...down, env: EMAIL_ON });
        expectJsonError(result, 69, 'unavailable');
        expectNoStackTrace(result.stdout + result.stderr);
      }
    });
  });

  describe('user list', function () {
    it('has an e-mail column, marking unverified addresses', async function () {
      const result = await cli(['user', 'list']);
      expect(result.code, describeRun(result)).to.equal(0);
      expect(result.stdout).to.match(/^USERNAME\s+EMAIL\s+ID\s+STATUS/m);
      expect(result.stdout).to.match(/^holder\s+holder@example\.com \(unverified\)\s+[0-9a-f-]{36}/m);
      expect(result.stdout).to.match(/^bea\s+bea@example\.com\s+[0-9a-f-]{36}/m);
      expect(result.stdout).to.match(/^plain\s+-\s+[0-9a-f-]{36}/m);
      expect(result.stdout).to.match(/^-\s+solo@example\.com \(unverified\)\s+[0-9a-f-]{36}/m);
    });

    it('--search matches part of the address, case-insensitively, as well as the username', async function () {
      const body = expectJson<{ users: AdminUser[]; next: string | null }>(await cli(['user', 'list', '--search', 'SOLO@', '--json']), 0);
      expect(body.users.map((u) => u.email)).to.deep.equal(['solo@example.com']);
      expect(body.users[0]).to.include({ username: null, emailVerified: false });
      expect(Object.keys(body.users[0]!)).to.have.members(ADMIN_USER_KEYS);
      const byName = expectJson<{ users: AdminUser[] }>(await cli(['user', 'list', '--search', 'hold', '--json']), 0);
      expect(byName.users.map((u) => u.username)).to.deep.equal(['holder']);
    });

    it('pages through users with and without a username: next is the sort key, no user twice or left out', async function () {
      const all = expectJson<{ users: AdminUser[]; next: string | null }>(await cli(['user', 'list', '--json']), 0);
      expect(all.next).to.equal(null);
      expect(all.users.some((u) => u.username === null)).to.equal(true);
      const seen: string[] = [];
      let after: string | null = null;
      for (let page = 0; page < 50; page++) {
        const args: string[] = ['user', 'list', '--limit', '2', '--json', ...(after === null ? [] : ['--after', after])];
        const body: { users: AdminUser[]; next: string | null } = expectJson(await cli(args), 0);
        seen.push(...body.users.map((u) => u.id));
        const last = body.users[body.users.length - 1];
        if (body.next === null) break;
        expect(body.next).to.equal(last!.username ?? last!.email!.toLowerCase());
        after = body.next;
      }
      expect(seen).to.deep.equal(all.users.map((u) => u.id));
    });
  });

  describe('user set-email', function () {
    before(async function () {
      await container.users.register({ username: 'ivan', password: PASSWORD });
      await container.users.register({ username: 'jill', email: 'jill@example.com', password: PASSWORD });
    });

    it('sets an unverified address; the user then logs in with it', async function () {
      const user = expectJson<AdminUser>(await cli(['user', 'set-email', 'ivan', 'Ivan@Example.org', '--json']), 0);
      expect(Object.keys(user)).to.have.members(ADMIN_USER_KEYS);
      expect(user).to.include({ username: 'ivan', email: 'Ivan@example.org', emailVerified: false, emailVerifiedAt: null });
      expect((await container.users.authenticate({ email: 'ivan@example.org' }, PASSWORD)).username).to.equal('ivan');
    });

    it('--verified sets it verified; the human output says so', async function () {
      const result = await cli(['user', 'set-email', 'ivan', 'ivan@example.net', '--verified']);
      expect(result.code, describeRun(result)).to.equal(0);
      expect(result.stdout).to.contain('E-mail address of ivan set to ivan@example.net (verified).');
      const stored = await container.users.find('ivan');
      expect(stored.email).to.equal('ivan@example.net');
      expect(stored.emailVerifiedAt).to.be.instanceOf(Date);
    });

    it('a new address replaces a verified one unverified, and the user can be named by the old address', async function () {
      const user = expectJson<AdminUser>(await cli(['user', 'set-email', 'ivan@example.net', 'ivan@example.com', '--json']), 0);
      expect(user).to.include({ username: 'ivan', email: 'ivan@example.com', emailVerified: false, emailVerifiedAt: null });
    });

    it('an address another user holds: exit 4, email_taken, nothing changed', async function () {
      const error = expectJsonError(await cli(['user', 'set-email', 'ivan', 'JILL@example.com', '--json']), 4, 'email_taken');
      expect(error.message).to.match(/already in use/);
      expect((await container.users.find('ivan')).email).to.equal('ivan@example.com');
    });

    it('an invalid address: exit 2 with the reason', async function () {
      const error = expectJsonError(await cli(['user', 'set-email', 'ivan', 'ivan@', '--json']), 2, 'invalid_request');
      expect(error.message).to.match(/one "@"/);
      const human = await cli(['user', 'set-email', 'ivan', 'iv"an@example.com']);
      expect(human.code, describeRun(human)).to.equal(2);
      expect(human.stderr).to.match(/^Error: email may not contain quotes/m);
      expectNoStackTrace(human.stderr);
      expect((await container.users.find('ivan')).email).to.equal('ivan@example.com');
    });

    it('--remove clears the address of a user with a username', async function () {
      const user = expectJson<AdminUser>(await cli(['user', 'set-email', 'jill@example.com', '--remove', '--json']), 0);
      expect(user).to.include({ username: 'jill', email: null, emailVerified: false, emailVerifiedAt: null });
      const human = await cli(['user', 'set-email', 'ivan', '--remove']);
      expect(human.code, describeRun(human)).to.equal(0);
      expect(human.stdout).to.contain('Removed the e-mail address of ivan.');
    });

    it('--remove on a user known by address only: exit 2, the address kept', async function () {
      const error = expectJsonError(await cli(['user', 'set-email', 'solo@example.com', '--remove', '--json']), 2, 'invalid_request');
      expect(error.message).to.match(/no username/);
      expect((await container.users.find('solo@example.com')).email).to.equal('solo@example.com');
    });

    it('neither an address nor --remove, or both, or --verified with --remove: exit 2', async function () {
      expect(expectJsonError(await cli(['user', 'set-email', 'ivan', '--json']), 2, 'invalid_request').message).to.contain('--remove');
      expect(expectJsonError(await cli(['user', 'set-email', 'ivan', 'ivan@example.com', '--remove', '--json']), 2, 'invalid_request').message).to.contain(
        '--remove',
      );
      expectJsonError(await cli(['user', 'set-email', 'ivan', '--remove', '--verified', '--json']), 2, 'invalid_request');
      expect((await container.users.find('ivan')).email).to.equal(null);
    });

    it('an unknown user: exit 3', async function () {
      expectJsonError(await cli(['user', 'set-email', 'nobody@example.com', 'x@example.com', '--json']), 3, 'not_found');
    });

    it('with identity.email "off": refused with exit 2', async function () {
      const off = { AUTHCTL_IDENTITY_EMAIL: undefined, AUTHCTL_MAIL_TRANSPORT: undefined, AUTHCTL_MAIL_FROM: undefined };
      const error = expectJsonError(await cli(['user', 'set-email', 'ivan', 'ivan@example.com', '--json'], { env: off }), 2, 'invalid_request');
      expect(error.message).to.match(/identity\.email is "off"/);
      expect((await container.users.find('ivan')).email).to.equal(null);
    });
  });

  describe('user verify-email', function () {
    before(async function () {
      await container.users.register({ username: 'kim', email: 'kim@example.com', password: PASSWORD });
    });

    it('marks the address verified, by username or address', async function () {
      const user = expectJson<AdminUser>(await cli(['user', 'verify-email', 'KIM@example.com', '--json']), 0);
      expect(Object.keys(user)).to.have.members(ADMIN_USER_KEYS);
      expect(user).to.include({ username: 'kim', email: 'kim@example.com', emailVerified: true });
      expect(Date.parse(user.emailVerifiedAt!)).to.be.closeTo(Date.now(), 60_000);
      const human = await cli(['user', 'verify-email', 'solo@example.com']);
      expect(human.code, describeRun(human)).to.equal(0);
      expect(human.stdout).to.contain('E-mail address solo@example.com of solo@example.com is verified.');
      expect((await container.users.find('solo@example.com')).emailVerifiedAt).to.be.instanceOf(Date);
    });

    it('a user without an address: exit 2', async function () {
      const error = expectJsonError(await cli(['user', 'verify-email', 'plain', '--json']), 2, 'invalid_request');
      expect(error.message).to.match(/no e-mail address/);
    });
  });

  describe('the other user commands take an address and name users by it', function () {
    it('disable, enable and set-password on a user known by address only', async function () {
      await container.users.register({ email: 'lou@example.com', password: PASSWORD });
      const disabled = await cli(['user', 'disable', 'Lou@Example.com']);
      expect(disabled.code, describeRun(disabled)).to.equal(0);
      expect(disabled.stdout).to.contain('User lou@example.com is now disabled.');
      const enabled = expectJson<{ user: AdminUser }>(await cli(['user', 'enable', 'lou@example.com', '--json']), 0);
      expect(enabled.user).to.include({ username: null, email: 'lou@example.com', status: 'active' });
      const reset = await cli(['user', 'set-password', 'lou@example.com', '--password-stdin'], { input: 'lou-new-passphrase-8' });
      expect(reset.code, describeRun(reset)).to.equal(0);
      expect(reset.stdout).to.contain('Password of lou@example.com changed');
      const deleted = expectJson<{ username: string | null; email: string | null; deleted: boolean }>(
        await cli(['user', 'delete', 'lou@example.com', '--yes', '--json']),
        0,
      );
      expect(deleted).to.include({ username: null, email: 'lou@example.com', deleted: true });
      await notFound('lou@example.com');
    });
  });
});
