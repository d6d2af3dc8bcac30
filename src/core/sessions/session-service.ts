import { v7 as uuidv7 } from 'uuid';
import { AppError } from '../../platform/errors.js';
import type { Logger } from '../../platform/logger.js';
import type { Telemetry } from '../telemetry.js';
import type { Cache } from '../../store/cache/cache.js';
import type { Knex } from 'knex';
import type { Db, Executor } from '../../store/pg/db.js';
import type { AuthContext } from '../../model/mfa.js';
import type { RevokedSession, RevokeReason, SessionOwner, SessionRecord, SessionWithOwner } from '../../model/session.js';
import type { SessionFilter, SessionsRepo } from '../../store/pg/sessions-repo.js';
import type { Clock } from '../../platform/clock.js';
import type { RefreshTokenClaims, RefreshTokenCodec } from '../tokens/refresh-token.js';
import type { RevocationList } from './revocation-list.js';

export interface SessionServiceOptions {
  db: Db;
  repo: SessionsRepo;
  codec: RefreshTokenCodec | undefined;
  revocations: RevocationList;
  cache: Cache;
  /** Repairs cache entries that could not be written (a worker job; absent: the entries wait for TTLs). */
  cacheRepair?: CacheRepair;
  clock: Clock;
  log: Logger;
  telemetry: Telemetry;
  region: string;
  refreshTtlSeconds: number;
  graceSeconds: number;
}

export interface ClientMeta {
  userAgent?: string | undefined;
  ip?: string | undefined;
}

/** A live session and the refresh token that is current for it. */
export interface IssuedSession {
  session: SessionRecord;
  owner: SessionOwner;
  refreshToken: string;
  /** For refreshes: whether this call rotated the session or answered a grace retry. */
  outcome?: 'rotated' | 'grace';
}

/** Where sessions go whose revocation is committed but whose cache entry could not be written. */
export interface CacheRepair {
  /** Never throws and never waits: the revocation is already effective, only the negative cache missed it. */
  schedule(sessionIds: string[]): void;
}

/**
 * What a change that revokes sessions gets inside its transaction (see {@link SessionService.revokeWithin}).
 * Everything revoked through it is published once, after the transaction commits.
 */
export interface RevokingTransaction {
  /** The transaction: pass it to every other write of the change. */
  readonly ex: Knex.Transaction;
  /**
   * Revokes every live session of a user (except one, if given; only those signed in through the
   * provider `idp`, or by the passkey `passkeyId`, if given) as part of this transaction.
   */
  revokeAllForUser(userId: string, reason: RevokeReason, options?: SessionFilter): Promise<RevokedSession[]>;
  /** Sessions that another statement of this transaction revoked (e.g. applying a peer's batch). */
  revoked(sessions: RevokedSession[], reason: RevokeReason): void;
}

/**
 * Session lifecycle: start, rotate (refresh), revoke, list. One row per session; the refresh
 * token is derived from (session, counter), so rotation is a compare-and-set on the counter.
 */
export class SessionService {
  constructor(private readonly opts: SessionServiceOptions) {}

  /**
   * Builds a new session and its first refresh token without storing anything, so a caller can
   * do the work that may still fail (signing the access token) before `save` writes the row:
   * a failed login leaves no session behind. `auth` is how the user just authenticated; every
   * access token of the session carries it until a reauthentication renews it.
   */
  open(owner: SessionOwner, meta: ClientMeta, auth: AuthContext): IssuedSession {
    const now = this.opts.clock.now();
    const session: SessionRecord = {
      id: uuidv7(),
      userId: owner.id,
      homeRegion: this.opts.region,
      counter: 1,
      createdAt: now,
      lastUsedAt: now,
      rotatedAt: now,
      expiresAt: new Date(now.getTime() + this.opts.refreshTtlSeconds * 1000),
      revokedAt: null,
      revokeReason: null,
      userAgent: meta.userAgent?.slice(0, 256) ?? null,
      ip: meta.ip ?? null,
      authTime: auth.authTime,
      amr: auth.amr,
      idp: auth.idp ?? null,
      passkeyId: auth.passkeyId ?? null,
    };
    return { session, owner, refreshToken: this.tokenFor(session) };
  }

  async save(issued: IssuedSession, ex?: Executor): Promise<void> {
    await this.opts.repo.insert(issued.session, ex);
  }

  /** Rotates the session of a refresh token: {@link decode}, then {@link rotate}. */
  async refresh(token: unknown): Promise<IssuedSession> {
    return this.rotate(this.decode(token));
  }

