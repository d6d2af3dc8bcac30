import { expect } from 'chai';
import { buildContainer, type Container } from '../../src/container.js';
import { ManualClock } from '../../src/platform/clock.js';
import type { AppError } from '../../src/platform/errors.js';
import type { UserRecord } from '../../src/model/user.js';
import { testConfig } from '../helpers/app.js';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';
import { rejectsWith, startSession } from '../helpers/assert.js';
import { shutdown } from '../../src/runtime.js';

const PASSWORD = 'correct horse battery staple';
const NEW_PASSWORD = 'purple elephant umbrella sky';

interface SessionRow {
  id: string;
  user_id: string | null;
  revoked_at: Date | null;
  revoke_reason: string | null;
}

describe('UserService', function () {
  let db: TestDatabase;
  let clock: ManualClock;
  let c: Container;
  let other: Container;

  before(async function () {
    db = await createTestDatabase('users');
    clock = new ManualClock(Date.now());
    c = buildContainer(testConfig(db.url), { clock });
    other = buildContainer(testConfig(db.url), { clock });
    await c.db.migrateLatest();
    await c.keys.ensureSigningKey();
    await c.revocations.poll();
    await other.revocations.poll();
  });

  after(async function () {
    await shutdown(c);
    await shutdown(other);
    await db?.drop();
  });

  const sessionRow = async (id: string): Promise<SessionRow | undefined> => c.db.writer<SessionRow>('sessions').where({ id }).first();
  const startSessions = async (user: UserRecord, n: number) => {
    const out: string[] = [];
    for (let i = 0; i < n; i++) out.push((await startSession(c, user, {})).session.id);
    return out;
  };

  describe('register', function () {
    it('stores the normalized username', async function () {
      const user = await c.users.register('Ｍａｒｙ.Jane', PASSWORD);
      expect(user.username).to.equal('mary.jane');
      expect(user.status).to.equal('active');
      expect(user.homeRegion).to.equal('local');
      const stored = await c.db.writer('users').where({ id: user.id }).first<{ username: string }>();
      expect(stored?.username).to.equal('mary.jane');
    });

    it('rejects duplicates after normalization with username_taken', async function () {
      await c.users.register('Duplicate.Dan', PASSWORD);
      for (const variant of ['duplicate.dan', 'DUPLICATE.DAN', 'Ｄｕｐｌｉｃａｔｅ.Dan']) {
        await rejectsWith(c.users.register(variant, PASSWORD), 'username_taken');
      }
      const rows = await c.db.writer('users').where({ username: 'duplicate.dan' });
      expect(rows).to.have.length(1);
    });

    it('gives exactly one winner for concurrent registrations of one name', async function () {
      const results = await Promise.allSettled([
        c.users.register('racer', PASSWORD),
        other.users.register('RACER', PASSWORD),
        c.users.register('Racer', PASSWORD),
      ]);
      expect(results.filter((r) => r.status === 'fulfilled')).to.have.length(1);
      for (const r of results) {
        if (r.status === 'rejected') expect((r.reason as AppError).code).to.equal('username_taken');
      }
    });

    it('rejects an invalid username and a weak password', async function () {
      await rejectsWith(c.users.register('ab', PASSWORD), 'invalid_request');
      await rejectsWith(c.users.register('bad name', PASSWORD), 'invalid_request');
      await rejectsWith(c.users.register('weak.walter', 'password'), 'weak_password');
      expect(await c.db.writer('users').where({ username: 'weak.walter' })).to.have.length(0);
    });

    it('stores an argon2id hash, never the password', async function () {
      const user = await c.users.register('hashed.harry', PASSWORD);
      const row = await c.db.writer('users').where({ id: user.id }).first<{ password_hash: string }>();
      const hash = row.password_hash;
      expect(hash.startsWith('$argon2id$')).to.equal(true);
      expect(hash).not.to.equal(PASSWORD);
      expect(hash).not.to.include(PASSWORD);
      expect(hash).not.to.include(Buffer.from(PASSWORD).toString('base64').replace(/=+$/, ''));
      // PHC string: $argon2id$v=19$m=…,t=…,p=…$salt$hash (parameter order varies by library).
      const paramText = hash.split('$')[3] ?? '';
      const params = Object.fromEntries(paramText.split(',').map((kv) => kv.split('=') as [string, string]));
      expect(Number(params.m), hash).to.be.at.least(19_456);
      expect(Number(params.t), hash).to.be.at.least(2);
      expect(Number(params.p), hash).to.be.at.least(1);
      // Two users with the same password get different hashes (salted).
      const twin = await c.users.register('hashed.harriet', PASSWORD);
      expect(twin.passwordHash).not.to.equal(hash);
    });
  });

  describe('authenticate', function () {
    before(async function () {
      await c.users.register('Auth.Alice', PASSWORD);
    });

    it('accepts the right password with an unnormalized username', async function () {
      const user = await c.users.authenticate('AUTH.ALICE', PASSWORD);
      expect(user.username).to.equal('auth.alice');
    });

    it('fails identically for an unknown user and a wrong password', async function () {
      const unknown = await rejectsWith(c.users.authenticate('nobody.here', PASSWORD), 'invalid_credentials');
      const wrong = await rejectsWith(c.users.authenticate('auth.alice', 'not the right password'), 'invalid_credentials');
      const invalid = await rejectsWith(c.users.authenticate('x', PASSWORD), 'invalid_credentials');
      expect(unknown.detail).to.equal(wrong.detail);
      expect(invalid.detail).to.equal(wrong.detail);
      expect(unknown.status).to.equal(wrong.status);
      expect(unknown.message).to.equal(wrong.message);
    });

    it('reveals a disabled account only to someone with the right password', async function () {
      await c.users.register('disabled.dora', PASSWORD);
      await c.users.setStatus('disabled.dora', 'disabled');
      await rejectsWith(c.users.authenticate('disabled.dora', PASSWORD), 'account_disabled');
      const wrong = await rejectsWith(c.users.authenticate('disabled.dora', 'not the right password'), 'invalid_credentials');
      const unknown = await rejectsWith(c.users.authenticate('nobody.here', PASSWORD), 'invalid_credentials');
      expect(wrong.detail).to.equal(unknown.detail);
      await c.users.setStatus('disabled.dora', 'active');
      expect((await c.users.authenticate('disabled.dora', PASSWORD)).status).to.equal('active');
    });
  });

  describe('administration', function () {
    it('disabling a user revokes all their sessions, in the DB and in this server’s list', async function () {
      const user = await c.users.register('sessions.sam', PASSWORD);
      const bystander = await c.users.register('bystander.bob', PASSWORD);
      const ids = await startSessions(user, 2);
      const [bystanderSession] = await startSessions(bystander, 1);
      const { user: updated, revokedSessions } = await c.users.setStatus(user.id, 'disabled');
      expect(updated.status).to.equal('disabled');
      expect(revokedSessions).to.equal(2);
      for (const id of ids) {
        const row = await sessionRow(id);
        expect(row?.revoked_at).to.be.instanceOf(Date);
        expect(row?.revoke_reason).to.equal('user_disabled');
        expect(c.revocations.has(id)).to.equal(true);
      }
      expect((await sessionRow(bystanderSession!))?.revoked_at).to.equal(null);
      expect(c.revocations.has(bystanderSession!)).to.equal(false);
      // Re-enabling does not resurrect them.
      await c.users.setStatus(user.id, 'active');
      expect((await sessionRow(ids[0]!))?.revoked_at).to.be.instanceOf(Date);
    });

    it('a disabled user cannot refresh a session started before', async function () {
      const user = await c.users.register('refresh.rita', PASSWORD);
      const issued = await startSession(c, user, {});
      await c.users.setStatus('refresh.rita', 'disabled');
      await rejectsWith(c.sessions.refresh(issued.refreshToken), 'invalid_refresh_token');
    });

    it('deleting a user revokes the sessions and keeps the revoked rows for other servers', async function () {
      const user = await c.users.register('deleted.dave', PASSWORD);
      const ids = await startSessions(user, 2);
      const { revokedSessions } = await c.users.delete('Deleted.Dave');
      expect(revokedSessions).to.equal(2);
      await rejectsWith(c.users.find(user.id), 'not_found');
      await rejectsWith(c.users.find('deleted.dave'), 'not_found');
      expect(await c.db.writer('users').where({ id: user.id })).to.have.length(0);
      for (const id of ids) {
        const row = await sessionRow(id);
        expect(row, 'session row kept').not.to.equal(undefined);
        expect(row!.user_id).to.equal(null);
        expect(row!.revoked_at).to.be.instanceOf(Date);
        expect(row!.revoke_reason).to.equal('user_deleted');
        expect(c.revocations.has(id)).to.equal(true);
        expect(other.revocations.has(id)).to.equal(false);
      }
      await other.revocations.poll();
      for (const id of ids) expect(other.revocations.has(id)).to.equal(true);
      await rejectsWith(c.users.delete(user.id), 'not_found');
    });

    it('setting a password revokes every session, or all but the one kept', async function () {
      const user = await c.users.register('password.pat', PASSWORD);
      const ids = await startSessions(user, 3);
      const [keep, ...rest] = ids;

      expect((await c.users.setPassword(user.id, NEW_PASSWORD, keep)).revokedSessions).to.equal(2);
      expect((await sessionRow(keep!))?.revoked_at).to.equal(null);
      expect(c.revocations.has(keep!)).to.equal(false);
      for (const id of rest) {
        expect((await sessionRow(id))?.revoke_reason).to.equal('password_changed');
        expect(c.revocations.has(id)).to.equal(true);
      }
      await rejectsWith(c.users.authenticate('password.pat', PASSWORD), 'invalid_credentials');
      expect((await c.users.authenticate('password.pat', NEW_PASSWORD)).id).to.equal(user.id);

      expect((await c.users.setPassword(user.id, PASSWORD)).revokedSessions).to.equal(1);
      expect((await sessionRow(keep!))?.revoke_reason).to.equal('password_changed');
      expect(c.revocations.has(keep!)).to.equal(true);
      expect(await c.sessions.listForUser(user.id)).to.deep.equal([]);
    });

    it('refuses a weak new password without revoking anything', async function () {
      const user = await c.users.register('weak.wendy', PASSWORD);
      const [id] = await startSessions(user, 1);
      await rejectsWith(c.users.setPassword(user.id, '12345678'), 'weak_password');
      expect((await sessionRow(id!))?.revoked_at).to.equal(null);
      expect((await c.users.authenticate('weak.wendy', PASSWORD)).id).to.equal(user.id);
    });

    it('finds a user by id (any case) or by unnormalized username', async function () {
      const user = await c.users.register('Find.Fiona', PASSWORD);
      expect((await c.users.find(user.id)).username).to.equal('find.fiona');
      expect((await c.users.find(user.id.toUpperCase())).id).to.equal(user.id);
      expect((await c.users.find('FIND.FIONA')).id).to.equal(user.id);
      expect((await c.users.find('Ｆｉｎｄ.Fiona')).id).to.equal(user.id);
      await rejectsWith(c.users.find('find.nobody'), 'not_found');
      await rejectsWith(c.users.find('x'), 'not_found');
      await rejectsWith(c.users.find('0190f3c2-7a1b-7c3d-8e4f-a1b2c3d4e5f6'), 'not_found');
    });

    it('lists users in pages with limit/after and filters with search', async function () {
      for (const name of ['page.e', 'page.b', 'Page.D', 'page.a', 'page.c']) await c.users.register(name, PASSWORD);
      const pages: string[][] = [];
      let after: string | undefined;
      for (let i = 0; i < 10; i++) {
        const page = await c.users.list({ limit: 2, after, search: 'page.' });
        if (page.length === 0) break;
        pages.push(page.map((u) => u.username!));
        after = page[page.length - 1]!.username!;
      }
      expect(pages).to.deep.equal([['page.a', 'page.b'], ['page.c', 'page.d'], ['page.e']]);

      // Search is on the normalized form.
      expect((await c.users.list({ limit: 100, search: 'PAGE.C' })).map((u) => u.username)).to.deep.equal(['page.c']);
      // Without search, every user is listed.
      const all = (await c.users.list({ limit: 1000 })).map((u) => u.username);
      expect(all).to.include.members(['page.a', 'page.e', 'find.fiona', 'mary.jane']);
      expect(new Set(all).size).to.equal(all.length);
      // The limit is honoured.
      expect(await c.users.list({ limit: 3 })).to.have.length(3);
    });
  });
});
