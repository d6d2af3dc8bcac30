import { v7 as uuidv7 } from 'uuid';
import type { Config } from '../../config/schema.js';
import type { IdentityRecord, LinkingPolicy, ProviderIdentity } from '../../model/identity.js';
import { passwordlessUser, type UserRecord } from '../../model/user.js';
import type { Clock } from '../../platform/clock.js';
import { AppError } from '../../platform/errors.js';
import type { Logger } from '../../platform/logger.js';
import type { Db } from '../../store/pg/db.js';
import { isSubjectTaken, type IdentitiesRepo } from '../../store/pg/identities-repo.js';
import type { PasskeysRepo } from '../../store/pg/passkeys-repo.js';
import type { UsersRepo } from '../../store/pg/users-repo.js';
import type { SessionService } from '../sessions/session-service.js';
import type { Telemetry } from '../telemetry.js';
import { keepsWayToSignIn, lastWayToSignIn } from '../users/sign-in-methods.js';
import type { RegistrationHooks } from '../users/user-service.js';
import { usernameBase, usernameCandidates } from '../users/username.js';
import { providerSettings } from './provider-settings.js';

/** An identity as its user sees it (`GET /v1/me/identities`): never the subject, which only the provider and an administrator need. */
export interface IdentityView {
  id: string;
  provider: string;
  /** The provider's name to show ("Google"). */
  displayName: string;
  email: string | null;
  emailVerified: boolean;
  createdAt: string;
  lastUsedAt: string;
}

export interface IdentityAccountsOptions {
  db: Db;
  identities: IdentitiesRepo;
  users: Pick<UsersRepo, 'findById' | 'findByEmail' | 'lock' | 'insert' | 'usernamesTaken'>;
  /** The user's passkeys: a way to sign in that unlinking the last identity leaves. */
  passkeys: Pick<PasskeysRepo, 'countLive'>;
  /** Unlinking the last identity of a provider revokes the sessions signed in through it, in the unlink's transaction. */
  sessions: Pick<SessionService, 'revokeWithin'>;
  /** `identity.*`: what an account needs (username, address) and the providers' display names. */
  identity: Pick<Config['identity'], 'username' | 'email' | 'providers'>;
  /** What registration does besides the user row (the e-mail flows: the first verification message of an unverified address). */
  hooks?: Pick<RegistrationHooks, 'registered'>;
  clock: Clock;
  log: Logger;
  telemetry: Telemetry;
  region: string;
}

/** How often a first sign-in is tried again after losing a race (a concurrent one took the pair, the address or the username). */
const ATTEMPTS = 4;

const notFound = () => new AppError('not_found', 'no such identity');
const taken = () => new AppError('identity_taken', 'this provider account is linked to another user: sign in with it there and unlink it first');

/**
 * Accounts and their provider identities (README "Accounts and linking", docs/api.md#linked-identities):
 * who a provider sign-in is, linking, and unlinking.
 *
 * An identity is the pair (provider, subject); a live pair belongs to one user (the partial
 * unique index of migration 0010), which is also what makes two concurrent first sign-ins end with
 * one user: the second one's transaction fails on the index, is rolled back (its user with it),
 * and looks again.
 */
export class IdentityAccounts {
  private readonly displayNames: Map<string, string>;

  constructor(private readonly opts: IdentityAccountsOptions) {
    this.displayNames = new Map(providerSettings({ identity: opts.identity } as Pick<Config, 'identity'>).map((p) => [p.id, p.displayName]));
  }

  /**
   * The user a provider sign-in is:
   * 1. the user the identity is linked to (`account_disabled` for a disabled one);
   * 2. else, when the provider gave an address an account holds: that account, the identity now
   *    linked to it — only when the provider says `email_verified: true`, the provider is
   *    configured `linking: "verified-email"`, and the account's own address is verified (an
   *    unverified one may have been registered by someone else, to catch the owner's sign-in).
   *    Otherwise `identity_not_linked`: the owner signs in to that account and links the provider;
   * 3. else a new user without a password, with the identity, in one transaction.
   */
  async signInWith(identity: ProviderIdentity, linking: LinkingPolicy): Promise<UserRecord> {
    for (let attempt = 1; ; attempt += 1) {
      try {
        return await this.resolve(identity, linking);
      } catch (err) {
        if (attempt < ATTEMPTS && lostRace(err)) continue;
        throw err;
      }
    }
  }