  /**
   * The claims of an authentic refresh token, or `undefined` for anything malformed or forged: the
   * MAC check, without I/O. A caller that decodes a token itself passes the claims to {@link rotate},
   * so a request checks its token's MAC once.
   */
  decode(token: unknown): RefreshTokenClaims | undefined {
    return this.codec().decode(token);
  }

  /**
   * RFC 9700 rotation with reuse detection (docs/api.md#rotation-grace-window-and-reuse), from a token's decoded claims:
   * - forged or malformed (`undefined`) → `invalid_refresh_token`, nothing revoked, no database work;
   * - current counter → CAS to counter+1 (one round trip);
   * - the previous counter within the grace window → the same token the winner got;
   * - any older counter → the whole session is revoked, `refresh_token_reused`.
   */
  async rotate(claims: RefreshTokenClaims | undefined): Promise<IssuedSession> {
    if (!claims) throw this.invalidRefresh();
    const now = this.opts.clock.now();

    // Recently revoked sessions are refused from memory, before any I/O.
    if (this.opts.revocations.has(claims.sessionId)) throw this.invalidRefresh();

    // The happy path is this one round trip; it deliberately touches no cache (measured: a
    // Redis read and write per refresh cost more than they saved, see README).
    const rotated = await this.opts.repo.rotate(claims.sessionId, claims.counter, now);
    if (rotated?.owner) return { ...rotated, owner: rotated.owner, refreshToken: this.tokenFor(rotated.session), outcome: 'rotated' };

    // The CAS lost. The cache may lag but never un-revokes or un-expires: a session it knows to
    // be dead is refused without reading PostgreSQL (replays of stolen tokens stay off the DB).
    const cached = await this.opts.cache.getSession(claims.sessionId);
    if (cached && (cached.revokedAt !== null || cached.expiresAt <= now.getTime())) throw this.invalidRefresh();

    // Otherwise find out why on the writer: reuse must be judged on the source of truth.
    const state = await this.opts.repo.findWithOwner(claims.sessionId);
    if (!state) throw this.invalidRefresh();
    const { session, owner } = state;
    this.cacheState(session);
    if (session.revokedAt !== null || session.expiresAt <= now || !owner || owner.status !== 'active') throw this.invalidRefresh();
    if (claims.counter === session.counter - 1 && now.getTime() - session.rotatedAt.getTime() < this.opts.graceSeconds * 1000) {
      // Grace retry (lost response, two tabs, N concurrent refreshes): the same next token.
      return { session, owner, refreshToken: this.tokenFor(session), outcome: 'grace' };
    }
    if (claims.counter < session.counter) {
      const revoked = await this.opts.repo.revoke(session.id, 'reuse', now);
      this.opts.telemetry.reuseDetected(owner.id, session.id);
      this.publish(revoked, 'reuse');
      throw new AppError('refresh_token_reused', 'this refresh token was already used; the session has been revoked');
    }
    if (claims.counter > session.counter) {
      // Authentic yet ahead of us: only a region holding the shared secret made it, so another
      // region rotated this session and its rotation has not replicated here yet (a partition, a
      // refresh served from a replica). Catch up past it, as the max-counter merge would.
      const caughtUp = await this.opts.repo.fastForward(session.id, session.counter, claims.counter + 1, now);
      if (caughtUp?.owner) return { ...caughtUp, owner: caughtUp.owner, refreshToken: this.tokenFor(caughtUp.session), outcome: 'rotated' };
    }
    // A counter ahead of ours (or equal after a race we lost to a revocation): never issued here.
    throw this.invalidRefresh();
  }

  /**
   * The live session whose current refresh token this is, read without rotating it, spending it
   * or judging reuse (token introspection): `undefined` for a forged or malformed token (no I/O),
   * a session revoked here recently (no I/O), unknown, revoked, expired or of a disabled or
   * deleted owner, and for an already rotated token — spent, whether or not the grace window would
   * still answer its retry. A counter ahead of the row's was issued by another region whose
   * rotation has not replicated yet: live, as {@link rotate} would take it. Read on the writer,
   * like every decision about a refresh token.
   */
  async peek(token: unknown): Promise<(SessionWithOwner & { owner: SessionOwner; claims: RefreshTokenClaims }) | undefined> {
    const claims = this.decode(token);
    if (!claims || this.opts.revocations.has(claims.sessionId)) return undefined;
    const state = await this.opts.repo.findWithOwner(claims.sessionId);
    if (!state?.owner) return undefined;
    const { session, owner } = state;
    if (session.revokedAt !== null || session.expiresAt <= this.opts.clock.now() || owner.status !== 'active' || claims.counter < session.counter)
      return undefined;
    return { session, owner, claims };
  }

