import { Batcher } from './batcher.js';
import type { Db, Executor } from './db.js';
import { guard } from './errors.js';
import { countRows } from './row-count.js';
import type { Amr, AuthContext } from '../../model/mfa.js';
import type { RevokeReason, RevokedSession, SessionOwner, SessionRecord, SessionWithOwner } from '../../model/session.js';

/** A `sessions` row as node-pg returns it (bigint columns may come as strings). */
export interface SessionDbRow {
  id: string;
  user_id: string | null;
  home_region: string;
  counter: string | number;
  created_at: Date;
  last_used_at: Date;
  rotated_at: Date;
  expires_at: Date;
  revoked_at: Date | null;
  revoke_reason: string | null;
  user_agent: string | null;
  ip: string | null;
  /** Null on sessions from before 0009-second-factors. */
  auth_time: Date | null;
  amr: Amr[] | null;
  /** Null but for a provider sign-in (0010-identities). */
  idp: string | null;
  /** Null but for a passkey's sign-in (0014-passkeys). */
  passkey_id: string | null;
}

interface OwnerColumns {
  owner_id: string | null;
  owner_username: string | null;
  owner_home_region: string | null;
  owner_created_at: Date | null;
  owner_status: 'active' | 'disabled' | null;
  owner_email: string | null;
  owner_email_verified_at: Date | null;
}

export function toSession(row: SessionDbRow): SessionRecord {
  return {
    id: row.id,
    userId: row.user_id,
    homeRegion: row.home_region,
    counter: Number(row.counter),
    createdAt: row.created_at,
    lastUsedAt: row.last_used_at,
    rotatedAt: row.rotated_at,
    expiresAt: row.expires_at,
    revokedAt: row.revoked_at,
    revokeReason: row.revoke_reason,
    userAgent: row.user_agent,
    ip: row.ip,
    // What a session opened before authctl recorded it was: a password login, at its start.
    authTime: row.auth_time ?? row.created_at,
    amr: row.amr ?? ['pwd'],
    idp: row.idp ?? null,
    passkeyId: row.passkey_id ?? null,
  };
}

function toSessionWithOwner(row: SessionDbRow & OwnerColumns): SessionWithOwner {
  const owner: SessionOwner | undefined =
    row.owner_id === null
      ? undefined
      : {
          id: row.owner_id,
          username: row.owner_username,
          email: row.owner_email,
          emailVerifiedAt: row.owner_email_verified_at,
          homeRegion: row.owner_home_region!,
          createdAt: row.owner_created_at!,
          status: row.owner_status!,
        };
  return { session: toSession(row), owner };
}

const OWNER_COLUMNS = `u.id as owner_id, u.username as owner_username, u.home_region as owner_home_region,
  u.created_at as owner_created_at, u.status as owner_status, u.email as owner_email, u.email_verified_at as owner_email_verified_at`;
const SESSION_COLUMNS = `s.id, s.user_id, s.home_region, s.counter, s.created_at, s.last_used_at, s.rotated_at,
  s.expires_at, s.revoked_at, s.revoke_reason, s.user_agent, s.ip, s.auth_time, s.amr, s.idp, s.passkey_id`;

const DEADLOCK = '40P01';

// The batch comes in as parallel arrays: PostgreSQL estimates unnest() of a parameter at 10 rows,
// so the generic plan probes sessions_pkey per item at every table size. (With
// jsonb_to_recordset, estimated at 100 rows, tables below ~50k sessions got a hash join over a
// sequential scan of all sessions for every batch: 2,099 refreshes/s at 10k users, 5,275 at 100k.)
const ROTATE_BATCH = `update sessions s
    set counter = s.counter + 1, rotated_at = b.now, last_used_at = b.now, version = s.version + 1
   from unnest($1::uuid[], $2::bigint[], $3::timestamptz[]) as b(id, counter, now), users u
  where s.id = b.id and s.counter = b.counter and s.revoked_at is null and s.expires_at > b.now
    and u.id = s.user_id and u.status = 'active'
returning ${SESSION_COLUMNS}, ${OWNER_COLUMNS}`;

/** Which of a user's sessions a revocation takes: all but one, or those a provider or a passkey signed in. */
export interface SessionFilter {
  exceptId?: string | undefined;
  idp?: string | undefined;
  passkeyId?: string | undefined;
}

interface RotationRequest {
  id: string;
  counter: number;
  now: Date;
}

/** All SQL on `sessions`. Time always comes from the caller's clock, never from `now()`. */
export class SessionsRepo {
  private readonly rotations: Batcher<RotationRequest, SessionWithOwner | undefined>;

