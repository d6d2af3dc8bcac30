import type { ReplicatedSession, ReplicatedUser } from '../../model/replication.js';

/**
 * The merge rules of replication: what a region keeps when a peer's change meets its own row.
 * Pure functions of the two versions, no I/O, so every region decides alike whatever order the
 * changes reach it in (src/core/replication/apply.ts reads the rows and writes the outcome).
 */

/** What decides between two versions of a user. */
export type UserVersion = Pick<ReplicatedUser, 'version' | 'status' | 'updatedAt'>;

/**
 * Whether an incoming user replaces the local one: the higher version; on equal versions (two
 * regions each changed the user once, concurrently) a disable is never lost to a concurrent
 * change elsewhere, and otherwise the later `updatedAt` wins. On a full tie the local row stays.
 */
export function userWins(incoming: UserVersion, local: UserVersion): boolean {
  if (incoming.version !== local.version) return incoming.version > local.version;
  if (incoming.status !== local.status) return incoming.status === 'disabled';
  return incoming.updatedAt.getTime() > local.updatedAt.getTime();
}

/** What ranks two users registered with one username (during a partition). */
export type ClashRank = Pick<ReplicatedUser, 'id' | 'homeRegion' | 'createdAt'>;

/** Whether `a` keeps a username `b` holds too: created first, then the lower home region, then the lower id. */
export function keepsUsername(a: ClashRank, b: ClashRank): boolean {
  const [ta, tb] = [a.createdAt.getTime(), b.createdAt.getTime()];
  if (ta !== tb) return ta < tb;
  if (a.homeRegion !== b.homeRegion) return a.homeRegion < b.homeRegion;
  return a.id < b.id;
}

/** The username a loser of a clash gets: deterministic, so every region renames it alike. */
export function clashName(username: string, homeRegion: string): string {
  const suffix = `.${homeRegion}`;
  return `${username.slice(0, 64 - suffix.length)}${suffix}`;
}

/** A username clash, decided: who keeps the name, and what the other one is called from now on. */
export interface ClashOutcome {
  incomingWins: boolean;
  winnerId: string;
  loserId: string;
  from: string;
  to: string;
}

/** Decides a clash between an incoming user and the local holder of the same username. */
export function resolveClash(incoming: ClashRank & { username: string }, holder: ClashRank & { username: string }): ClashOutcome {
  const incomingWins = keepsUsername(incoming, holder);
  const [winner, loser] = incomingWins ? [incoming, holder] : [holder, incoming];
  return { incomingWins, winnerId: winner.id, loserId: loser.id, from: loser.username, to: clashName(loser.username, loser.homeRegion) };
}

/**
 * Whether a user's incoming session cut-off is newer than the local one, so the sessions this
 * region holds from before it must go too.
 */
export function cutoffAdvances(incoming: Date | null, local: Date | null | undefined): boolean {
  return incoming !== null && (!local || incoming.getTime() > local.getTime());
}

/** A user's session cut-off (a password change or logout-all): sessions before `before` go, but `keep`. */
export interface SessionCutoff {
  before: Date | null;
  keep: string | null;
}

/** Whether a live session falls under its user's cut-off: created before it, and not the session that made the change. */
export function cutOffRevokes(session: Pick<ReplicatedSession, 'id' | 'createdAt' | 'revokedAt'>, cutoff: SessionCutoff): boolean {
  return cutoff.before !== null && session.revokedAt === null && session.id !== cutoff.keep && session.createdAt.getTime() < cutoff.before.getTime();
}

/** One incoming session state folded into the local one. */
export interface SessionMerge {
  state: ReplicatedSession;
  /** This change revoked the session here (it was live). */
  revoked: boolean;
  /**
   * Two regions rotated the session from the same counter (the same counter with two different
   * rotation times): two clients used one token, which is reuse.
   */
  fork: boolean;
}

/**
 * The session counter fold: the higher counter wins, with its rotation time; the latest use and
 * the higher version are kept; a revocation is never undone (the first one applied stays, with its
 * time and reason).
 */
export function mergeSession(local: ReplicatedSession, incoming: ReplicatedSession): SessionMerge {
  const fork =
    local.revokedAt === null && incoming.revokedAt === null && local.counter === incoming.counter && local.rotatedAt.getTime() !== incoming.rotatedAt.getTime();
  const ahead = incoming.counter > local.counter;
  const revoked = local.revokedAt === null && incoming.revokedAt !== null;
  return {
    state: {
      ...local,
      counter: ahead ? incoming.counter : local.counter,
      rotatedAt: ahead ? incoming.rotatedAt : local.rotatedAt,
      lastUsedAt: incoming.lastUsedAt.getTime() > local.lastUsedAt.getTime() ? incoming.lastUsedAt : local.lastUsedAt,
      revokedAt: revoked ? incoming.revokedAt : local.revokedAt,
      revokeReason: revoked ? incoming.revokeReason : local.revokeReason,
      version: Math.max(local.version, incoming.version),
    },
    revoked,
    fork,
  };
}

/** A group of session changes folded over the sessions this region holds. */
export interface SessionFold {
  /** Sessions this region did not hold, in their merged state: to insert. */
  inserted: Map<string, ReplicatedSession>;
  /** Sessions this region holds that a change touched, in their merged state: to write back. */
  updated: Map<string, ReplicatedSession>;
  /** Sessions two regions rotated from the same counter: to revoke as reuse. */
  forks: Set<string>;
}

/**
 * Folds changes, in order, over `locals` (the sessions this region holds, by id): a session seen
 * for the first time is taken as it comes, every later change is merged into it by {@link mergeSession}.
 */
export function foldSessions(locals: ReadonlyMap<string, ReplicatedSession>, changes: readonly ReplicatedSession[]): SessionFold {
  const fold: SessionFold = { inserted: new Map(), updated: new Map(), forks: new Set() };
  for (const incoming of changes) {
    const into = fold.inserted.has(incoming.id) ? fold.inserted : fold.updated;
    const local = into.get(incoming.id) ?? locals.get(incoming.id);
    if (!local) {
      fold.inserted.set(incoming.id, incoming);
      continue;
    }
    const merged = mergeSession(local, incoming);
    if (merged.fork) fold.forks.add(incoming.id);
    into.set(incoming.id, merged.state);
  }
  return fold;
}

/**
 * Whether a session's state here went from live (or unknown) to revoked: what a batch must
 * publish, whether the revocation came merged into a session this region held, arrived with a
 * session new here, or was decided here (a cut-off).
 */
export function becameRevoked(before: Pick<ReplicatedSession, 'revokedAt'> | undefined, after: Pick<ReplicatedSession, 'revokedAt'>): boolean {
  return after.revokedAt !== null && (before === undefined || before.revokedAt === null);
}
