import { expect } from 'chai';
import { buildContainer, type Container } from '../../src/container.js';
import type { AdminIdentityView, UnlinkResult, UserDetails } from '../../src/admin/users.js';
import type { ProviderIdentity } from '../../src/model/identity.js';
import { migrate, shutdown } from '../../src/runtime.js';
import { testConfig } from '../helpers/app.js';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';
import { describeRun, expectJson, expectJsonError, runCli, type CliResult } from './run-cli.js';

const identity = (subject: string, email: string | null = null): ProviderIdentity => ({
  provider: 'google',
  subject,
  email,
  emailVerified: email !== null,
  name: null,
  preferredUsername: null,
});

describe('authctl user show|unlink with provider identities (spawned as a user runs it)', function () {
  this.timeout(60_000);
  let db: TestDatabase;
  let container: Container;
  const cli = (args: string[]): Promise<CliResult> => runCli(args, { databaseUrl: db.url });

  before(async function () {
    db = await createTestDatabase('cli_identities');
    container = buildContainer(testConfig(db.url));
    await migrate(container);
    await container.keys.ensureSigningKey();
    const withPassword = await container.users.register('pia', 'cli-identities-passphrase-7');
    await container.identities.link(withPassword.id, identity('google-sub-pia', 'pia@gmail.example'));
    await container.identities.signInWith({ ...identity('google-sub-only'), preferredUsername: 'onlygoogle' }, 'off');
  });
  after(async function () {
    await shutdown(container);
    await db?.drop();
  });

  it('user show lists the identities: provider, subject, the address it gave, created, last used', async function () {
    const body = expectJson<UserDetails>(await cli(['user', 'show', 'pia', '--json']), 0);
    expect(body.identities).to.have.length(1);
    const [shown] = body.identities as [AdminIdentityView];
    expect(shown).to.include({ provider: 'google', subject: 'google-sub-pia', email: 'pia@gmail.example', emailVerified: true });
    expect(Object.keys(shown)).to.have.members(['id', 'provider', 'subject', 'email', 'emailVerified', 'createdAt', 'lastUsedAt']);
    const human = await cli(['user', 'show', 'pia']);
    expect(human.code, describeRun(human)).to.equal(0);
    expect(human.stdout).to.match(/^PROVIDER\s+SUBJECT\s+EMAIL\s+CREATEDAT\s+LASTUSEDAT/m);
    expect(human.stdout).to.match(/^google\s+google-sub-pia\s+pia@gmail\.example\s+\d{4}-/m);
    expect(human.stdout).to.not.match(/passwordHash|argon2/);
  });

  it('user unlink refuses the last way to sign in (exit 4), unlinks otherwise, and an unknown provider is exit 3', async function () {
    const refused = expectJsonError(await cli(['user', 'unlink', 'onlygoogle', 'google', '--json']), 4, 'last_sign_in_method');
    expect(refused.message).to.match(/last way to sign in/);
    expect(await container.identities.list((await container.users.find('onlygoogle')).id)).to.have.length(1);

    expectJsonError(await cli(['user', 'unlink', 'pia', 'github', '--json']), 3, 'not_found');
    expectJsonError(await cli(['user', 'unlink', 'nobody', 'google', '--json']), 3, 'not_found');

    const done = expectJson<UnlinkResult>(await cli(['user', 'unlink', 'pia', 'google', '--json']), 0);
    expect(done).to.deep.include({ provider: 'google' });
    const pia = await container.users.find('pia');
    expect(await container.identities.list(pia.id)).to.deep.equal([]);
    const human = await cli(['user', 'show', 'pia']);
    expect(human.stdout).to.match(/^identities\s+-$/m);
  });
});
