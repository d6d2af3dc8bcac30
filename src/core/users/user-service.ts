import { v7 as uuidv7, validate as isUuid } from 'uuid';
import { AppError, invalidRequest } from '../../platform/errors.js';
import type { Logger } from '../../platform/logger.js';
import type { Telemetry } from '../telemetry.js';
import type { UserRecord } from '../../model/user.js';
import type { UsersRepo } from '../../store/pg/users-repo.js';
import type { RevokedSession } from '../../model/session.js';
import type { Clock } from '../../platform/clock.js';
import type { SessionService } from '../sessions/session-service.js';
import type { PasswordHasher } from './password-hasher.js';
import { checkPasswordPolicy } from './password-policy.js';
import { normalizeUsername } from './username.js';
import { normalizeEmail } from './email.js';
import type { Knex } from 'knex';
import type { Db } from '../../store/pg/db.js';

/** The public view of a user (docs/api.md#user): never a hash, never a secret. */
export interface UserView {
  id: string;
  username: string | null;
  email: string | null;
  emailVerified: boolean;
  homeRegion: string;
  createdAt: string;
}

/** What `identity.*` asks of a sign-up (src/config/schema.ts). */
export interface IdentityRules {
  username: 'required' | 'optional';
  email: 'required' | 'optional' | 'off';
  requireVerifiedEmail: boolean;
}

/** Who signs up: a username, an address, or both, as `identity.*` requires. */
export interface Registration {
  username?: string | undefined;
  email?: string | undefined;
  password: string;
}

/** How an administrator's `authctl user create` differs from a sign-up. */
export interface RegistrationOptions {
  /** A taken address is always `email_taken` (an admin is told, whatever `requireVerifiedEmail` says). */
  asAdmin?: boolean;
  /** The address is verified from the start, and no verification message is sent. */
  emailVerified?: boolean;
}

/** Who logs in: by username or by address. */
export type LoginIdentifier = { username: string; email?: undefined } | { email: string; username?: undefined };

/**
 * What registration does besides the user row, in its transaction (the e-mail flows: the first
 * verification message), and for a taken address when sign-up must not tell (the owner's notice).
 */
export interface RegistrationHooks {
  registered(trx: Knex.Transaction, user: UserRecord): Promise<void>;
  addressTaken(email: string): Promise<void>;
}

/** The admin view adds status and timestamps. */
export interface AdminUserView extends UserView {
  /** When the address was last proven; null while unverified (or without an address). */
  emailVerifiedAt: string | null;
  status: 'active' | 'disabled';
  updatedAt: string;
  passwordChangedAt: string;
  /** False for an account created by an e-mailed sign-in code that has not set a password yet (a reset sets one). */
  hasPassword: boolean;
}

export function toUserView(user: Pick<UserRecord, 'id' | 'username' | 'email' | 'emailVerifiedAt' | 'homeRegion' | 'createdAt'>): UserView {
  return {
    id: user.id,
    username: user.username,
    email: user.email,
    emailVerified: user.emailVerifiedAt !== null,
    homeRegion: user.homeRegion,
    createdAt: user.createdAt.toISOString(),
  };
}

export function toAdminUserView(user: UserRecord): AdminUserView {
  const { id, username, email, emailVerified, homeRegion, createdAt } = toUserView(user);
  return {
    id,
    username,
    email,
    emailVerified,
    emailVerifiedAt: user.emailVerifiedAt?.toISOString() ?? null,
    homeRegion,
    createdAt,
    status: user.status,
    updatedAt: user.updatedAt.toISOString(),
    passwordChangedAt: user.passwordChangedAt.toISOString(),
    hasPassword: user.passwordHash !== null,
  };
}

export interface UserServiceOptions {
  db: Db;
  repo: UsersRepo;
  identity: IdentityRules;
  /** Set by the container once the e-mail flows exist (they need this service's repository too). */
  hooks?: RegistrationHooks;
  sessions: SessionService;
  hasher: PasswordHasher;
  clock: Clock;
  log: Logger;
  telemetry: Telemetry;
  region: string;
}

const notFound = () => new AppError('not_found', 'no such user');
/** Something that is no address or username at all (normalization refused it): then no such user. A database error is not. */
const isInvalidRequest = (err: unknown): boolean => err instanceof AppError && err.code === 'invalid_request';