  /**
   * Records that the user of a live session just authenticated again (step-up): the session's
   * `auth_time` and `amr` become `auth` (its provider and passkey stay those of the login).
   * `undefined` when the session is no longer live. `ex`: a transaction to write it in.
   */
  async reauthenticate(sessionId: string, userId: string, auth: AuthContext, ex?: Executor): Promise<(SessionWithOwner & { owner: SessionOwner }) | undefined> {
    const updated = await this.opts.repo.setAuth(sessionId, userId, auth, this.opts.clock.now(), ex);
    return updated?.owner ? { session: updated.session, owner: updated.owner } : undefined;
  }

  /** Revokes one session of `userId` (or of anyone when `userId` is undefined: admin), then publishes it. */
  async revoke(sessionId: string, reason: RevokeReason, userId?: string): Promise<boolean> {
    // One round trip: the ownership check is part of the UPDATE's WHERE.
    const revoked = await this.opts.repo.revoke(sessionId, reason, this.opts.clock.now(), undefined, userId);
    this.publish(revoked, reason);
    return revoked.length > 0;
  }

  /** Revokes every live session of a user (except one, if given), then publishes them. */
  revokeAllForUser(userId: string, reason: RevokeReason, options: { exceptId?: string } = {}): Promise<RevokedSession[]> {
    return this.revokeWithin((tx) => tx.revokeAllForUser(userId, reason, options));
  }

  /**
   * The one way a change that revokes sessions is written: `change` runs in one transaction and
   * revokes through the handle it is given; once that transaction has committed, every session it
   * revoked is published (this server at once, the region's other servers by pub/sub, the cache).
   * A change that fails or rolls back publishes nothing. Publishing lives here, not with the
   * callers, because a caller that forgot it would leave revoked sessions accepted by Bearer
   * checks on the region's other servers until their next database poll.
   */
  async revokeWithin<T>(change: (tx: RevokingTransaction) => Promise<T>): Promise<T> {
    const pending: Array<{ sessions: RevokedSession[]; reason: RevokeReason }> = [];
    const result = await this.opts.db.transaction((trx) =>
      change({
        ex: trx,
        revokeAllForUser: async (userId, reason, options = {}) => {
          const revoked = await this.opts.repo.revokeAllForUser(userId, reason, this.opts.clock.now(), options, trx);
          pending.push({ sessions: revoked, reason });
          return revoked;
        },
        revoked: (sessions, reason) => {
          pending.push({ sessions, reason });
        },
      }),
    );
    for (const { sessions, reason } of pending) this.publish(sessions, reason);
    return result;
  }

  /**
   * Makes committed revocations effective: on this server at once, on the region's other servers
   * through Redis pub/sub (the database poll is the backstop), and in the cache so replays are
   * refused early. Cache work happens off the response path.
   */
  private publish(revoked: RevokedSession[], reason: RevokeReason): void {
    if (revoked.length === 0) return;
    this.opts.revocations.add(revoked);
    this.opts.telemetry.sessionsRevoked(reason, revoked);
    void this.opts.cache.publishRevoked(revoked);
    void this.opts.cache.markRevoked(revoked).then((ok) => {
      if (!ok) this.opts.cacheRepair?.schedule(revoked.map((s) => s.id));
    });
  }

  findById(sessionId: string): Promise<SessionRecord | undefined> {
    return this.opts.repo.findById(sessionId);
  }

  listForUser(userId: string): Promise<SessionRecord[]> {
    return this.opts.repo.listActiveForUser(userId, this.opts.clock.now());
  }

  /** The session a refresh token names, if the token is authentic (for logout with a refresh token). */
  sessionIdOf(token: unknown): string | undefined {
    return this.decode(token)?.sessionId;
  }

  /** Writes the session's state to the cache, off the response path. */
  private cacheState(session: SessionRecord): void {
    if (session.userId === null) return;
    void this.opts.cache.putSession({
      id: session.id,
      userId: session.userId,
      counter: session.counter,
      rotatedAt: session.rotatedAt.getTime(),
      expiresAt: session.expiresAt.getTime(),
      revokedAt: session.revokedAt?.getTime() ?? null,
    });
  }

  private tokenFor(session: SessionRecord): string {
    return this.codec().encode({ region: session.homeRegion, sessionId: session.id, counter: session.counter });
  }

  /** The refusal of a refresh token, counted. */
  private invalidRefresh(): AppError {
    this.opts.telemetry.refreshInvalid();
    return new AppError('invalid_refresh_token', 'the refresh token is not valid');
  }

  private codec(): RefreshTokenCodec {
    if (!this.opts.codec) throw new AppError('bad_config', 'no server secret: set AUTHCTL_SECRET to issue or accept refresh tokens');
    return this.opts.codec;
  }
}