  private async resolve(identity: ProviderIdentity, linking: LinkingPolicy): Promise<UserRecord> {
    const { identities, users, clock } = this.opts;
    const now = clock.now();
    const live = await identities.findLive(identity.provider, identity.subject);
    if (live) return this.signedIn(live, identity, now);
    const email = this.opts.identity.email === 'off' ? null : identity.email;
    const holder = email === null ? undefined : await users.findByEmail(email);
    if (holder) {
      // A concurrent first sign-in of this identity may have committed its user (and the identity
      // with it, atomically) between the two look-ups: the user found now is that one.
      const since = await identities.findLive(identity.provider, identity.subject);
      if (since) return this.signedIn(since, identity, now);
      if (!(identity.emailVerified === true && linking === 'verified-email' && holder.emailVerifiedAt !== null)) throw this.notLinked(identity.provider);
      assertActive(holder);
      const record = this.newIdentity(holder.id, identity, now);
      await this.opts.db.transaction(async (trx) => {
        const locked = await users.lock(holder.id, trx);
        if (!locked) throw notFound();
        await identities.insert(record, trx);
      });
      this.opts.telemetry.identityLinked(holder.id, record.id, record.provider, 'verified-email');
      return holder;
    }
    return this.createUser(identity, email, now);
  }

  /** A sign-in through an identity linked already: its user, if active; the use recorded. */
  private async signedIn(live: IdentityRecord, identity: ProviderIdentity, now: Date): Promise<UserRecord> {
    const user = await this.opts.users.findById(live.userId);
    // The foreign key deletes identities with their user: a live row always has one.
    if (!user) throw notFound();
    assertActive(user);
    await this.opts.identities.touch(live.id, now, identity);
    return user;
  }

  /** A new user for a provider account nobody has: no password; the identity in the same transaction. */
  private async createUser(identity: ProviderIdentity, email: string | null, now: Date): Promise<UserRecord> {
    const rules = this.opts.identity;
    if (email === null && rules.email === 'required') {
      throw new AppError(
        'invalid_request',
        `${this.displayName(identity.provider)} did not give an e-mail address, and every account here needs one ` +
          `(identity.email is "required"): allow the provider's "email" scope`,
      );
    }
    // A user needs an identifier: without an address it gets a username even where usernames are optional.
    const username = rules.username === 'required' || email === null ? await this.freeUsername(identity) : null;
    const emailVerifiedAt = email !== null && identity.emailVerified === true ? now : null;
    const record = passwordlessUser(uuidv7(), { username, email, emailVerifiedAt }, this.opts.region, now);
    const identityRecord = this.newIdentity(record.id, identity, now);
    const user = await this.opts.db.transaction(async (trx) => {
      const inserted = await this.opts.users.insert(record, trx);
      await this.opts.identities.insert(identityRecord, trx);
      if (inserted.email !== null && inserted.emailVerifiedAt === null) await this.opts.hooks?.registered(trx, inserted);
      return inserted;
    });
    this.opts.telemetry.registeredWithProvider(user.id, identity.provider);
    return user;
  }

  /** A username from what the provider said (README "Accounts and linking"): the first candidate nobody holds. */
  private async freeUsername(identity: ProviderIdentity): Promise<string> {
    const candidates = usernameCandidates(usernameBase([identity.preferredUsername, identity.email, identity.name]));
    const held = new Set(await this.opts.users.usernamesTaken(candidates));
    const free = candidates.find((c) => !held.has(c));
    // Twenty taken: a random tail (a collision now is a lost race, retried).
    return free ?? usernameCandidates(candidates[0]!, uuidv7().replace(/-/g, '').slice(-6))[1]!;
  }

  /**
   * Links a provider account to a signed-in user (the end of `POST /v1/me/identities`, after the
   * provider dance): idempotent for the user's own identity, `identity_taken` when another user has it.
   */
  async link(userId: string, identity: ProviderIdentity): Promise<IdentityRecord> {
    const { identities, users, clock } = this.opts;
    const now = clock.now();
    let outcome: { record: IdentityRecord; created: boolean };
    try {
      outcome = await this.opts.db.transaction(async (trx) => {
        if (!(await users.lock(userId, trx))) throw new AppError('not_found', 'no such user');
        const live = await identities.findLive(identity.provider, identity.subject, trx);
        if (live) {
          if (live.userId !== userId) throw taken();
          return { record: live, created: false };
        }
        const record = this.newIdentity(userId, identity, now);
        await identities.insert(record, trx);
        return { record, created: true };
      });
    } catch (err) {
      if (!isSubjectTaken(err)) throw err;
      // A concurrent link (or first sign-in) of the same provider account committed first.
      const live = await identities.findLive(identity.provider, identity.subject);
      if (live?.userId !== userId) throw taken();
      outcome = { record: live, created: false };
    }
    if (outcome.created) this.opts.telemetry.identityLinked(userId, outcome.record.id, outcome.record.provider, 'self');
    return outcome.record;
  }