/**
 * Users: registration, password authentication and administration. Used alike by the HTTP
 * routes and by `authctl user …`. Every change that must end sessions (disable, delete,
 * password change) revokes them in the same transaction and publishes the revocation after commit.
 */
export class UserService {
  constructor(private readonly opts: UserServiceOptions) {}

  /** Sets what registration does besides the user row (the container, once the e-mail flows exist). */
  setHooks(hooks: RegistrationHooks): void {
    this.opts.hooks = hooks;
  }

  /**
   * Registers a user with the identifiers `identity.*` asks for (`invalid_request` naming the
   * missing or unexpected field otherwise). With an address, the first verification message is
   * enqueued in the same transaction. A taken address is `email_taken` — unless
   * `identity.requireVerifiedEmail` is on: then the answer is a user like a fresh one's (with an
   * id nobody has), the owner is mailed a notice instead, and the work done is the same (one
   * hash, one insert that fails here instead of committing), so neither the body nor the time
   * tells that the address has an account.
   */
  async register(username: string, password: string): Promise<UserRecord>;
  async register(input: Registration, options?: RegistrationOptions): Promise<UserRecord>;
  async register(inputOrUsername: Registration | string, passwordOrOptions?: string | RegistrationOptions): Promise<UserRecord> {
    const input: Registration =
      typeof inputOrUsername === 'string'
        ? { username: inputOrUsername, password: typeof passwordOrOptions === 'string' ? passwordOrOptions : '' }
        : inputOrUsername;
    const options: RegistrationOptions = typeof passwordOrOptions === 'object' ? passwordOrOptions : {};
    const { identity } = this.opts;
    const username = input.username === undefined ? null : normalizeUsername(input.username);
    if (input.email !== undefined && identity.email === 'off') {
      throw invalidRequest(
        [{ path: 'email', message: 'sign-up takes no e-mail address here (identity.email is "off")' }],
        'sign-up takes no e-mail address here',
      );
    }
    const email = input.email === undefined ? null : normalizeEmail(input.email);
    if (username === null && identity.username === 'required') throw invalidRequest([{ path: 'username', message: 'required' }], 'username is required');
    if (email === null && identity.email === 'required') throw invalidRequest([{ path: 'email', message: 'required' }], 'email is required');
    if (username === null && email === null)
      throw invalidRequest([{ path: 'username', message: 'a username or an email is required' }], 'a username or an email is required');
    checkPasswordPolicy(input.password, { username: username ?? email ?? '' });
    const passwordHash = await this.opts.hasher.hash(input.password);
    const now = this.opts.clock.now();
    const record: Omit<UserRecord, 'version'> = {
      id: uuidv7(),
      username,
      email,
      emailVerifiedAt: email !== null && options.emailVerified ? now : null,
      passwordHash,
      status: 'active',
      homeRegion: this.opts.region,
      createdAt: now,
      updatedAt: now,
      passwordChangedAt: now,
    };
    let user: UserRecord;
    try {
      user = await this.opts.db.transaction(async (trx) => {
        const inserted = await this.opts.repo.insert(record, trx);
        if (email !== null && inserted.emailVerifiedAt === null) await this.opts.hooks?.registered(trx, inserted);
        return inserted;
      });
    } catch (err) {
      if (err instanceof AppError && err.code === 'email_taken' && identity.requireVerifiedEmail && !options.asAdmin && email !== null && this.opts.hooks) {
        await this.opts.hooks.addressTaken(email);
        this.opts.log.info('sign-up with an address that has an account: its owner is notified', { event: 'user.signup_address_taken' });
        return { ...record, version: 1 };
      }
      throw err;
    }
    this.opts.telemetry.registered(user.id);
    return user;
  }