  /**
   * Rotations go through a {@link Batcher}: one statement in flight at a time (by default), and
   * the refreshes that arrive meanwhile go out together as the next one — a group commit.
   * Measured on the bench (16 connections, pool 10): one in flight beats 2, 3 and 5, and all of
   * them beat a statement per refresh by 2×. One at a time also means no two rotation batches
   * ever wait on each other's row locks.
   */
  constructor(
    private readonly db: Db,
    options: { rotationsInFlight?: number } = {},
  ) {
    this.rotations = new Batcher({
      maxInFlight: options.rotationsInFlight ?? 1,
      maxBatch: 64,
      key: (item) => item.id,
      run: (items) => this.rotateBatch(items),
    });
  }

  async insert(session: Omit<SessionRecord, 'revokedAt' | 'revokeReason'>, ex: Executor = this.db.writer): Promise<void> {
    await guard(
      ex('sessions').insert({
        id: session.id,
        user_id: session.userId,
        home_region: session.homeRegion,
        counter: session.counter,
        created_at: session.createdAt,
        last_used_at: session.lastUsedAt,
        rotated_at: session.rotatedAt,
        expires_at: session.expiresAt,
        user_agent: session.userAgent,
        ip: session.ip,
        auth_time: session.authTime,
        amr: session.amr,
        idp: session.idp,
        passkey_id: session.passkeyId,
      }),
    );
  }

  /**
   * The rotation compare-and-set: advances the counter from `counter` to `counter + 1` only if
   * the session is live and its owner active, and returns the new state with the owner — one
   * round trip for a successful refresh. `undefined` means the CAS lost; the caller then reads
   * the row to tell a grace retry from reuse.
   */
  rotate(id: string, counter: number, now: Date): Promise<SessionWithOwner | undefined> {
    return this.rotations.submit({ id, counter, now });
  }

  /** Rotates a batch (see {@link Batcher}): each row is its own compare-and-set, one commit for all. */
  private async rotateBatch(items: RotationRequest[]): Promise<Array<SessionWithOwner | undefined>> {
    const columns = [items.map((i) => i.id), items.map((i) => i.counter), items.map((i) => i.now.toISOString())];
    const run = () => this.db.prepared<SessionDbRow & OwnerColumns>('authctl_rotate_batch_v2', ROTATE_BATCH, columns);
    // A batch locks many rows; should it deadlock with a multi-row revocation, PostgreSQL aborts
    // one side and nothing of it was written, so running the batch again is safe (each row is
    // its own compare-and-set).
    const result = await guard(run().catch((err: unknown) => ((err as { code?: string }).code === DEADLOCK ? run() : Promise.reject(err as Error))));
    const byId = new Map(result.map((row) => [row.id, row]));
    return items.map((item) => {
      const row = byId.get(item.id);
      return row ? toSessionWithOwner(row) : undefined;
    });
  }

  /**
   * Catches a session up to a counter another region issued (its rotation has not replicated
   * here yet): from `from` straight to `to`, if nothing moved meanwhile and the session is live.
   */
  async fastForward(id: string, from: number, to: number, now: Date): Promise<SessionWithOwner | undefined> {
    const result = await guard(
      this.db.writer.raw<{ rows: Array<SessionDbRow & OwnerColumns> }>(
        `update sessions s set counter = :to, rotated_at = :now, last_used_at = :now, version = s.version + 1
           from users u
          where s.id = :id and s.counter = :from and s.revoked_at is null and s.expires_at > :now and u.id = s.user_id and u.status = 'active'
        returning ${SESSION_COLUMNS}, ${OWNER_COLUMNS}`,
        { id, from, to, now },
      ),
    );
    const row = result.rows[0];
    return row ? toSessionWithOwner(row) : undefined;
  }

  /**
   * Records a new authentication in a live session of `userId` (`POST /v1/auth/reauthenticate`):
   * its `auth_time` and `amr`, the counter untouched (the refresh token stays good). A versioned
   * update, so it replicates and the session's other regions issue the same claims. Returns the
   * session with its owner, or `undefined` when it is no longer live or not the user's. `ex`: the
   * transaction that spends what the authentication used (a passkey's challenge).
   */
  async setAuth(id: string, userId: string, auth: AuthContext, now: Date, ex: Executor = this.db.writer): Promise<SessionWithOwner | undefined> {
    const result = await guard(
      ex.raw<{ rows: Array<SessionDbRow & OwnerColumns> }>(
        `update sessions s set auth_time = :authTime, amr = string_to_array(:amr, ','), last_used_at = :now, version = s.version + 1
           from users u
          where s.id = :id and s.user_id = :userId and s.revoked_at is null and s.expires_at > :now and u.id = s.user_id and u.status = 'active'
        returning ${SESSION_COLUMNS}, ${OWNER_COLUMNS}`,
        // (knex would spread an array binding into a list; RFC 8176 values hold no comma)
        { id, userId, authTime: auth.authTime, amr: auth.amr.join(','), now },
      ),
    );
    const row = result.rows[0];
    return row ? toSessionWithOwner(row) : undefined;
  }

