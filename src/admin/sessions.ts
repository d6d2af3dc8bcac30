import { validate as isUuid } from 'uuid';
import type { SessionService } from '../core/sessions/session-service.js';
import type { UserService } from '../core/users/user-service.js';
import type { Clock } from '../platform/clock.js';
import { AppError } from '../platform/errors.js';
import type { SessionRecord } from '../model/session.js';

/** A session as the CLI shows it: no token material, its state spelled out. */
export interface SessionView {
  id: string;
  userId: string | null;
  state: 'live' | 'revoked' | 'expired';
  homeRegion: string;
  createdAt: Date;
  lastUsedAt: Date;
  expiresAt: Date;
  revokedAt: Date | null;
  revokeReason: string | null;
  userAgent: string | null;
  ip: string | null;
}

function toSessionView(session: SessionRecord, now: Date): SessionView {
  const state = session.revokedAt ? 'revoked' : session.expiresAt <= now ? 'expired' : 'live';
  return {
    id: session.id,
    userId: session.userId,
    state,
    homeRegion: session.homeRegion,
    createdAt: session.createdAt,
    lastUsedAt: session.lastUsedAt,
    expiresAt: session.expiresAt,
    revokedAt: session.revokedAt,
    revokeReason: session.revokeReason,
    userAgent: session.userAgent,
    ip: session.ip,
  };
}

export interface AdminSessionsDeps {
  users: Pick<UserService, 'find'>;
  sessions: Pick<SessionService, 'findById' | 'listForUser' | 'revoke' | 'revokeAllForUser'>;
  clock: Clock;
}

/** A user, as the session commands name them back. */
export interface UserRef {
  id: string;
  username: string | null;
  email: string | null;
}

/** Users' sessions as an admin sees and ends them (`authctl session …`, `authctl token revoke`). */
export class AdminSessions {
  constructor(private readonly deps: AdminSessionsDeps) {}

  /** The live sessions of a user (id or username); `not_found` (exit 3) for no such user. */
  async list(userRef: string): Promise<{ user: UserRef; sessions: SessionView[] }> {
    const user = await this.deps.users.find(userRef);
    const now = this.deps.clock.now();
    const sessions = (await this.deps.sessions.listForUser(user.id)).map((s) => toSessionView(s, now));
    return { user: { id: user.id, username: user.username, email: user.email }, sessions };
  }

  /**
   * Revokes one session by id: `not_found` (exit 3) for an id that names no session, false when
   * it was already revoked or expired.
   */
  async revoke(rawId: string): Promise<{ id: string; revoked: boolean }> {
    const id = rawId.toLowerCase();
    const session = isUuid(id) ? await this.deps.sessions.findById(id) : undefined;
    if (!session) throw new AppError('not_found', `no such session: ${rawId} (list a user's sessions with \`authctl session list --user <user>\`)`);
    return { id, revoked: await this.deps.sessions.revoke(id, 'admin') };
  }

  /** Revokes every live session of a user (id or username); returns the ids it revoked. */
  async revokeAll(userRef: string): Promise<{ user: UserRef; sessionIds: string[] }> {
    const user = await this.deps.users.find(userRef);
    const revoked = await this.deps.sessions.revokeAllForUser(user.id, 'admin');
    return { user: { id: user.id, username: user.username, email: user.email }, sessionIds: revoked.map((s) => s.id) };
  }
}
