import type { MfaFactors } from '../core/mfa/mfa-factors.js';
import type { SessionService } from '../core/sessions/session-service.js';
import { toAdminUserView, type AdminUserView, type UserService } from '../core/users/user-service.js';
import { userSortKey } from '../store/pg/users-repo.js';

export interface AdminUsersDeps {
  users: Pick<UserService, 'find' | 'list'>;
  sessions: Pick<SessionService, 'listForUser'>;
  mfa: Pick<MfaFactors, 'activeTypes'>;
}

/** A user with the number of their live sessions and whether their logins ask for a second factor. */
export type UserDetails = AdminUserView & { activeSessions: number; mfaEnabled: boolean };

export interface UserPage {
  users: AdminUserView[];
  /** The `after` of the next page (the last user's sort key: username, else lower-cased address); null on the last one. */
  next: string | null;
}

/** Users as an admin looks them up (`authctl user show`, `authctl user list`). */
export class AdminUsers {
  constructor(private readonly deps: AdminUsersDeps) {}

  /** One user by id, username or e-mail address, with the number of live sessions and whether MFA is on; `not_found` (exit 3) if none. */
  async show(userRef: string): Promise<UserDetails> {
    const user = await this.deps.users.find(userRef);
    const [sessions, factors] = await Promise.all([this.deps.sessions.listForUser(user.id), this.deps.mfa.activeTypes(user.id)]);
    return { ...toAdminUserView(user), activeSessions: sessions.length, mfaEnabled: factors.length > 0 };
  }

  /**
   * A page of users ordered by username (users without one by their address), after `after`,
   * optionally only those whose username or address contains `search`.
   */
  async list(query: { limit: number; after?: string | undefined; search?: string | undefined }): Promise<UserPage> {
    const records = await this.deps.users.list(query);
    const last = records.length === query.limit ? records[records.length - 1] : undefined;
    return { users: records.map(toAdminUserView), next: last ? userSortKey(last) : null };
  }
}
