import { validate as isUuid } from 'uuid';
import type { SessionService } from '../core/sessions/session-service.js';
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

export function toSessionView(session: SessionRecord, now: Date): SessionView {
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

/**
 * Revokes one session by id as an admin: `not_found` (exit 3) for an id that names no session,
 * false when it was already revoked or expired.
 */
export async function revokeSessionById(sessions: Pick<SessionService, 'findById' | 'revoke'>, rawId: string): Promise<{ id: string; revoked: boolean }> {
  const id = rawId.toLowerCase();
  const session = isUuid(id) ? await sessions.findById(id) : undefined;
  if (!session) throw new AppError('not_found', `no such session: ${rawId} (list a user's sessions with \`authctl session list --user <user>\`)`);
  return { id, revoked: await sessions.revoke(id, 'admin') };
}