  /**
   * Checks a username (or address) and password. An unknown (or unnormalizable) identifier costs
   * one argon2 verification like a wrong password does, and fails the same way, so neither the
   * response nor its timing tells whether the account exists. The disabled state, and with
   * `identity.requireVerifiedEmail` an unverified address, are revealed only to someone who knows
   * the password.
   */
  async authenticate(by: LoginIdentifier | string, password: string): Promise<UserRecord> {
    const identifier: LoginIdentifier = typeof by === 'string' ? { username: by } : by;
    const user = await this.findForLogin(identifier);
    if (!user) {
      await this.opts.hasher.dummyVerify(password);
      this.opts.telemetry.loginFailed('unknown_user');
      throw new AppError('invalid_credentials', `${identifier.email === undefined ? 'username' : 'e-mail address'} or password is wrong`);
    }
    if (!(await this.opts.hasher.verify(user.passwordHash, password))) {
      this.opts.telemetry.loginFailed('mismatch', user.id);
      throw new AppError('invalid_credentials', `${identifier.email === undefined ? 'username' : 'e-mail address'} or password is wrong`);
    }
    if (user.status !== 'active') {
      this.opts.telemetry.loginFailed('disabled', user.id);
      throw new AppError('account_disabled', 'this account has been disabled by an administrator');
    }
    if (this.opts.identity.requireVerifiedEmail && user.email !== null && user.emailVerifiedAt === null) {
      this.opts.telemetry.loginFailed('email_not_verified', user.id);
      throw new AppError(
        'email_not_verified',
        'the e-mail address of this account is not verified yet: use the code or link sent to it (POST /v1/auth/email/verify/send sends another)',
      );
    }
    // Off the response path: the login does not wait for a better hash, nor fail for want of one.
    if (user.passwordHash !== null) void this.upgradeHash(user.id, user.passwordHash, password);
    return user;
  }

  /**
   * Replaces a hash the password just matched when it is not what authctl writes today (older
   * cost parameters, the non-standard parameter order): {@link PasswordHasher.upgrade}. A failure
   * is logged and the login stands; the next one tries again.
   */
  private async upgradeHash(userId: string, hash: string, password: string): Promise<void> {
    try {
      const better = await this.opts.hasher.upgrade(hash, password);
      if (better !== undefined && (await this.opts.repo.replacePasswordHash(userId, hash, better, this.opts.clock.now()))) {
        this.opts.log.info('password hash upgraded', { event: 'user.password_rehashed', userId });
      }
    } catch (err) {
      this.opts.log.warn('password hash upgrade failed', { event: 'user.password_rehash_failed', userId, err });
    }
  }

  private async findForLogin(identifier: LoginIdentifier): Promise<UserRecord | undefined> {
    try {
      if (identifier.email !== undefined)
        return this.opts.identity.email === 'off' ? undefined : await this.opts.repo.findByEmail(normalizeEmail(identifier.email));
      return await this.opts.repo.findByUsername(normalizeUsername(identifier.username));
    } catch (err) {
      if (err instanceof AppError && err.code === 'invalid_request') return undefined;
      throw err;
    }
  }

  async get(id: string): Promise<UserRecord> {
    const user = await this.opts.repo.findById(id);
    if (!user) throw notFound();
    return user;
  }

  /** Finds a user by id (UUID), by address (anything with an "@" that is one) or by username (normalized first). */
  async find(idOrName: string): Promise<UserRecord> {
    if (isUuid(idOrName)) return this.get(idOrName.toLowerCase());
    let user: UserRecord | undefined;
    if (idOrName.includes('@')) {
      try {
        user = await this.opts.repo.findByEmail(normalizeEmail(idOrName));
      } catch (err) {
        if (!isInvalidRequest(err)) throw err;
      }
    }
    if (!user) {
      try {
        user = await this.opts.repo.findByUsername(normalizeUsername(idOrName));
      } catch (err) {
        if (!isInvalidRequest(err)) throw err;
      }
    }
    if (!user) throw notFound();
    return user;
  }

  /**
   * Sets (or, with null, removes) a user's address as an administrator (`authctl user set-email`):
   * verified or not as given. Removing the only identifier is refused.
   */
  async setEmail(idOrName: string, rawEmail: string | null, verified: boolean): Promise<UserRecord> {
    const target = await this.find(idOrName);
    const email = rawEmail === null ? null : normalizeEmail(rawEmail);
    if (email === null && target.username === null) {
      throw invalidRequest(
        [{ path: 'email', message: 'the user has no username: the address is its only identifier' }],
        'the user has no username: its address cannot be removed',
      );
    }
    const now = this.opts.clock.now();
    const updated = await this.opts.repo.setEmail(target.id, email, email !== null && verified ? now : null, now);
    if (!updated) throw notFound();
    this.opts.log.info('e-mail address set by an administrator', { event: 'user.email_set', userId: target.id, verified: email !== null && verified });
    return updated;
  }

