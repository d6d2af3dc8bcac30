import { AppError } from '../../platform/errors.js';
import type { Db, Executor } from './db.js';
import { guard, uniqueConstraintOf } from './errors.js';
import { countRows, type RowCount } from './row-count.js';
import type { UserRecord, UserStatus } from '../../model/user.js';

/** A `users` row as node-pg returns it. */
export interface UserDbRow {
  id: string;
  username: string | null;
  email: string | null;
  email_verified_at: Date | null;
  password_hash: string | null;
  status: UserStatus;
  home_region: string;
  created_at: Date;
  updated_at: Date;
  password_changed_at: Date;
  /** Migration 0005-session-cutoff: what a password change or logout-all revoked, for other regions. */
  sessions_revoked_before: Date | null;
  sessions_revoked_keep: string | null;
  version: string | number;
}

export function toUserRecord(row: UserDbRow): UserRecord {
  return {
    id: row.id,
    username: row.username,
    email: row.email,
    emailVerifiedAt: row.email_verified_at,
    passwordHash: row.password_hash,
    status: row.status,
    homeRegion: row.home_region,
    createdAt: row.created_at,
    updatedAt: row.updated_at,
    passwordChangedAt: row.password_changed_at,
    version: Number(row.version),
  };
}

/** The columns of a user record, as written. */
export function userColumns(user: Omit<UserRecord, 'version'>) {
  return {
    id: user.id,
    username: user.username,
    email: user.email,
    email_verified_at: user.emailVerifiedAt,
    password_hash: user.passwordHash,
    status: user.status,
    home_region: user.homeRegion,
    created_at: user.createdAt,
    updated_at: user.updatedAt,
    password_changed_at: user.passwordChangedAt,
  };
}

export interface ListUsersQuery {
  limit: number;
  /** Keyset cursor: the sort key (username, else lower-cased address) of the last user of the previous page. */
  after?: string | undefined;
  /** Substring of the normalized username or of the lower-cased address. */
  search?: string | undefined;
}

/** The columns `authctl user export` writes (src/admin/export.ts). */
const EXPORTED_USER_COLUMNS = ['id', 'username', 'email', 'email_verified_at', 'password_hash', 'status', 'home_region', 'created_at'] as const;
export type ExportedUserRow = Pick<UserDbRow, (typeof EXPORTED_USER_COLUMNS)[number]>;

/** How `list` orders users: by username, and users without one by their address. */
const SORT_KEY = 'coalesce(username, lower(email))';

/** The key `list` pages by, for a user (its `after` cursor). */
export function userSortKey(user: Pick<UserRecord, 'username' | 'email'>): string {
  return user.username ?? user.email!.toLowerCase();
}

function takenError(err: unknown): unknown {
  const constraint = uniqueConstraintOf(err);
  if (constraint === 'users_username_key') return new AppError('username_taken', 'that username is already taken', { cause: err });
  if (constraint === 'users_email_key') return new AppError('email_taken', 'that e-mail address is already in use', { cause: err });
  return err;
}

/** All SQL on `users`. */
export class UsersRepo {
  constructor(private readonly db: Db) {}

  async insert(user: Omit<UserRecord, 'version'>, ex: Executor = this.db.writer): Promise<UserRecord> {
    try {
      const [row] = await guard(ex<UserDbRow>('users').insert(userColumns(user)).returning('*'));
      return toUserRecord(row!);
    } catch (err) {
      throw takenError(err);
    }
  }

  /** The user holding an address (compared case-insensitively), from the writer. */
  async findByEmail(email: string, ex: Executor = this.db.writer): Promise<UserRecord | undefined> {
    const row = await guard(ex<UserDbRow>('users').whereRaw('lower(email) = lower(?)', [email]).first());
    return row ? toUserRecord(row) : undefined;
  }

  /** Sets (or clears) the address and its verification time; `email_taken` when another user holds it. */
  async setEmail(id: string, email: string | null, verifiedAt: Date | null, now: Date, ex: Executor = this.db.writer): Promise<UserRecord | undefined> {
    try {
      const [row] = await guard(
        ex<UserDbRow>('users')
          .where({ id })
          .update({ email, email_verified_at: verifiedAt, updated_at: now, version: ex.raw('version + 1') })
          .returning('*'),
      );
      return row ? toUserRecord(row) : undefined;
    } catch (err) {
      throw takenError(err);
    }
  }

  /** Marks the address verified, if it is still `email` (an address changed meanwhile stays as it is). */
  async markEmailVerified(id: string, email: string, now: Date, ex: Executor = this.db.writer): Promise<UserRecord | undefined> {
    const [row] = await guard(
      ex<UserDbRow>('users')
        .where({ id })
        .whereRaw('lower(email) = lower(?)', [email])
        .update({ email_verified_at: now, updated_at: now, version: ex.raw('version + 1') })
        .returning('*'),
    );
    return row ? toUserRecord(row) : undefined;
  }

  /** Locks the user's row for the rest of the transaction and returns it. */
  async lock(id: string, ex: Executor): Promise<UserRecord | undefined> {
    const row = await guard(ex<UserDbRow>('users').where({ id }).forUpdate().first());
    return row ? toUserRecord(row) : undefined;
  }