  /** The user's live identities, oldest first. */
  list(userId: string): Promise<IdentityRecord[]> {
    return this.opts.identities.listLive(userId);
  }

  /**
   * Removes the user's identity with this id, or (an administrator's `authctl user unlink`) every
   * identity of the user at this provider. `last_sign_in_method` when the user would have no way
   * left to sign in ({@link keepsWayToSignIn}: no password, no other identity, no passkey, and no
   * verified address); `not_found` when the user has
   * no such identity. Returns the first identity removed.
   *
   * When no live identity of the provider is left, the user's sessions signed in through it
   * (`sessions.idp`) are revoked in the same transaction (`identity_unlinked`), and published as
   * every revocation is: a provider account the user no longer trusts (or an administrator cut
   * off) keeps no session it opened, and no access token goes on naming a provider the account
   * has not linked. A session records the provider, not which of its accounts: while another
   * identity of the provider stays, its sessions stay too.
   */
  async unlink(userId: string, identityIdOrProvider: string, by: { via: 'self' } | { via: 'admin'; actor: string } = { via: 'self' }): Promise<IdentityRecord> {
    const { identities, users, clock } = this.opts;
    const now = clock.now();
    const removed = await this.opts.sessions.revokeWithin(async (tx) => {
      const trx = tx.ex;
      // Locked first, as link does: two concurrent unlinks of a user's two identities cannot both pass the check.
      const user = await users.lock(userId, trx);
      if (!user) throw new AppError('not_found', 'no such user');
      const live = await identities.listLive(userId, trx);
      const targets = live.filter((i) => i.id === identityIdOrProvider || i.provider === identityIdOrProvider);
      if (targets.length === 0) throw notFound();
      if (targets.length === live.length) {
        const left = { identities: 0, passkeys: await this.opts.passkeys.countLive(userId, trx) };
        if (!keepsWayToSignIn(user, left, this.opts.identity.email)) throw lastWayToSignIn('identity');
      }
      const gone = await identities.remove(
        userId,
        targets.map((i) => i.id),
        now,
        trx,
      );
      const left = new Set(live.filter((i) => !gone.some((g) => g.id === i.id)).map((i) => i.provider));
      for (const provider of new Set(gone.map((i) => i.provider))) {
        if (!left.has(provider)) await tx.revokeAllForUser(userId, 'identity_unlinked', { idp: provider });
      }
      return gone;
    });
    if (removed.length === 0) throw notFound();
    this.opts.telemetry.identityUnlinked(
      userId,
      removed.map((i) => i.id),
      removed[0]!.provider,
      by,
    );
    return removed[0]!;
  }

  /** The view of an identity its user (and the API) sees. */
  view(identity: IdentityRecord): IdentityView {
    return {
      id: identity.id,
      provider: identity.provider,
      displayName: this.displayName(identity.provider),
      email: identity.email,
      emailVerified: identity.emailVerified,
      createdAt: identity.createdAt.toISOString(),
      lastUsedAt: identity.lastUsedAt.toISOString(),
    };
  }

  /** The configured display name of a provider; its id for one no longer configured. */
  displayName(provider: string): string {
    return this.displayNames.get(provider) ?? provider;
  }

  private newIdentity(userId: string, identity: ProviderIdentity, now: Date): IdentityRecord {
    return {
      id: uuidv7(),
      userId,
      provider: identity.provider,
      subject: identity.subject,
      email: identity.email,
      emailVerified: identity.emailVerified === true,
      homeRegion: this.opts.region,
      createdAt: now,
      lastUsedAt: now,
      removedAt: null,
      version: 1,
    };
  }

  private notLinked(provider: string): AppError {
    const name = this.displayName(provider);
    return new AppError(
      'identity_not_linked',
      `an account with this e-mail address exists already, and ${name} is not linked to it: ` +
        `sign in to that account first (as before: its password, an e-mailed code or a reset), then link ${name} from it`,
    );
  }
}

/** `account_disabled` for a user an administrator disabled: a provider sign-in gets no further than a password one. */
export function assertActive(user: UserRecord): void {
  if (user.status !== 'active') throw new AppError('account_disabled', 'this account has been disabled by an administrator');
}

/** A first sign-in that lost a race to a concurrent one: the pair, the address or the username was taken meanwhile. */
function lostRace(err: unknown): boolean {
  return isSubjectTaken(err) || (err instanceof AppError && (err.code === 'email_taken' || err.code === 'username_taken'));
}
