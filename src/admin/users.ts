import type { MfaFactors } from '../core/mfa/mfa-factors.js';
import type { IdentityAccounts } from '../core/oidc/identity-accounts.js';
import type { Passkeys, PasskeyView } from '../core/passkeys/passkeys.js';
import type { SessionService } from '../core/sessions/session-service.js';
import { toAdminUserView, type AdminUserView, type UserService } from '../core/users/user-service.js';
import { userSortKey } from '../store/pg/users-repo.js';

export interface AdminUsersDeps {
  users: Pick<UserService, 'find' | 'list'>;
  sessions: Pick<SessionService, 'listForUser'>;
  mfa: Pick<MfaFactors, 'activeTypes'>;
  identities: Pick<IdentityAccounts, 'list' | 'unlink'>;
  passkeys: Pick<Passkeys, 'list'>;
}

/** A provider identity as an administrator sees it: with the provider's subject (what the provider's own console names the account by). */
export interface AdminIdentityView {
  id: string;
  provider: string;
  subject: string;
  email: string | null;
  emailVerified: boolean;
  createdAt: string;
  lastUsedAt: string;
}

/** A user with the number of their live sessions, whether their logins ask for a second factor, their provider identities and their passkeys. */
export type UserDetails = AdminUserView & { activeSessions: number; mfaEnabled: boolean; identities: AdminIdentityView[]; passkeys: PasskeyView[] };

/** What `authctl user unlink` did. */
export interface UnlinkResult {
  user: { id: string; username: string | null; email: string | null };
  provider: string;
  /** The identity removed (the first, when the user had several at that provider: all of them went). */
  identityId: string;
}

export interface UserPage {
  users: AdminUserView[];
  /** The `after` of the next page (the last user's sort key: username, else lower-cased address); null on the last one. */
  next: string | null;
}

/** Users as an admin looks them up (`authctl user show`, `authctl user list`). */
export class AdminUsers {
  constructor(private readonly deps: AdminUsersDeps) {}

  /** One user by id, username or e-mail address, with their live sessions' number, whether MFA is on, identities, passkeys; `not_found` (exit 3) if none. */
  async show(userRef: string): Promise<UserDetails> {
    const user = await this.deps.users.find(userRef);
    const [sessions, factors, identities, passkeys] = await Promise.all([
      this.deps.sessions.listForUser(user.id),
      this.deps.mfa.activeTypes(user.id),
      this.deps.identities.list(user.id),
      this.deps.passkeys.list(user.id),
    ]);
    return {
      ...toAdminUserView(user),
      activeSessions: sessions.length,
      mfaEnabled: factors.length > 0,
      identities: identities.map((i) => ({
        id: i.id,
        provider: i.provider,
        subject: i.subject,
        email: i.email,
        emailVerified: i.emailVerified,
        createdAt: i.createdAt.toISOString(),
        lastUsedAt: i.lastUsedAt.toISOString(),
      })),
      passkeys,
    };
  }

  /**
   * `authctl user unlink <user> <provider>`: removes the user's identities at a provider, by the
   * rule the user's own unlink follows (`last_sign_in_method`, exit 4, when it is their last way
   * to sign in); `actor` goes into the `identity.unlinked` log line.
   */
  async unlink(userRef: string, provider: string, actor: string): Promise<UnlinkResult> {
    const user = await this.deps.users.find(userRef);
    const removed = await this.deps.identities.unlink(user.id, provider, { via: 'admin', actor });
    return { user: { id: user.id, username: user.username, email: user.email }, provider: removed.provider, identityId: removed.id };
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
