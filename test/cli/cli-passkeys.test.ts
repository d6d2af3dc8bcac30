import { userInfo } from 'node:os';
import { expect } from 'chai';
import { v7 as uuidv7 } from 'uuid';
import type { PasskeyListing, PasskeyRemoveResult } from '../../src/admin/passkeys.js';
import type { UserDetails } from '../../src/admin/users.js';
import type { TokenResponse } from '../../src/core/auth/auth-service.js';
import { isAppError } from '../../src/platform/errors.js';
import { buildContainer, type Container } from '../../src/container.js';
import type { PasskeyRecord } from '../../src/model/passkey.js';
import { migrate, shutdown } from '../../src/runtime.js';
import { testConfig } from '../helpers/app.js';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';
import { describeRun, expectJson, expectJsonError, runCli, type CliResult } from './run-cli.js';

const YUBIKEY_AAGUID = 'cb69481e-8ff7-4039-93ec-0a2729a154a8';
const ICLOUD_AAGUID = 'fbfc3007-154e-4ecc-8c0b-6e020557d7bd';
const PUBLIC_KEY = 'pQECAyYgASFYIBrd6WsCheck-not-shown-0123456789abcdefghij';

/** A passkey row as registration would leave it (the ceremony is the HTTP tests' business). */
function passkey(userId: string, overrides: Partial<PasskeyRecord> = {}): PasskeyRecord {
  const at = new Date('2026-11-02T09:30:00.000Z');
  return {
    id: uuidv7(),
    userId,
    credentialId: `cred-${uuidv7()}`,
    publicKey: PUBLIC_KEY,
    counter: 0,
    transports: ['internal', 'hybrid'],
    aaguid: ICLOUD_AAGUID,
    backupEligible: true,
    backedUp: true,
    name: 'iCloud Keychain',
    homeRegion: 'local',
    createdAt: at,
    updatedAt: at,
    lastUsedAt: null,
    removedAt: null,
    version: 1,
    ...overrides,
  };
}

