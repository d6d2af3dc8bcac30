import type {
  ReplicatedChallenge,
  ReplicatedClient,
  ReplicatedFactor,
  ReplicatedIdentity,
  ReplicatedPasskey,
  ReplicatedRecoveryCode,
  ReplicatedSession,
  ReplicatedUser,
} from '../../model/replication.js';
import { foldUsername } from '../users/username.js';

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

/** What decides between two versions of a service client. */
export type ClientVersion = Pick<ReplicatedClient, 'version' | 'updatedAt' | 'secretHash'>;

/**
 * Whether an incoming service client replaces the local one: the higher version; on equal
 * versions (two regions rotated the secret concurrently) the later `updatedAt`; on a full tie the
 * greater secret hash — an arbitrary rule, but one every region applies alike, so all of them end
 * with the same secret (the other rotation's secret then works nowhere). A deleted client stays
 * deleted (apply.ts: its tombstone).
 */
export function clientWins(incoming: ClientVersion, local: ClientVersion): boolean {
  if (incoming.version !== local.version) return incoming.version > local.version;
  if (incoming.updatedAt.getTime() !== local.updatedAt.getTime()) return incoming.updatedAt.getTime() > local.updatedAt.getTime();
  return incoming.secretHash > local.secretHash;
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

/** The ranked side of an address clash: who it is, and the username it has (null: none). */
export type EmailClashSide = ClashRank & Pick<ReplicatedUser, 'username' | 'email'>;

/** An address clash, decided: who keeps the address, and the username the loser gets if it has none. */
export interface EmailClashOutcome {
  incomingWins: boolean;
  winnerId: string;
  loserId: string;
  /**
   * The username the loser is given because, without the address, it would have no identifier
   * left ({@link emailClashName}); null when it keeps its own username.
   */
  assignUsername: string | null;
}

/** How much of an address's local part a clash name keeps (the rest of the 64 is the suffixes). */
const CLASH_BASE_MAX = 40;
// What a username may hold, but "@" (docs/api.md#usernames-and-passwords).
const NOT_NAME = /[^\p{L}\p{M}\p{Nd}._-]/gu;

/**
 * The username a user known only by its address gets when it loses that address in a clash:
 * `<base>-<id tail>.<home region>` (like {@link clashName}). `<base>` is the address's local part
 * folded like a username (NFKC, lower case), with everything but letters, marks, digits, `.`,
 * `_` and `-` removed, cut to 40 code points (fewer if the suffix needs them to stay within 64),
 * or `user` when nothing is left; `<id tail>` is the last 8 hex digits of the user's id. A
 * function of the user alone, so every region names it alike; the id tail keeps two such users
 * (`bob@a.example` and `bob@b.example`, homed in one region) apart.
 * `Bob.Smith+x@example.com`, id `…-0123456789ab`, home `eu`: `bob.smithx-456789ab.eu`.
 */
export function emailClashName(email: string, id: string, homeRegion: string): string {
  const local = email.slice(0, Math.max(0, email.lastIndexOf('@')));
  const suffix = `-${id.replace(/-/g, '').slice(-8).toLowerCase()}.${homeRegion}`;
  // Cut by code points (never through a surrogate pair), to fit 64 with the suffix.
  const room = Math.max(0, Math.min(CLASH_BASE_MAX, 64 - [...suffix].length));
  const base = [...foldUsername(foldUsername(local).replace(NOT_NAME, ''))].slice(0, room).join('') || 'user';
  return `${base}${suffix}`;
}

/**
 * Decides an address clash (two users registered, or changed to, one address — compared lower-
 * cased — in two regions during a partition) by the ranking of username clashes
 * ({@link keepsUsername}): the winner keeps the address; the loser's address and its verification
 * are cleared, and a loser without a username gets {@link emailClashName}. Symmetric: both
 * regions decide alike whichever user each of them held.
 */
export function resolveEmailClash(incoming: EmailClashSide, holder: EmailClashSide): EmailClashOutcome {
  const incomingWins = keepsUsername(incoming, holder);
  const [winner, loser] = incomingWins ? [incoming, holder] : [holder, incoming];
  const assignUsername = loser.username === null ? emailClashName(loser.email ?? '', loser.id, loser.homeRegion) : null;
  return { incomingWins, winnerId: winner.id, loserId: loser.id, assignUsername };
}

/** One incoming challenge state folded into the local one. */
export interface ChallengeMerge {
  state: ReplicatedChallenge;
  /** The merge changed the local row (so it is written back). */
  changed: boolean;
}

/**
 * The challenge fold: an ended challenge never comes back to life (the first end applied here
 * stays, with its time and reason, against a live state or another end arriving later); wrong
 * tries are the larger count of the two (each region counts its own during a partition); the
 * higher version is kept. What a challenge is (user, purpose, address, expiry) never changes
 * and is taken from the local row.
 */
export function mergeChallenge(local: ReplicatedChallenge, incoming: ReplicatedChallenge): ChallengeMerge {
  const ends = local.endedAt === null && incoming.endedAt !== null;
  const state: ReplicatedChallenge = {
    ...local,
    attempts: Math.max(local.attempts, incoming.attempts),
    endedAt: ends ? incoming.endedAt : local.endedAt,
    endReason: ends ? incoming.endReason : local.endReason,
    version: Math.max(local.version, incoming.version),
  };
  return { state, changed: ends || state.attempts !== local.attempts || state.version !== local.version };
}

/** One incoming state of a factor or recovery code folded into the local one. */
export interface RowMerge<T> {
  state: T;
  /** The merge changed the local row (so it is written back). */
  changed: boolean;
}

/**
 * The TOTP factor fold: a removed factor stays removed (the first removal applied here stays,
 * with its time); `active` beats `pending` (with the confirmation time of whichever activated
 * it); the newest accepted time step is the larger of the two (a code used in either region is
 * refused in both); the higher version is kept, and with it the sealed secret of that version (a
 * region that re-sealed it under a rotated server secret has the higher one). Whose factor it is
 * and when it was created never change.
 */
export function mergeFactor(local: ReplicatedFactor, incoming: ReplicatedFactor): RowMerge<ReplicatedFactor> {
  const activates = local.status === 'pending' && incoming.status === 'active';
  const steps = [local.lastUsedStep, incoming.lastUsedStep].filter((s): s is number => s !== null);
  const state: ReplicatedFactor = {
    ...local,
    status: activates ? 'active' : local.status,
    confirmedAt: local.confirmedAt ?? incoming.confirmedAt,
    lastUsedStep: steps.length > 0 ? Math.max(...steps) : null,
    removedAt: local.removedAt ?? incoming.removedAt,
    secretSealed: incoming.version > local.version ? incoming.secretSealed : local.secretSealed,
    version: Math.max(local.version, incoming.version),
  };
  const changed =
    state.status !== local.status ||
    state.confirmedAt !== local.confirmedAt ||
    state.lastUsedStep !== local.lastUsedStep ||
    state.removedAt !== local.removedAt ||
    state.secretSealed !== local.secretSealed ||
    state.version !== local.version;
  return { state, changed };
}

/**
 * The recovery-code fold: an ended code never comes back (the first end applied here stays, with
 * its time and reason); the higher version is kept.
 */
export function mergeRecoveryCode(local: ReplicatedRecoveryCode, incoming: ReplicatedRecoveryCode): RowMerge<ReplicatedRecoveryCode> {
  const ends = local.endedAt === null && incoming.endedAt !== null;
  const state: ReplicatedRecoveryCode = {
    ...local,
    endedAt: ends ? incoming.endedAt : local.endedAt,
    endReason: ends ? incoming.endReason : local.endReason,
    version: Math.max(local.version, incoming.version),
  };
  return { state, changed: ends || state.version !== local.version };
}

/**
 * The provider-identity fold: a removed identity stays removed (the first removal applied here
 * stays, with its time); the latest use is kept; the higher version is kept, and with it the
 * address as the provider last gave it. Whose identity it is, the pair and when it was created
 * never change.
 */
export function mergeIdentity(local: ReplicatedIdentity, incoming: ReplicatedIdentity): RowMerge<ReplicatedIdentity> {
  const newer = incoming.version > local.version;
  const state: ReplicatedIdentity = {
    ...local,
    email: newer ? incoming.email : local.email,
    emailVerified: newer ? incoming.emailVerified : local.emailVerified,
    lastUsedAt: incoming.lastUsedAt.getTime() > local.lastUsedAt.getTime() ? incoming.lastUsedAt : local.lastUsedAt,
    removedAt: local.removedAt ?? incoming.removedAt,
    version: Math.max(local.version, incoming.version),
  };
  const changed =
    state.email !== local.email ||
    state.emailVerified !== local.emailVerified ||
    state.lastUsedAt !== local.lastUsedAt ||
    state.removedAt !== local.removedAt ||
    state.version !== local.version;
  return { state, changed };
}

/**
 * What ranks two live rows that must not both be live: two identities of one provider account, or
 * two passkeys of one credential (two regions created them during a partition).
 */
export type CreationRank = Pick<ReplicatedIdentity | ReplicatedPasskey, 'id' | 'createdAt'>;

/**
 * Whether `a` stays live against `b` — the identity of a provider account, or the passkey of a
 * credential, that `b` is live for too: the one created first, then the lower id. A function of
 * the two rows alone, so every region keeps the same one whichever it held first, and marks the
 * other removed.
 */
export function keepsFirstCreated(a: CreationRank, b: CreationRank): boolean {
  const [ta, tb] = [a.createdAt.getTime(), b.createdAt.getTime()];
  if (ta !== tb) return ta < tb;
  return a.id < b.id;
}

/**
 * The passkey fold:
 * - a removed passkey stays removed (the first removal applied here stays, with its time);
 * - the signature counter is the larger of the two: a use in either region moves it forwards in
 *   both, so an assertion with an older counter (a cloned authenticator) is refused everywhere
 *   once the use has arrived;
 * - the latest use is kept, and with it the backup state (BS) that use reported;
 * - the name and `updatedAt` come from the later `updatedAt` (a use does not change it: the
 *   later rename wins, whatever uses came after it elsewhere); on a tie from the higher version
 *   (two writes of one region within a millisecond), then the greater name (two regions renaming
 *   it within the same millisecond still agree); an identical state changes nothing;
 * - the higher version is kept.
 * What the passkey is (its user, credential id, public key, AAGUID, backup eligibility, creation
 * and home region) never changes and is taken from the local row.
 */
export function mergePasskey(local: ReplicatedPasskey, incoming: ReplicatedPasskey): RowMerge<ReplicatedPasskey> {
  const usedLater = incoming.lastUsedAt !== null && (local.lastUsedAt === null || incoming.lastUsedAt.getTime() > local.lastUsedAt.getTime());
  const [ti, tl] = [incoming.updatedAt.getTime(), local.updatedAt.getTime()];
  const renamedLater = ti !== tl ? ti > tl : incoming.version !== local.version ? incoming.version > local.version : incoming.name > local.name;
  const state: ReplicatedPasskey = {
    ...local,
    counter: Math.max(local.counter, incoming.counter),
    lastUsedAt: usedLater ? incoming.lastUsedAt : local.lastUsedAt,
    backedUp: usedLater ? incoming.backedUp : local.backedUp,
    name: renamedLater ? incoming.name : local.name,
    updatedAt: renamedLater ? incoming.updatedAt : local.updatedAt,
    removedAt: local.removedAt ?? incoming.removedAt,
    version: Math.max(local.version, incoming.version),
  };
  const changed =
    state.counter !== local.counter ||
    state.lastUsedAt !== local.lastUsedAt ||
    state.backedUp !== local.backedUp ||
    state.name !== local.name ||
    state.updatedAt !== local.updatedAt ||
    state.removedAt !== local.removedAt ||
    state.version !== local.version;
  return { state, changed };
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
 * time and reason); the later authentication (`authTime`) is kept with its `amr`, so a
 * reauthentication in one region is not undone by a refresh in another that had not seen it.
 */
export function mergeSession(local: ReplicatedSession, incoming: ReplicatedSession): SessionMerge {
  const fork =
    local.revokedAt === null && incoming.revokedAt === null && local.counter === incoming.counter && local.rotatedAt.getTime() !== incoming.rotatedAt.getTime();
  const ahead = incoming.counter > local.counter;
  const revoked = local.revokedAt === null && incoming.revokedAt !== null;
  const reauthenticated = incoming.authTime.getTime() > local.authTime.getTime();
  return {
    state: {
      ...local,
      counter: ahead ? incoming.counter : local.counter,
      rotatedAt: ahead ? incoming.rotatedAt : local.rotatedAt,
      lastUsedAt: incoming.lastUsedAt.getTime() > local.lastUsedAt.getTime() ? incoming.lastUsedAt : local.lastUsedAt,
      revokedAt: revoked ? incoming.revokedAt : local.revokedAt,
      revokeReason: revoked ? incoming.revokeReason : local.revokeReason,
      authTime: reauthenticated ? incoming.authTime : local.authTime,
      amr: reauthenticated ? incoming.amr : local.amr,
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
