import { expect } from 'chai';
import { ManualClock } from '../../src/platform/clock.js';
import { v7 as uuidv7 } from 'uuid';
import {
  CHALLENGE_RETENTION_SECONDS,
  IDENTITY_RETENTION_SECONDS,
  PASSKEY_RETENTION_SECONDS,
  runCleanup,
  type CleanupDeps,
} from '../../src/jobs/handlers/cleanup.js';
import type { IdentityRecord } from '../../src/model/identity.js';
import type { PasskeyRecord } from '../../src/model/passkey.js';
import type { EmailChallenge } from '../../src/model/user.js';
import { EmailChallengesRepo } from '../../src/store/pg/email-challenges-repo.js';
import { IdentitiesRepo } from '../../src/store/pg/identities-repo.js';
import { PasskeysRepo } from '../../src/store/pg/passkeys-repo.js';
import { SessionsRepo } from '../../src/store/pg/sessions-repo.js';
import { type SigningKeyRecord } from '../../src/model/signing-key.js';
import { SigningKeysRepo } from '../../src/store/pg/signing-keys-repo.js';
import { captureLogger, sessionAt, setupJobs, type JobsFixture } from './setup.js';

const HORIZON = 900 + 30; // accessTtl + clockSkew (test config defaults)

describe('cleanup job: stale sessions and retired signing keys', function () {
  let fx: JobsFixture;
  let clock: ManualClock;
  let sessions: SessionsRepo;
  let keys: SigningKeysRepo;

  before(async function () {
    clock = new ManualClock(Date.parse('2030-01-15T12:00:00Z'));
    fx = await setupJobs('jobs_cleanup', { clock });
    sessions = new SessionsRepo(fx.container.db);
    keys = new SigningKeysRepo(fx.container.db);
  });

  after(async function () {
    await fx?.close();
  });

  beforeEach(async function () {
    await fx.container.db.writer('sessions').delete();
    await fx.container.db.writer('signing_keys').delete();
  });

  function deps(overrides: Partial<CleanupDeps> = {}) {
    const capture = captureLogger();
    return { capture, deps: { sessions, keys, clock, log: capture.log, horizonSeconds: HORIZON, batchSize: 1000, ...overrides } };
  }

  async function remainingIds(): Promise<string[]> {
    const rows = await fx.container.db.writer('sessions').select<Array<{ id: string }>>('id');
    return rows.map((r) => r.id).sort();
  }

  /** Inserts a session and, when `revokedSecondsAgo` is given, revokes it at that time. */
  async function seed(expiresInSeconds: number, revokedSecondsAgo?: number): Promise<string> {
    const now = clock.now();
    const session = sessionAt(now, { expiresInSeconds });
    await sessions.insert(session);
    if (revokedSecondsAgo !== undefined) {
      const at = new Date(now.getTime() - revokedSecondsAgo * 1000);
      expect(await sessions.revoke(session.id, 'logout', at), 'revoked').to.have.length(1);
    }
    return session.id;
  }

  it('deletes sessions expired or revoked longer ago than the access-token lifetime, and nothing else', async function () {
    const expiredLongAgo = await seed(-3_600);
    const revokedLongAgo = await seed(86_400, 3_600);
    const expiredJustNow = await seed(-60);
    const revokedJustNow = await seed(86_400, 10);
    const live = await seed(86_400);

    const { capture, deps: d } = deps();
    const result = await runCleanup(d);
    expect(result.deleted.sessions).to.equal(2);
    expect(await remainingIds()).to.deep.equal([expiredJustNow, revokedJustNow, live].sort());
    expect(await sessions.findById(expiredLongAgo)).to.equal(undefined);
    expect(await sessions.findById(revokedLongAgo)).to.equal(undefined);
    const [done, ...more] = capture.events('cleanup.done');
    expect(more).to.have.length(0);
    expect(done).to.deep.include({ deleted: { sessions: 2, signingKeys: 0 } });

    // Once the injected clock passes their horizon, the recent ones go too; the live one stays.
    clock.advance(HORIZON + 1);
    expect((await runCleanup(deps().deps)).deleted.sessions).to.equal(2);
    expect(await remainingIds()).to.deep.equal([live]);
  });

  it('with peers (keepRevokedUntilExpiry), keeps a revoked session until it expires, so a late change from another region cannot bring it back live', async function () {
    const expiredLongAgo = await seed(-3_600);
    const revokedLongAgo = await seed(86_400, 3_600);
    const live = await seed(86_400);
    const result = await runCleanup(deps({ keepRevokedUntilExpiry: true }).deps);
    expect(result.deleted.sessions).to.equal(1);
    expect(await sessions.findById(expiredLongAgo)).to.equal(undefined);
    expect(await remainingIds()).to.deep.equal([revokedLongAgo, live].sort());
    // Once expired (and past the horizon), it goes like any expired session.
    clock.advance(86_400 + HORIZON + 1);
    expect((await runCleanup(deps({ keepRevokedUntilExpiry: true }).deps)).deleted.sessions).to.equal(2);
    expect(await remainingIds()).to.deep.equal([]);
  });

  it('loops over batches smaller than the backlog until a batch comes back short', async function () {
    const stale: string[] = [];
    for (let i = 0; i < 23; i += 1) stale.push(await seed(i % 2 === 0 ? -7_200 : 86_400, i % 2 === 0 ? undefined : 7_200));
    const live = [await seed(3_600), await seed(86_400, 5)];
    let calls = 0;
    const counting: CleanupDeps['sessions'] = {
      deleteStale: async (before, limit) => {
        calls += 1;
        const n = await sessions.deleteStale(before, limit);
        expect(n, 'a batch never exceeds its limit').to.be.at.most(limit);
        return n;
      },
    };
    const result = await runCleanup(deps({ sessions: counting, batchSize: 10 }).deps);
    expect(result.deleted.sessions).to.equal(23);
    expect(result.batches).to.equal(3);
    expect(calls).to.equal(3);
    expect(await remainingIds()).to.deep.equal([...live].sort());
  });

  it('deletes signing keys retired more than a day ago, keeps recently retired and published ones', async function () {
    const now = clock.now();
    const key = (kid: string, retiresAt: Date | null): SigningKeyRecord => ({
      kid,
      alg: 'EdDSA',
      publicJwk: { kty: 'OKP', crv: 'Ed25519', x: kid },
      privateJwkEncrypted: null,
      homeRegion: 'local',
      createdAt: new Date(now.getTime() - 30 * 86_400_000),
      activatesAt: new Date(now.getTime() - 30 * 86_400_000),
      retiresAt,
    });
    await keys.insert(key('old', new Date(now.getTime() - 2 * 86_400_000)));
    await keys.insert(key('recent', new Date(now.getTime() - 3_600_000)));
    await keys.insert(key('retiring', new Date(now.getTime() + 3_600_000)));
    await keys.insert(key('active', null));

    const { capture, deps: d } = deps();
    const result = await runCleanup(d);
    expect(result.deleted.signingKeys).to.equal(1);
    expect((await keys.listAll()).map((k) => k.kid).sort()).to.deep.equal(['active', 'recent', 'retiring']);
    expect(capture.events('keys.deleted')[0]).to.deep.include({ kids: ['old'] });
  });
  it('deletes e-mail challenges a day after they expired, in batches, and keeps the rest', async function () {
    const challenges = new EmailChallengesRepo(fx.container.db);
    const user = await fx.container.users.register(`cleanup${Date.now()}`, 'correct horse battery staple');
    const now = clock.now().getTime();
    const at = (expiresInSeconds: number): EmailChallenge => ({
      id: uuidv7(),
      userId: user.id,
      purpose: 'reset',
      email: 'someone@example.com',
      homeRegion: 'local',
      createdAt: new Date(now - 3_600_000),
      expiresAt: new Date(now + expiresInSeconds * 1000),
      attempts: 0,
      endedAt: null,
      endReason: null,
      version: 1,
    });
    const old = [at(-CHALLENGE_RETENTION_SECONDS - 60), at(-CHALLENGE_RETENTION_SECONDS - 120), at(-CHALLENGE_RETENTION_SECONDS - 180)];
    const recent = [at(-60), at(600)];
    for (const c of [...old, ...recent]) await challenges.insert(c);
    const { deps: d } = deps({ challenges, batchSize: 2 });
    const result = await runCleanup(d);
    expect(result.deleted.emailChallenges).to.equal(3);
    const left = (await fx.container.db.writer('email_challenges').select<Array<{ id: string }>>('id')).map((r) => r.id).sort();
    expect(left).to.deep.equal(recent.map((c) => c.id).sort());
  });

  it('deletes provider identities removed more than 30 days ago, in batches, and keeps live and recently removed ones', async function () {
    const identities = new IdentitiesRepo(fx.container.db);
    const user = await fx.container.users.register(`ids${Date.now()}`, 'correct horse battery staple');
    const now = clock.now().getTime();
    const identity = (removedSecondsAgo: number | null): IdentityRecord => ({
      id: uuidv7(),
      userId: user.id,
      provider: 'google',
      subject: `sub-${uuidv7()}`,
      email: null,
      emailVerified: false,
      homeRegion: 'local',
      createdAt: new Date(now - 90 * 86_400_000),
      lastUsedAt: new Date(now - 60 * 86_400_000),
      removedAt: removedSecondsAgo === null ? null : new Date(now - removedSecondsAgo * 1000),
      version: 1,
    });
    const keep = [identity(null), identity(IDENTITY_RETENTION_SECONDS - 3_600)];
    const drop = [identity(IDENTITY_RETENTION_SECONDS + 60), identity(IDENTITY_RETENTION_SECONDS + 3_600), identity(45 * 86_400)];
    for (const i of [...keep, ...drop]) await identities.insert(i);

    const { capture, deps: d } = deps({ identities, batchSize: 2 });
    const result = await runCleanup(d);
    expect(result.deleted.identities).to.equal(3);
    const left = (await fx.container.db.writer('user_identities').select<Array<{ id: string }>>('id')).map((r) => r.id).sort();
    expect(left).to.deep.equal(keep.map((i) => i.id).sort());
    expect(capture.events('cleanup.done')[0]).to.deep.include({ deleted: { sessions: 0, signingKeys: 0, identities: 3 } });

    // Once the recently removed one is past the horizon too, it goes; the live one stays.
    clock.advance(3_600 + 1);
    expect((await runCleanup(deps({ identities }).deps)).deleted.identities).to.equal(1);
    expect(await identities.listLive(user.id)).to.have.length(1);
    expect(await fx.container.db.writer('user_identities').count<[{ count: string }]>('* as count')).to.deep.equal([{ count: '1' }]);
  });

  it('deletes passkeys removed more than 30 days ago, in batches, and keeps live and recently removed ones', async function () {
    const passkeys = new PasskeysRepo(fx.container.db);
    const user = await fx.container.users.register(`pks${Date.now()}`, 'correct horse battery staple');
    const now = clock.now().getTime();
    const passkey = (removedSecondsAgo: number | null): PasskeyRecord => ({
      id: uuidv7(),
      userId: user.id,
      credentialId: `cred-${uuidv7()}`,
      publicKey: 'pQECAyYgASFYIA',
      counter: 3,
      transports: ['internal'],
      aaguid: '00000000-0000-0000-0000-000000000000',
      backupEligible: true,
      backedUp: true,
      name: 'Laptop',
      homeRegion: 'local',
      createdAt: new Date(now - 90 * 86_400_000),
      updatedAt: new Date(now - 60 * 86_400_000),
      lastUsedAt: null,
      removedAt: removedSecondsAgo === null ? null : new Date(now - removedSecondsAgo * 1000),
      version: 1,
    });
    const keep = [passkey(null), passkey(PASSKEY_RETENTION_SECONDS - 3_600)];
    const drop = [passkey(PASSKEY_RETENTION_SECONDS + 60), passkey(PASSKEY_RETENTION_SECONDS + 3_600), passkey(45 * 86_400)];
    for (const p of [...keep, ...drop]) await passkeys.insert(p);

    const { capture, deps: d } = deps({ passkeys, batchSize: 2 });
    const result = await runCleanup(d);
    expect(result.deleted.passkeys).to.equal(3);
    const left = (await fx.container.db.writer('passkeys').select<Array<{ id: string }>>('id')).map((r) => r.id).sort();
    expect(left).to.deep.equal(keep.map((p) => p.id).sort());
    expect(capture.events('cleanup.done')[0]).to.deep.include({ deleted: { sessions: 0, signingKeys: 0, passkeys: 3 } });

    // Once the recently removed one is past the horizon too, it goes; the live one stays.
    clock.advance(3_600 + 1);
    expect((await runCleanup(deps({ passkeys }).deps)).deleted.passkeys).to.equal(1);
    expect(await passkeys.listLive(user.id)).to.have.length(1);
    expect(await fx.container.db.writer('passkeys').count<[{ count: string }]>('* as count')).to.deep.equal([{ count: '1' }]);
  });
});