describe('authctl user show and user passkeys list|remove (spawned as support runs them)', function () {
  this.timeout(60_000);
  let db: TestDatabase;
  let c: Container;
  let petraId: string;
  let synced: PasskeyRecord;
  let yubikey: PasskeyRecord;
  let ottos: PasskeyRecord;
  /** Petra's sessions: one her YubiKey signed in, one her password did. */
  let byYubikey: TokenResponse;
  let byPassword: TokenResponse;
  const cli = (args: string[], env: Record<string, string> = {}): Promise<CliResult> => runCli(args, { databaseUrl: db.url, env });

  before(async function () {
    db = await createTestDatabase('cli_passkeys');
    c = buildContainer(testConfig(db.url));
    await migrate(c);
    await c.keys.ensureSigningKey();
    const petra = await c.users.register('petra', 'cli-passkeys-passphrase-7');
    petraId = petra.id;
    const ottoId = (await c.users.register('otto', 'cli-passkeys-passphrase-8')).id;
    await c.users.register('nokeys', 'cli-passkeys-passphrase-9');
    synced = passkey(petraId, { lastUsedAt: new Date('2026-11-20T18:00:00.000Z'), counter: 0 });
    yubikey = passkey(petraId, {
      name: 'YubiKey 5C',
      aaguid: YUBIKEY_AAGUID,
      transports: ['usb', 'nfc'],
      backupEligible: false,
      backedUp: false,
      counter: 17,
      createdAt: new Date('2026-11-03T10:00:00.000Z'),
      updatedAt: new Date('2026-11-03T10:00:00.000Z'),
    });
    ottos = passkey(ottoId, { name: "Otto's phone" });
    for (const p of [synced, yubikey, ottos]) await c.repos.passkeys.insert(p);
    // Where a passkey's sign-in ends once its assertion is checked (the ceremony is the HTTP tests' business).
    byYubikey = (await c.auth.signIn(petra, 'hwk', {}, { userVerified: true, passkeyId: yubikey.id })) as TokenResponse;
    byPassword = (await c.auth.signIn(petra, 'pwd', {})) as TokenResponse;
  });
  after(async function () {
    await shutdown(c);
    await db?.drop();
  });

  /** Neither a public key nor a credential id ever reaches the output. */
  function expectNothingSecret(run: CliResult): void {
    for (const p of [synced, yubikey, ottos]) expect(run.stdout + run.stderr, describeRun(run)).not.to.contain(p.credentialId);
    expect(run.stdout + run.stderr).not.to.contain(PUBLIC_KEY);
  }

  it('user show lists the passkeys: id, name, created, last used, synced or device-bound, backed up, AAGUID', async function () {
    const json = await cli(['user', 'show', 'petra', '--json']);
    const body = expectJson<UserDetails>(json, 0);
    expectNothingSecret(json);
    expect(body.passkeys.map((p) => p.id)).to.deep.equal([synced.id, yubikey.id]);
    expect(body.passkeys[0]).to.deep.equal({
      id: synced.id,
      name: 'iCloud Keychain',
      aaguid: ICLOUD_AAGUID,
      transports: ['internal', 'hybrid'],
      backupEligible: true,
      backedUp: true,
      createdAt: '2026-11-02T09:30:00.000Z',
      lastUsedAt: '2026-11-20T18:00:00.000Z',
    });
    expect(body.passkeys[1]).to.include({ backupEligible: false, backedUp: false, lastUsedAt: null });

    const human = await cli(['user', 'show', 'petra']);
    expect(human.code, describeRun(human)).to.equal(0);
    expectNothingSecret(human);
    expect(human.stdout).to.match(/^passkeys\nID\s+NAME\s+CREATEDAT\s+LASTUSEDAT\s+KIND\s+BACKEDUP\s+AAGUID$/m);
    expect(human.stdout).to.match(
      new RegExp(`^${synced.id}\\s+iCloud Keychain\\s+2026-11-02\\S*\\s+2026-11-20\\S*\\s+synced\\s+yes\\s+${ICLOUD_AAGUID}$`, 'm'),
    );
    expect(human.stdout).to.match(new RegExp(`^${yubikey.id}\\s+YubiKey 5C\\s+2026-11-03\\S*\\s+-\\s+device-bound\\s+no\\s+${YUBIKEY_AAGUID}$`, 'm'));

    expect(expectJson<UserDetails>(await cli(['user', 'show', 'nokeys', '--json']), 0).passkeys).to.deep.equal([]);
    expect((await cli(['user', 'show', 'nokeys'])).stdout).to.match(/^passkeys\s+-$/m);
  });

  it('user passkeys list: the same, for one user (by any of their names); none is said so; an unknown user is exit 3', async function () {
    const json = await cli(['user', 'passkeys', 'list', 'PETRA', '--json']);
    const listing = expectJson<PasskeyListing>(json, 0);
    expectNothingSecret(json);
    expect(listing.user).to.deep.equal({ id: petraId, username: 'petra', email: null });
    expect(listing.passkeys.map((p) => p.name)).to.deep.equal(['iCloud Keychain', 'YubiKey 5C']);

    const human = await cli(['user', 'passkeys', 'list', petraId]);
    expect(human.code, describeRun(human)).to.equal(0);
    expect(human.stdout).to.contain(synced.id).and.to.contain(yubikey.id).and.not.to.contain(ottos.id);

    const none = await cli(['user', 'passkeys', 'list', 'nokeys']);
    expect(none.code, describeRun(none)).to.equal(0);
    expect(none.stdout.trim()).to.equal('nokeys has no passkey.');

    expectJsonError(await cli(['user', 'passkeys', 'list', 'nobody-here', '--json']), 3, 'not_found');
  });

  it('user passkeys remove: exit 3 for an unknown user, id, or another user’s passkey; removes one otherwise, with the sessions it signed in, logged as passkey.removed with who ran it', async function () {
    expectJsonError(await cli(['user', 'passkeys', 'remove', 'nobody-here', yubikey.id, '--json']), 3, 'not_found');
    // Otto's passkey is not Petra's to lose.
    expect(expectJsonError(await cli(['user', 'passkeys', 'remove', 'petra', ottos.id, '--json']), 3, 'not_found').message).to.equal('no such passkey');
    expectJsonError(await cli(['user', 'passkeys', 'remove', 'petra', 'not-a-passkey-id', '--json']), 3, 'not_found');
    const human = await cli(['user', 'passkeys', 'remove', 'petra', uuidv7()]);
    expect(human.code, describeRun(human)).to.equal(3);
    expect(human.stderr).to.contain('Error: no such passkey').and.to.contain('authctl user passkeys list <user>');
    expect((await c.repos.passkeys.listLive(petraId)).map((p) => p.id)).to.deep.equal([synced.id, yubikey.id]);

    const run = await cli(['user', 'passkeys', 'remove', 'petra', yubikey.id.toUpperCase(), '--json'], { AUTHCTL_LOG_LEVEL: 'info' });
    const removed = expectJson<PasskeyRemoveResult>(run, 0);
    expectNothingSecret(run);
    expect(removed.user).to.deep.equal({ id: petraId, username: 'petra', email: null });
    expect(removed.passkey).to.include({ id: yubikey.id, name: 'YubiKey 5C' });
    // The session the YubiKey signed in ended with it; the password's did not.
    expect(removed.sessionsRevoked).to.equal(1);
    const sessionOf = (t: TokenResponse) =>
      c.db.writer('sessions').where({ id: t.sessionId }).first<{ revoked_at: Date | null; revoke_reason: string | null }>();
    expect(await sessionOf(byYubikey)).to.include({ revoke_reason: 'passkey_removed' });
    expect((await sessionOf(byPassword)).revoked_at).to.equal(null);
    const refused = await c.auth.refresh(byYubikey.refreshToken).then(
      () => undefined,
      (err: unknown) => err,
    );
    expect(isAppError(refused, 'invalid_refresh_token'), String(refused)).to.equal(true);
    expect(await c.auth.refresh(byPassword.refreshToken)).to.have.property('accessToken');
    const logged = run.stderr
      .split('\n')
      .filter((line) => line.includes('"passkey.removed"'))
      .map((line) => JSON.parse(line) as Record<string, unknown>);
    expect(logged, run.stderr).to.have.length(1);
    expect(logged[0]).to.include({ userId: petraId, passkeyId: yubikey.id, via: 'admin', actor: `cli:${userInfo().username}` });

    // Gone from every listing; the row stays, marked removed (so a late change from another region cannot bring it back).
    expect((await c.repos.passkeys.listLive(petraId)).map((p) => p.id)).to.deep.equal([synced.id]);
    const row = (await c.db.writer('passkeys').where({ id: yubikey.id }).first()) as { removed_at: Date | null };
    expect(row.removed_at).to.be.an.instanceOf(Date);
    const shown = expectJson<UserDetails>(await cli(['user', 'show', 'petra', '--json']), 0);
    expect(shown.passkeys.map((p) => p.id)).to.deep.equal([synced.id]);
    // Removed already: nothing to remove.
    expectJsonError(await cli(['user', 'passkeys', 'remove', 'petra', yubikey.id, '--json']), 3, 'not_found');

    const text = await cli(['user', 'passkeys', 'remove', 'petra', synced.id]);
    expect(text.code, describeRun(text)).to.equal(0);
    expect(text.stdout.trim()).to.equal(`Removed passkey ${synced.id} ("iCloud Keychain") of petra; ended 0 sessions it signed in.`);
    expect(await c.repos.passkeys.countLive(petraId)).to.equal(0);
  });
});
