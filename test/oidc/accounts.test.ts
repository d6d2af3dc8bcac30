import { randomBytes } from 'node:crypto';
import { expect } from 'chai';
import type { Config } from '../../src/config/schema.js';
import { IdentityAccounts } from '../../src/core/oidc/identity-accounts.js';
import type { ProviderIdentity } from '../../src/model/identity.js';
import { rejectsWith } from '../helpers/assert.js';
import { uniquePassword } from '../helpers/http-assert.js';
import { codeAndLink, nextMail, startEmailRegion, type EmailRegion } from '../email/support.js';

/** A provider account nobody has signed in with yet (its subject is unique). */
function google(overrides: Partial<ProviderIdentity> = {}): ProviderIdentity {
  return {
    provider: 'google',
    subject: `sub-${randomBytes(8).toString('hex')}`,
    email: null,
    emailVerified: false,
    name: null,
    preferredUsername: null,
    ...overrides,
  };
}

const address = (local = 'u') => `${local}-${randomBytes(5).toString('hex')}@example.test`;

describe('IdentityAccounts: who a provider sign-in is (over PostgreSQL)', function () {
  this.timeout(60_000);
  let region: EmailRegion;

  before(async () => {
    region = await startEmailRegion('oidc_accounts', {
      identity: {
        username: 'optional',
        email: 'optional',
        providers: [{ id: 'google', clientId: 'test-client', linking: 'verified-email', displayName: 'Google' }],
        redirectUrls: ['http://127.0.0.1/app/*'],
      },
    });
  });
  after(async () => region?.close());

  const c = () => region.app.container;
  /** The service over the region's database, with other `identity.*` rules. */
  const accountsWith = (rules: Partial<Pick<Config['identity'], 'username' | 'email'>>) => {
    const container = c();
    return new IdentityAccounts({
      db: container.db,
      identities: container.repos.identities,
      passkeys: container.repos.passkeys,
      users: container.repos.users,
      sessions: container.sessions,
      identity: { ...container.config.identity, ...rules },
      clock: container.clock,
      log: container.log,
      telemetry: container.telemetry,
      region: container.config.region,
    });
  };
  /** A password account with an address, verified or not. */
  const passwordUser = async (email: string, verified: boolean) => c().users.register({ email, password: uniquePassword() }, { emailVerified: verified });

  describe('first sign-in', () => {
    it('creates a user without a password, with the identity and the provider-verified address (verified)', async () => {
      const email = address('ada');
      const identity = google({ email, emailVerified: true, name: 'Ada Lovelace' });
      const user = await c().identities.signInWith(identity, 'verified-email');
      expect(user.passwordHash).to.equal(null);
      expect(user.email).to.equal(email);
      expect(user.emailVerifiedAt).to.be.instanceOf(Date);
      expect(user.username, 'identity.username "optional": none').to.equal(null);
      const [linked, ...others] = await c().identities.list(user.id);
      expect(others).to.deep.equal([]);
      expect(linked).to.include({ provider: 'google', subject: identity.subject, email, emailVerified: true, removedAt: null });
      expect(c().identities.view(linked!)).to.include({ displayName: 'Google', provider: 'google', email });
    });

    it('the same identity again is the same user, and its use is recorded', async () => {
      const identity = google({ email: address(), emailVerified: true });
      const first = await c().identities.signInWith(identity, 'off');
      const [before] = await c().identities.list(first.id);
      await new Promise((r) => setImmediate(r));
      const again = await c().identities.signInWith({ ...identity, name: 'changed' }, 'off');
      expect(again.id).to.equal(first.id);
      const [after] = await c().identities.list(first.id);
      expect(after!.version).to.be.above(before!.version);
      expect(after!.lastUsedAt.getTime()).to.be.at.least(before!.lastUsedAt.getTime());
    });

    it('an address the provider did not verify goes on the user unverified, and a verification message is sent to it', async () => {
      const email = address('unv');
      const since = region.smtp.received.length;
      const user = await c().identities.signInWith(google({ email, emailVerified: false }), 'verified-email');
      expect(user.email).to.equal(email);
      expect(user.emailVerifiedAt).to.equal(null);
      await nextMail(region.smtp, email, /verification code/, since);
    });

    it('without an address (and usernames optional) the user gets a username from the provider’s name', async () => {
      const user = await c().identities.signInWith(google({ preferredUsername: null, name: `Grace Hopper ${randomBytes(3).toString('hex')}` }), 'off');
      expect(user.email).to.equal(null);
      expect(user.username).to.match(/^grace\.hopper\.[0-9a-f]{6}$/);
    });

    it('identity.email "off": no address on the user, whatever the provider gave', async () => {
      const accounts = accountsWith({ email: 'off', username: 'required' });
      const user = await accounts.signInWith(
        google({ email: address('off'), emailVerified: true, preferredUsername: `off${randomBytes(3).toString('hex')}` }),
        'verified-email',
      );
      expect(user.email).to.equal(null);
      expect(user.username).to.match(/^off[0-9a-f]{6}$/);
    });

    it('identity.email "required": a provider that gives no address is refused, and no user is created', async () => {
      const accounts = accountsWith({ email: 'required' });
      const identity = google({ preferredUsername: `noaddr${randomBytes(3).toString('hex')}` });
      const err = await rejectsWith(accounts.signInWith(identity, 'verified-email'), 'invalid_request');
      expect(err.detail).to.match(/e-mail address/);
      expect(await c().repos.identities.findLive('google', identity.subject)).to.equal(undefined);
      expect(await c().repos.users.findByUsername(identity.preferredUsername!)).to.equal(undefined);
    });

    it('identity.username "required": derived from preferred_username, else the address, made valid, with a suffix on collision', async () => {
      const accounts = accountsWith({ username: 'required' });
      const tag = randomBytes(3).toString('hex');
      const first = await accounts.signInWith(google({ preferredUsername: `Ｊöhn Doe!${tag}`, email: address(), emailVerified: true }), 'off');
      expect(first.username).to.equal(`jöhn.doe${tag}`);
      const second = await accounts.signInWith(
        google({ preferredUsername: `john doe!${tag}`.replace('o', 'ö'), email: address(), emailVerified: true }),
        'off',
      );
      expect(second.username).to.equal(`jöhn.doe${tag}2`);
      const third = await accounts.signInWith(google({ email: `x.${tag}+tag@example.test`, emailVerified: true }), 'off');
      expect(third.username).to.equal(`x.${tag}tag`);
      const tiny = await accounts.signInWith(google({ preferredUsername: '!!', name: null, email: null }), 'off');
      expect(tiny.username).to.match(/^user\d*$/);
    });

    it('a disabled user is refused with account_disabled', async () => {
      const identity = google({ email: address(), emailVerified: true });
      const user = await c().identities.signInWith(identity, 'off');
      await c().users.setStatus(user.id, 'disabled');
      await rejectsWith(c().identities.signInWith(identity, 'off'), 'account_disabled');
    });

    it('two concurrent first sign-ins of one identity end with one user', async () => {
      for (const email of [address('race'), null]) {
        const identity = google({ email, emailVerified: true, preferredUsername: `race${randomBytes(3).toString('hex')}` });
        const users = await Promise.all(Array.from({ length: 6 }, () => c().identities.signInWith(identity, 'off')));
        expect(new Set(users.map((u) => u.id)).size, 'one user').to.equal(1);
        const rows = await c().db.writer('user_identities').where({ provider: 'google', subject: identity.subject });
        expect(rows).to.have.length(1);
        if (email) expect(await c().db.writer('users').whereRaw('lower(email) = lower(?)', [email])).to.have.length(1);
      }
    });
  });

  describe('an address an existing account holds', () => {
    it('is linked automatically when the provider verified it, the provider links by verified e-mail, and the account’s address is verified', async () => {
      const email = address('link');
      const owner = await passwordUser(email, true);
      const identity = google({ email: email.toUpperCase().replace('@EXAMPLE.TEST', '@example.test'), emailVerified: true });
      const user = await c().identities.signInWith(identity, 'verified-email');
      expect(user.id).to.equal(owner.id);
      expect((await c().identities.list(owner.id)).map((i) => i.subject)).to.deep.equal([identity.subject]);
      // The next sign-in finds it by the identity.
      expect((await c().identities.signInWith({ ...identity, email: null }, 'off')).id).to.equal(owner.id);
    });

    for (const [title, verifiedByProvider, policy, accountVerified] of [
      ['an address the provider did not verify (the takeover)', false, 'verified-email', true],
      ['a provider configured linking "off"', true, 'off', true],
      ['an account whose own address is unverified (registered by someone else, perhaps)', true, 'verified-email', false],
    ] as const) {
      it(`is refused with identity_not_linked for ${title}, and nothing is linked or created`, async () => {
        const email = address('refuse');
        const owner = await passwordUser(email, accountVerified);
        const identity = google({ email, emailVerified: verifiedByProvider, preferredUsername: `refuse${randomBytes(3).toString('hex')}` });
        const err = await rejectsWith(c().identities.signInWith(identity, policy), 'identity_not_linked');
        expect(err.detail).to.match(/sign in to that account first.*link Google/);
        expect(await c().identities.list(owner.id)).to.deep.equal([]);
        expect(await c().repos.identities.findLive('google', identity.subject)).to.equal(undefined);
        expect(await c().repos.users.findByUsername(identity.preferredUsername!)).to.equal(undefined);
      });
    }

    it('a disabled account is not linked', async () => {
      const email = address('dis');
      const owner = await passwordUser(email, true);
      await c().users.setStatus(owner.id, 'disabled');
      await rejectsWith(c().identities.signInWith(google({ email, emailVerified: true }), 'verified-email'), 'account_disabled');
      expect(await c().identities.list(owner.id)).to.deep.equal([]);
    });
  });

  describe('link', () => {
    it('links a provider account to a signed-in user, idempotently; identity_taken when another user has it', async () => {
      const alice = await passwordUser(address('alice'), true);
      const bob = await passwordUser(address('bob'), true);
      const identity = google({ email: address('g'), emailVerified: true });
      const linked = await c().identities.link(alice.id, identity);
      expect(linked).to.include({ userId: alice.id, subject: identity.subject });
      expect((await c().identities.link(alice.id, identity)).id, 'idempotent').to.equal(linked.id);
      await rejectsWith(c().identities.link(bob.id, identity), 'identity_taken');
      expect((await c().identities.signInWith(identity, 'off')).id).to.equal(alice.id);
    });

    it('two users linking one provider account at once: one gets it, the other identity_taken', async () => {
      const [a, b] = await Promise.all([passwordUser(address('a'), false), passwordUser(address('b'), false)]);
      const identity = google();
      const outcomes = await Promise.allSettled([c().identities.link(a.id, identity), c().identities.link(b.id, identity)]);
      expect(outcomes.filter((o) => o.status === 'fulfilled')).to.have.length(1);
      const rejected = outcomes.find((o) => o.status === 'rejected');
      expect((rejected!.reason as { code: string }).code).to.equal('identity_taken');
    });
  });

  describe('unlink', () => {
    it('refuses the last way to sign in (no password, no other identity, no verified address), then allows it once there is another', async () => {
      const identity = google({ preferredUsername: `last${randomBytes(3).toString('hex')}` });
      const user = await c().identities.signInWith(identity, 'off');
      const [only] = await c().identities.list(user.id);
      await rejectsWith(c().identities.unlink(user.id, only!.id), 'last_sign_in_method');
      await rejectsWith(c().identities.unlink(user.id, 'google'), 'last_sign_in_method');
      const second = await c().identities.link(user.id, google());
      const removed = await c().identities.unlink(user.id, only!.id);
      expect(removed.id).to.equal(only!.id);
      expect((await c().identities.list(user.id)).map((i) => i.id)).to.deep.equal([second.id]);
      const row = await c().db.writer<{ id: string; removed_at: Date | null }>('user_identities').where({ id: only!.id }).first();
      expect(row?.removed_at, 'the row stays, removed').to.be.instanceOf(Date);
      // The removed identity signs in as nobody now: a new user.
      expect((await c().identities.signInWith(identity, 'off')).id).to.not.equal(user.id);
    });

    it('a verified address (e-mailed sign-in codes and resets reach it) counts as a way to sign in; an unverified one does not', async () => {
      const verified = await c().identities.signInWith(google({ email: address('v'), emailVerified: true }), 'off');
      await c().identities.unlink(verified.id, 'google');
      expect(await c().identities.list(verified.id)).to.deep.equal([]);
      const unverified = await c().identities.signInWith(google({ email: address('nv'), emailVerified: false }), 'off');
      await rejectsWith(c().identities.unlink(unverified.id, 'google'), 'last_sign_in_method');
    });

    it('a password counts; an unknown identity or someone else’s is not_found', async () => {
      const owner = await passwordUser(address('pw'), false);
      const other = await passwordUser(address('other'), false);
      const linked = await c().identities.link(owner.id, google());
      await rejectsWith(c().identities.unlink(other.id, linked.id), 'not_found');
      await rejectsWith(c().identities.unlink(owner.id, 'github'), 'not_found');
      await c().identities.unlink(owner.id, linked.id);
      await rejectsWith(c().identities.unlink(owner.id, linked.id), 'not_found');
    });

    it('deleting the user deletes its identities (and frees the provider account)', async () => {
      const identity = google({ email: address('del'), emailVerified: true });
      const user = await c().identities.signInWith(identity, 'off');
      await c().users.delete(user.id);
      expect(await c().db.writer('user_identities').where({ user_id: user.id })).to.deep.equal([]);
      expect((await c().identities.signInWith(identity, 'off')).id).to.not.equal(user.id);
    });
  });

  it('a user created through a provider gets a first password by the reset flow, and then logs in with it', async () => {
    const email = address('reset');
    const user = await c().identities.signInWith(google({ email, emailVerified: true }), 'off');
    expect(user.passwordHash).to.equal(null);
    const since = region.smtp.received.length;
    const forgot = await region.app.request('/v1/auth/password/forgot', { method: 'POST', json: { email } });
    expect(forgot.status).to.equal(202);
    const { code } = codeAndLink(await nextMail(region.smtp, email, /reset|password/i, since));
    const newPassword = uniquePassword();
    const reset = await region.app.request('/v1/auth/password/reset', { method: 'POST', json: { email, code, newPassword } });
    expect(reset.status, await reset.clone().text()).to.equal(204);
    const login = await region.app.request('/v1/auth/login', { method: 'POST', json: { email, password: newPassword } });
    expect(login.status, await login.clone().text()).to.equal(200);
    // Now the password is a way in: the identity may go.
    await c().identities.unlink(user.id, 'google');
  });
});