  /** Reads from the writer: decisions about reuse must not be made on a lagging replica. */
  async findWithOwner(id: string): Promise<SessionWithOwner | undefined> {
    const result = await guard(
      this.db.writer.raw<{ rows: Array<SessionDbRow & OwnerColumns> }>(
        `select ${SESSION_COLUMNS}, ${OWNER_COLUMNS}
           from sessions s left join users u on u.id = s.user_id
          where s.id = ?`,
        [id],
      ),
    );
    const row = result.rows[0];
    return row ? toSessionWithOwner(row) : undefined;
  }

  async findById(id: string, ex: Executor = this.db.writer): Promise<SessionRecord | undefined> {
    const row = await guard(ex<SessionDbRow>('sessions').where({ id }).first());
    return row ? toSession(row) : undefined;
  }

  /** Reads from the writer: a user's own list must show the session they just opened or closed. */
  async listActiveForUser(userId: string, now: Date): Promise<SessionRecord[]> {
    const rows = await guard(
      this.db.writer<SessionDbRow>('sessions').where({ user_id: userId }).whereNull('revoked_at').where('expires_at', '>', now).orderBy('created_at', 'desc'),
    );
    return rows.map(toSession);
  }

  /** Revokes one live session; returns it if this call revoked it. */
  async revoke(id: string, reason: RevokeReason, now: Date, ex: Executor = this.db.writer, userId?: string): Promise<RevokedSession[]> {
    return this.revokeWhere(ex, reason, now, { id, ...(userId === undefined ? {} : { userId }) });
  }

  /**
   * Revokes every live session of a user, optionally sparing one (the caller's, on password
   * change), or only those signed in through a provider (`idp`) or by a passkey (`passkeyId`).
   */
  async revokeAllForUser(
    userId: string,
    reason: RevokeReason,
    now: Date,
    options: SessionFilter = {},
    ex: Executor = this.db.writer,
  ): Promise<RevokedSession[]> {
    return this.revokeWhere(ex, reason, now, { userId, ...options });
  }

  private async revokeWhere(
    ex: Executor,
    reason: RevokeReason,
    now: Date,
    filter: SessionFilter & { id?: string; userId?: string },
  ): Promise<RevokedSession[]> {
    const q = ex('sessions').whereNull('revoked_at').where('expires_at', '>', now);
    if (filter.id !== undefined) void q.where('id', filter.id);
    if (filter.userId !== undefined) void q.where('user_id', filter.userId);
    if (filter.exceptId !== undefined) void q.whereNot('id', filter.exceptId);
    if (filter.idp !== undefined) void q.where('idp', filter.idp);
    if (filter.passkeyId !== undefined) void q.where('passkey_id', filter.passkeyId);
    const rows = await guard(
      q
        .update({ revoked_at: now, revoke_reason: reason, version: ex.raw('version + 1') })
        .returning<Array<{ id: string; revoked_at: Date; expires_at: Date; user_id: string | null }>>(['id', 'revoked_at', 'expires_at', 'user_id']),
    );
    return rows.map((r) => ({ id: r.id, revokedAt: r.revoked_at, expiresAt: r.expires_at, userId: r.user_id }));
  }

  /**
   * Deletes up to `limit` sessions that expired or were revoked before `before`; returns how many.
   * One short statement per batch: rows another transaction holds are skipped (a later pass gets
   * them), so cleanup never waits on, or blocks, a refresh for long. Callers loop until a batch
   * comes back short.
   */
  async deleteStale(before: Date, limit: number, options: { keepRevokedUntilExpiry?: boolean } = {}): Promise<number> {
    const stale = options.keepRevokedUntilExpiry ? 'expires_at < :before' : 'expires_at < :before or revoked_at < :before';
    const result = await guard(
      this.db.writer.raw<{ rowCount: number | null }>(
        `delete from sessions
          where id in (
            select id from sessions
             where ${stale}
             limit :limit
               for update skip locked)`,
        { before, limit },
      ),
    );
    return result.rowCount ?? 0;
  }

  /**
   * Live sessions (neither revoked nor expired), for the active-sessions gauge: counted below
   * `exactBelow`, PostgreSQL's estimate above (src/store/pg/row-count.ts), so a scrape never
   * scans millions of index entries.
   */
  async countActive(now: Date, exactBelow?: number): Promise<number> {
    return (await this.db.read((k) => countRows(k, 'sessions where expires_at > :now and revoked_at is null', { now }, exactBelow))).count;
  }

  /** Sessions revoked at or after `since` whose access tokens may still be alive. */
  async revokedSince(since: Date, notExpiredBefore: Date): Promise<RevokedSession[]> {
    const rows = await guard(
      this.db
        .writer('sessions')
        .select<Array<{ id: string; revoked_at: Date; expires_at: Date }>>('id', 'revoked_at', 'expires_at')
        .where('revoked_at', '>=', since)
        .where('expires_at', '>', notExpiredBefore),
    );
    return rows.map((r) => ({ id: r.id, revokedAt: r.revoked_at, expiresAt: r.expires_at }));
  }
}