  /** Reads from the writer: a login right after registration must see the new row. */
  async findByUsername(username: string, ex: Executor = this.db.writer): Promise<UserRecord | undefined> {
    const row = await guard(ex<UserDbRow>('users').where({ username }).first());
    return row ? toUserRecord(row) : undefined;
  }

  /** Which of these usernames some user holds (from the writer). */
  async usernamesTaken(usernames: string[], ex: Executor = this.db.writer): Promise<string[]> {
    if (usernames.length === 0) return [];
    const rows = await guard(ex<{ username: string }>('users').whereIn('username', usernames).select('username'));
    return rows.map((r) => r.username);
  }

  async findById(id: string, ex: Executor = this.db.writer): Promise<UserRecord | undefined> {
    const row = await guard(ex<UserDbRow>('users').where({ id }).first());
    return row ? toUserRecord(row) : undefined;
  }

  async list(query: ListUsersQuery): Promise<UserRecord[]> {
    const rows = await this.db.read((k) => {
      const q = k<UserDbRow>('users').orderByRaw(`${SORT_KEY}, id`).limit(query.limit);
      if (query.after !== undefined) void q.whereRaw(`${SORT_KEY} > ?`, [query.after]);
      if (query.search) void q.whereRaw(`(strpos(username, ?) > 0 or strpos(lower(email), ?) > 0)`, [query.search, query.search]);
      // A substring search reads every row either way. In the order of users_sort_key_idx it reads
      // them one index entry at a time (4× slower than a parallel scan when the term is rare, as
      // when looking someone up); `|| ''` keeps the order and keeps the planner off the index.
      if (query.search) void q.clearOrder().orderByRaw(`${SORT_KEY} || '', id`);
      return q;
    });
    return rows.map(toUserRecord);
  }

  /**
   * Up to `limit` users after `after` in id order (keyset pagination on the primary key: each page
   * one index range scan, however deep), for `authctl user export`. Only the columns it writes.
   */
  async pageById(after: string | undefined, limit: number, ex: Executor): Promise<ExportedUserRow[]> {
    const q = ex('users')
      .select<ExportedUserRow[]>(...EXPORTED_USER_COLUMNS)
      .orderBy('id')
      .limit(limit);
    if (after !== undefined) void q.where('id', '>', after);
    return guard(q);
  }

  /** Users in the region: counted below `exactBelow`, PostgreSQL's estimate above (src/store/pg/row-count.ts). */
  count(exactBelow?: number): Promise<RowCount> {
    return this.db.read((k) => countRows(k, 'users', {}, exactBelow));
  }

  async setStatus(id: string, status: UserStatus, now: Date, ex: Executor = this.db.writer): Promise<UserRecord | undefined> {
    const [row] = await guard(
      ex<UserDbRow>('users')
        .where({ id })
        .update({ status, updated_at: now, version: ex.raw('version + 1') })
        .returning('*'),
    );
    return row ? toUserRecord(row) : undefined;
  }

  /** A new password hash; sessions created before `now` but `keepSessionId` are cut off (see {@link cutSessions}). */
  async setPasswordHash(
    id: string,
    passwordHash: string,
    now: Date,
    keepSessionId: string | null,
    ex: Executor = this.db.writer,
  ): Promise<UserRecord | undefined> {
    const [row] = await guard(
      ex<UserDbRow>('users')
        .where({ id })
        .update({
          password_hash: passwordHash,
          password_changed_at: now,
          updated_at: now,
          sessions_revoked_before: now,
          sessions_revoked_keep: keepSessionId,
          version: ex.raw('version + 1'),
        })
        .returning('*'),
    );
    return row ? toUserRecord(row) : undefined;
  }

  /**
   * The same password in a better hash (after a login proved it: new cost parameters, a foreign
   * format, the standard parameter order). Not a password change: sessions, `password_changed_at`
   * and the codes it voids are untouched. Only when the stored hash is still `from`, so a password
   * change that lands first is never overwritten; false when it did.
   */
  async replacePasswordHash(id: string, from: string, to: string, now: Date, ex: Executor = this.db.writer): Promise<boolean> {
    const rows = await guard(
      ex('users')
        .where({ id, password_hash: from })
        .update({ password_hash: to, updated_at: now, version: ex.raw('version + 1') }, ['id']),
    );
    return rows.length > 0;
  }

  /**
   * Records that every session of the user created before `before` (but `keep`) is revoked, for
   * the regions that learn of such a session only later (migration 0005-session-cutoff).
   */
  async cutSessions(id: string, before: Date, keep: string | null, ex: Executor = this.db.writer): Promise<void> {
    await guard(
      ex('users')
        .where({ id })
        .update({ sessions_revoked_before: before, sessions_revoked_keep: keep, version: ex.raw('version + 1') }),
    );
  }

  async delete(id: string, ex: Executor = this.db.writer): Promise<boolean> {
    const count = await guard(ex('users').where({ id }).delete());
    return count > 0;
  }
}