  /** Marks the user's address verified (`authctl user verify-email`); `invalid_request` when it has none. */
  async markEmailVerified(idOrName: string): Promise<UserRecord> {
    const target = await this.find(idOrName);
    if (target.email === null) throw invalidRequest([{ path: 'email', message: 'the user has no e-mail address' }], 'the user has no e-mail address to verify');
    const updated = await this.opts.repo.markEmailVerified(target.id, target.email, this.opts.clock.now());
    if (!updated) throw notFound();
    this.opts.log.info('e-mail address verified by an administrator', { event: 'user.email_verified', userId: target.id });
    return updated;
  }

  list(query: { limit: number; after?: string | undefined; search?: string | undefined }): Promise<UserRecord[]> {
    return this.opts.repo.list({ ...query, search: query.search ? query.search.normalize('NFKC').toLowerCase() : undefined });
  }

  async setStatus(idOrUsername: string, status: 'active' | 'disabled'): Promise<{ user: UserRecord; revokedSessions: number }> {
    const target = await this.find(idOrUsername);
    const { user, revoked } = await this.opts.sessions.revokeWithin(async (tx) => {
      const now = this.opts.clock.now();
      const updated = await this.opts.repo.setStatus(target.id, status, now, tx.ex);
      if (!updated) throw notFound();
      const revoked = status === 'disabled' ? await tx.revokeAllForUser(target.id, 'user_disabled') : [];
      return { user: updated, revoked };
    });
    this.opts.log.info(`user ${status === 'disabled' ? 'disabled' : 'enabled'}`, {
      event: `user.${status === 'disabled' ? 'disabled' : 'enabled'}`,
      userId: user.id,
    });
    return { user, revokedSessions: revoked.length };
  }

  async delete(idOrUsername: string): Promise<{ user: UserRecord; revokedSessions: number }> {
    const target = await this.find(idOrUsername);
    const revoked = await this.opts.sessions.revokeWithin(async (tx) => {
      const revoked = await tx.revokeAllForUser(target.id, 'user_deleted');
      if (!(await this.opts.repo.delete(target.id, tx.ex))) throw notFound();
      return revoked;
    });
    this.opts.log.info('user deleted', { event: 'user.deleted', userId: target.id });
    return { user: target, revokedSessions: revoked.length };
  }

  /**
   * Sets a new password and revokes sessions: all of them (admin reset), or all but
   * `keepSessionId` (the user changing their own password keeps the session they did it from).
   */
  async setPassword(userId: string, password: string, keepSessionId?: string): Promise<{ revokedSessions: number }> {
    const target = await this.get(userId);
    checkPasswordPolicy(password, { username: target.username ?? target.email ?? '', path: keepSessionId ? 'newPassword' : 'password' });
    const passwordHash = await this.opts.hasher.hash(password);
    const revoked = await this.opts.sessions.revokeWithin(async (tx) => {
      const now = this.opts.clock.now();
      const updated = await this.opts.repo.setPasswordHash(target.id, passwordHash, now, keepSessionId ?? null, tx.ex);
      if (!updated) throw notFound();
      return tx.revokeAllForUser(target.id, 'password_changed', keepSessionId ? { exceptId: keepSessionId } : {});
    });
    this.opts.log.info('credentials changed', { event: 'user.password_changed', userId: target.id });
    return { revokedSessions: revoked.length };
  }

  /** Logout-all: revokes every session of the user, here and, through the cut-off, everywhere. */
  async logoutEverywhere(userId: string): Promise<RevokedSession[]> {
    return this.opts.sessions.revokeWithin(async (tx) => {
      await this.opts.repo.cutSessions(userId, this.opts.clock.now(), null, tx.ex);
      return tx.revokeAllForUser(userId, 'logout_all');
    });
  }

  async verifyPassword(userId: string, password: string): Promise<boolean> {
    return this.passwordMatches(await this.get(userId), password);
  }

  /** {@link verifyPassword} for a user already read. */
  passwordMatches(user: Pick<UserRecord, 'passwordHash'>, password: string): Promise<boolean> {
    return this.opts.hasher.verify(user.passwordHash, password);
  }
}
