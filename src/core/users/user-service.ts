import { v7 as uuidv7, validate as isUuid } from 'uuid';
import { AppError } from '../../platform/errors.js';
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

/** The public view of a user (docs/api.md#user): never a hash, never a secret. */
export interface UserView {
  id: string;
  username: string;
  homeRegion: string;
  createdAt: string;
}

/** The admin view adds status and timestamps. */
export interface AdminUserView extends UserView {
  status: 'active' | 'disabled';
  updatedAt: string;
  passwordChangedAt: string;
}

export function toUserView(user: { id: string; username: string; homeRegion: string; createdAt: Date }): UserView {
  return { id: user.id, username: user.username, homeRegion: user.homeRegion, createdAt: user.createdAt.toISOString() };
}

export function toAdminUserView(user: UserRecord): AdminUserView {
  return {
    ...toUserView(user),
    status: user.status,
    updatedAt: user.updatedAt.toISOString(),
    passwordChangedAt: user.passwordChangedAt.toISOString(),
  };
}

export interface UserServiceOptions {
  repo: UsersRepo;
  sessions: SessionService;
  hasher: PasswordHasher;
  clock: Clock;
  log: Logger;
  telemetry: Telemetry;
  region: string;
}

const notFound = () => new AppError('not_found', 'no such user');

/**
 * Users: registration, password authentication and administration. Used alike by the HTTP
 * routes and by `authctl user …`. Every change that must end sessions (disable, delete,
 * password change) revokes them in the same transaction and publishes the revocation after commit.
 */
export class UserService {
  constructor(private readonly opts: UserServiceOptions) {}

  async register(rawUsername: string, password: string): Promise<UserRecord> {
    const username = normalizeUsername(rawUsername);
    checkPasswordPolicy(password, { username });
    const passwordHash = await this.opts.hasher.hash(password);
    const now = this.opts.clock.now();
    const user = await this.opts.repo.insert({
      id: uuidv7(),
      username,
      passwordHash,
      status: 'active',
      homeRegion: this.opts.region,
      createdAt: now,
      updatedAt: now,
      passwordChangedAt: now,
    });
    this.opts.telemetry.registered(user.id);
    return user;
  }

  /**
   * Checks a username and password. An unknown (or unnormalizable) username costs one argon2
   * verification like a wrong password does, and fails the same way, so neither the response
   * nor its timing tells whether the account exists. The disabled state is revealed only to
   * someone who knows the password.
   */
  async authenticate(rawUsername: string, password: string): Promise<UserRecord> {
    let username: string | undefined;
    try {
      username = normalizeUsername(rawUsername);
    } catch {
      username = undefined;
    }
    const user = username === undefined ? undefined : await this.opts.repo.findByUsername(username);
    if (!user) {
      await this.opts.hasher.dummyVerify(password);
      this.opts.telemetry.loginFailed('unknown_user');
      throw new AppError('invalid_credentials', 'username or password is wrong');
    }
    if (!(await this.opts.hasher.verify(user.passwordHash, password))) {
      this.opts.telemetry.loginFailed('mismatch', user.id);
      throw new AppError('invalid_credentials', 'username or password is wrong');
    }
    if (user.status !== 'active') {
      this.opts.telemetry.loginFailed('disabled', user.id);
      throw new AppError('account_disabled', 'this account has been disabled by an administrator');
    }
    return user;
  }

  async get(id: string): Promise<UserRecord> {
    const user = await this.opts.repo.findById(id);
    if (!user) throw notFound();
    return user;
  }

  /** Finds a user by id (UUID) or by username (normalized first). */
  async find(idOrUsername: string): Promise<UserRecord> {
    if (isUuid(idOrUsername)) return this.get(idOrUsername.toLowerCase());
    let username: string;
    try {
      username = normalizeUsername(idOrUsername);
    } catch {
      throw notFound();
    }
    const user = await this.opts.repo.findByUsername(username);
    if (!user) throw notFound();
    return user;
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
    checkPasswordPolicy(password, { username: target.username, path: keepSessionId ? 'newPassword' : 'password' });
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
    const user = await this.get(userId);
    return this.opts.hasher.verify(user.passwordHash, password);
  }
}
