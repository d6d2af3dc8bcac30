import type { Knex } from 'knex';
import { AppError } from '../../platform/errors.js';
import type { Db, Executor } from './db.js';
import { guard } from './errors.js';
import type { RevokedSession, SessionRecord } from '../../model/session.js';

/** One captured change on its way to one peer. */
export interface OutboxEntry {
  id: number;
  entity: string;
  payload: Record<string, unknown>;
  createdAt: Date;
}

export interface PeerRow {
  name: string;
  url: string;
  attempts: number;
  nextAttemptAt: Date | null;
  lastSuccessAt: Date | null;
  lastError: string | null;
  lastErrorAt: Date | null;
  recentLagMs: number[];
}

export interface PeerBacklog extends PeerRow {
  backlog: number;
  deadLettered: number;
  oldestPendingAt: Date | null;
}

/** What applying a batch changed locally, for the caller to make effective (caches, logs). */
export interface ApplyResult {
  duplicate: boolean;
  applied: number;
  /** Sessions this batch revoked here (replicated revocations and detected forks). */
  revoked: RevokedSession[];
  /** Sessions revoked because two regions rotated them from the same counter. */
  forks: string[];
  /** Username clashes resolved by renaming the loser. */
  renamed: Array<{ userId: string; from: string; to: string; winnerId: string }>;
  keysChanged: boolean;
}

const LAG_SAMPLES = 1_000;

type Row = Record<string, unknown>;

const date = (value: unknown): Date | null => (value === null || value === undefined ? null : new Date(value as string));

/** The username a loser of a clash gets: deterministic, so every region renames it alike. */
export function clashName(username: string, homeRegion: string): string {
  const suffix = `.${homeRegion}`;
  return `${username.slice(0, 64 - suffix.length)}${suffix}`;
}

/** All SQL of replication: peers, outbox, the applied-batch log and applying peers' rows. */
export class ReplicationRepo {
  constructor(private readonly db: Db) {}

  /**
   * Makes `replication_peers` match the config. A peer seen for the first time gets a snapshot
   * of everything that replicates (users, live sessions, public keys), so a region added later
   * starts complete; the trigger then captures changes from this commit on.
   */
  async syncPeers(peers: Array<{ name: string; url: string }>, now: Date): Promise<string[]> {
    return this.db.transaction(async (trx) => {
      await trx.raw(`select pg_advisory_xact_lock(hashtext('authctl.replication_peers'))`);
      const names = peers.map((p) => p.name);
      await trx('replication_peers').whereNotIn('name', names).delete();
      const added: string[] = [];
      for (const peer of peers) {
        const rows = await trx('replication_peers')
          .insert({ name: peer.name, url: peer.url })
          .onConflict('name')
          .merge({ url: peer.url })
          .returning<Array<{ inserted: boolean }>>(trx.raw('(xmax = 0) as inserted'));
        if (rows[0]?.inserted) added.push(peer.name);
      }
      for (const peer of added) {
        await trx.raw(
          `insert into replication_outbox (peer, entity, payload)
             select ?, 'users', to_jsonb(u) from users u
           union all
             select ?, 'sessions', to_jsonb(s) from sessions s where s.expires_at > ?
           union all
             select ?, 'signing_keys', to_jsonb(k) - 'private_jwk_encrypted' from signing_keys k`,
          [peer, peer, now, peer],
        );
      }
      return added;
    });
  }

  async peer(name: string): Promise<PeerRow | undefined> {
    const row = await guard(this.db.writer<Row>('replication_peers').where({ name }).first());
    return row ? toPeer(row) : undefined;
  }

  /**
   * Leases the oldest pending entries for `peer` (oldest first), unless a batch for that peer is
   * already out: one batch in flight per peer across all of the region's workers, so a peer
   * sees a session's rotations in the order they happened (fork detection relies on it). The
   * lease outlives any delivery, so it only lapses when its worker died mid-flight.
   */
  async claim(peer: string, limit: number, leaseMs: number): Promise<OutboxEntry[]> {
    return this.db.transaction(async (trx) => {
      await trx.raw(`select pg_advisory_xact_lock(hashtext('authctl.replication_ship'), hashtext(?))`, [peer]);
      const result = await trx.raw<{ rows: Row[] }>(
        `update replication_outbox o set leased_until = clock_timestamp() + (? * interval '1 millisecond')
          where o.id in (select id from replication_outbox
                          where peer = ? and dead_at is null
                          order by id limit ?)
            and not exists (select 1 from replication_outbox l where l.peer = ? and l.leased_until > clock_timestamp())
        returning o.id, o.entity, o.payload, o.created_at`,
        [leaseMs, peer, limit, peer],
      );
      return result.rows
        .map((r) => ({ id: Number(r.id), entity: r.entity as string, payload: r.payload as Record<string, unknown>, createdAt: r.created_at as Date }))
        .sort((a, b) => a.id - b.id);
    });
  }

  /**
   * The users of these entries' sessions that are homed in another region, as `users` changes to
   * send first: a peer that has not heard of them from their home region (down, or slower) can
   * still apply the sessions instead of holding up this region's whole stream. Applying a user
   * it already has is a no-op (higher version wins).
   */
  async foreignOwners(entries: OutboxEntry[], region: string): Promise<Array<{ entity: 'users'; payload: Row }>> {
    const ids = [...new Set(entries.filter((e) => e.entity === 'sessions').map((e) => e.payload.user_id))].filter((id): id is string => typeof id === 'string');
    if (ids.length === 0) return [];
    const result = await this.db.writer.raw<{ rows: Array<{ payload: Row }> }>(
      'select to_jsonb(u) as payload from users u where u.id = any(?::uuid[]) and u.home_region <> ?',
      [ids, region],
    );
    return result.rows.map((r) => ({ entity: 'users', payload: r.payload }));
  }

  /** The peer applied these entries: forget them, record lag and success. */
  async acknowledge(peer: string, ids: number[], lagsMs: number[], now: Date): Promise<void> {
    await this.db.transaction(async (trx) => {
      await trx('replication_outbox').whereIn('id', ids).delete();
      await trx.raw(
        `update replication_peers
            set attempts = 0, next_attempt_at = null, last_success_at = ?,
                recent_lag_ms = (?::integer[] || recent_lag_ms)[1:${LAG_SAMPLES}]
          where name = ?`,
        [now, lagsMs.slice(0, LAG_SAMPLES), peer],
      );
    });
  }

  /**
   * A delivery failed: the peer backs off, the entries are released and counted; when the peer
   * answered (it is up but refused the batch), entries at `deadAfter` attempts are dead-lettered.
   */
  async fail(peer: string, ids: number[], error: string, now: Date, options: { backoffMs: number; deadAfter: number | undefined }): Promise<number> {
    return this.db.transaction(async (trx) => {
      await trx('replication_peers')
        .where({ name: peer })
        .update({
          attempts: trx.raw('attempts + 1'),
          next_attempt_at: new Date(now.getTime() + options.backoffMs),
          last_error: error.slice(0, 500),
          last_error_at: now,
        });
      await trx('replication_outbox')
        .whereIn('id', ids)
        .update({ attempts: trx.raw('attempts + 1'), leased_until: null, last_error: error.slice(0, 500) });
      if (options.deadAfter === undefined) return 0;
      return trx('replication_outbox').whereIn('id', ids).where('attempts', '>=', options.deadAfter).update({ dead_at: now });
    });
  }

  async backlog(): Promise<PeerBacklog[]> {
    const rows = await guard(
      this.db.writer.raw<{ rows: Row[] }>(
        `select p.*,
                (select count(*) from replication_outbox o where o.peer = p.name and o.dead_at is null) as backlog,
                (select count(*) from replication_outbox o where o.peer = p.name and o.dead_at is not null) as dead,
                (select min(created_at) from replication_outbox o where o.peer = p.name and o.dead_at is null) as oldest
           from replication_peers p order by p.name`,
      ),
    );
    return rows.rows.map((r) => ({ ...toPeer(r), backlog: Number(r.backlog), deadLettered: Number(r.dead), oldestPendingAt: date(r.oldest) }));
  }

  /** Puts dead-lettered entries back in line (all peers, or one); returns how many. */
  async retryDead(peer?: string): Promise<number> {
    return this.db.transaction(async (trx) => {
      const q = trx('replication_outbox').whereNotNull('dead_at');
      if (peer !== undefined) void q.where({ peer });
      const count = await q.update({ dead_at: null, attempts: 0, leased_until: null });
      const peers = trx('replication_peers');
      if (peer !== undefined) void peers.where({ name: peer });
      await peers.update({ attempts: 0, next_attempt_at: null });
      return count;
    });
  }

  /** Forgets applied-batch ids older than `before` (a re-delivery is never that late) and tombstones older than `tombstonesBefore`. */
  async pruneApplied(before: Date, tombstonesBefore: Date): Promise<number> {
    const tombstones = await guard(this.db.writer('replication_tombstones').where('deleted_at', '<', tombstonesBefore).delete());
    return tombstones + (await guard(this.db.writer('replication_applied').where('applied_at', '<', before).delete()));
  }

  /**
   * Applies a batch from `origin` in the caller's transaction `trx`, idempotently: a batch id seen
   * before is skipped; within a batch each row merges by its own rule (see applySession, applyUser).
   */
  async apply(trx: Knex.Transaction, origin: string, batchId: string, changes: Array<{ entity: string; payload: Row }>, now: Date): Promise<ApplyResult> {
    const result: ApplyResult = { duplicate: false, applied: 0, revoked: [], forks: [], renamed: [], keysChanged: false };
    const fresh = await trx('replication_applied')
      .insert({ origin, batch_id: batchId, applied_at: now })
      .onConflict(['origin', 'batch_id'])
      .ignore()
      .returning('batch_id');
    if (fresh.length === 0) return { ...result, duplicate: true };
    await setApplying(trx, true);
    // Consecutive session changes are merged as one group: a batch under refresh load holds
    // many rotations of few sessions, and each session is then read and written once.
    for (let i = 0; i < changes.length;) {
      const change = changes[i]!;
      if (change.entity === 'sessions') {
        let end = i;
        while (end < changes.length && changes[end]!.entity === 'sessions') end += 1;
        await this.applySessions(
          trx,
          changes.slice(i, end).map((c) => c.payload),
          now,
          result,
        );
        result.applied += end - i;
        i = end;
        continue;
      }
      switch (change.entity) {
        case 'users':
          await this.applyUser(trx, change.payload, now, result);
          break;
        case 'users_deleted':
          await trx('users')
            .where({ id: change.payload.id as string })
            .delete();
          break;
        case 'signing_keys':
          await this.applyKey(trx, change.payload, result);
          break;
        default:
          throw new Error(`unknown replicated entity ${change.entity}`);
      }
      result.applied += 1;
      i += 1;
    }
    return result;
  }

  /**
   * Users: upsert by id, higher `version` wins (see {@link userWins} for two regions' concurrent edits). A username another user holds here (both regions
   * registered it during a partition) goes to the user created first, then to the lower home
   * region name, then the lower id; the loser is renamed `<name>.<home region>` in every region alike.
   */
  private async applyUser(trx: Knex.Transaction, user: Row, now: Date, result: ApplyResult): Promise<void> {
    const local = await trx<Row>('users').where({ id: user.id }).forUpdate().first();
    if (local && !userWins(user, local)) return;
    if (!local && (await trx('replication_tombstones').where({ id: user.id }).first())) return;
    const incoming = { ...user };
    const clash = await trx<Row>('users').where({ username: incoming.username }).whereNot({ id: incoming.id }).forUpdate().first();
    if (clash) {
      const rank = (u: Row) => [new Date(u.created_at as string).getTime(), u.home_region as string, u.id as string] as const;
      const [a, b] = [rank(incoming), rank(clash)];
      const incomingWins = a[0] !== b[0] ? a[0] < b[0] : a[1] !== b[1] ? a[1] < b[1] : a[2] < b[2];
      const loser = incomingWins ? clash : incoming;
      const renamed = clashName(loser.username as string, loser.home_region as string);
      result.renamed.push({
        userId: loser.id as string,
        from: loser.username as string,
        to: renamed,
        winnerId: (incomingWins ? incoming : clash).id as string,
      });
      if (incomingWins)
        await trx('users')
          .where({ id: clash.id as string })
          .update({ username: renamed });
      else incoming.username = renamed;
    }
    const row = {
      id: incoming.id,
      username: incoming.username,
      password_hash: incoming.password_hash,
      status: incoming.status,
      home_region: incoming.home_region,
      created_at: incoming.created_at,
      updated_at: incoming.updated_at,
      password_changed_at: incoming.password_changed_at,
      sessions_revoked_before: incoming.sessions_revoked_before ?? null,
      sessions_revoked_keep: incoming.sessions_revoked_keep ?? null,
      version: incoming.version,
    };
    await trx('users').insert(row).onConflict('id').merge();
    const cutoff = incoming.sessions_revoked_before as string | null | undefined;
    if (cutoff && (!local?.sessions_revoked_before || new Date(cutoff) > new Date(local.sessions_revoked_before as string))) {
      // A password change or logout-all elsewhere: this region's sessions of the user from before
      // it go too, those it opened itself during a partition included. Every region does the same
      // on receiving the user, so this is not shipped.
      const revoked = await trx('sessions')
        .where({ user_id: incoming.id as string })
        .whereNull('revoked_at')
        .where('created_at', '<', cutoff)
        .modify((q) => {
          if (incoming.sessions_revoked_keep) void q.whereNot({ id: incoming.sessions_revoked_keep as string });
        })
        .update({ revoked_at: now, revoke_reason: 'replicated', version: trx.raw('version + 1') })
        .returning<Array<{ id: string; expires_at: Date; user_id: string | null }>>(['id', 'expires_at', 'user_id']);
      result.revoked.push(...revoked.map((r) => ({ id: r.id, revokedAt: now, expiresAt: r.expires_at, userId: r.user_id })));
    }
  }

  /**
   * Sessions merge by counter: the higher counter wins (with its rotation time); a revocation
   * is never undone. The same counter reached with two different rotation times means two
   * regions each rotated the session from the previous counter — two clients used one token —
   * and is treated as reuse: the session is revoked here and that revocation ships everywhere.
   * Changes are folded in order in memory, then written with one statement per kind.
   */
  private async applySessions(trx: Knex.Transaction, changes: Row[], now: Date, result: ApplyResult): Promise<void> {
    const ids = [...new Set(changes.map((c) => c.id as string))];
    // Users before sessions, as a logout-all or password change locks them (users, then their
    // sessions): the same order in both, so the two never deadlock.
    const userIds = [...new Set(changes.map((c) => c.user_id))].filter((id): id is string => typeof id === 'string');
    if (userIds.length > 0) await trx('users').whereIn('id', userIds).forShare().select('id');
    const locals = await trx<Row>('sessions').whereIn('id', ids).forUpdate();
    const state = new Map<string, SessionState>(locals.map((l) => [l.id as string, toState(l)]));
    const inserted = new Map<string, SessionState>();
    const dirty = new Set<string>();
    const forks = new Set<string>();
    for (const change of changes) {
      const incoming = toState(change);
      const local = state.get(incoming.id);
      if (!local) {
        state.set(incoming.id, incoming);
        inserted.set(incoming.id, incoming);
        if (incoming.revokedAt) result.revoked.push({ id: incoming.id, revokedAt: incoming.revokedAt, expiresAt: incoming.expiresAt, userId: incoming.userId });
        continue;
      }
      if (
        !forks.has(incoming.id) &&
        !local.revokedAt &&
        !incoming.revokedAt &&
        local.counter === incoming.counter &&
        local.rotatedAt.getTime() !== incoming.rotatedAt.getTime()
      ) {
        forks.add(incoming.id);
      }
      if (incoming.counter > local.counter) {
        local.counter = incoming.counter;
        local.rotatedAt = incoming.rotatedAt;
      }
      if (incoming.lastUsedAt > local.lastUsedAt) local.lastUsedAt = incoming.lastUsedAt;
      if (!local.revokedAt && incoming.revokedAt) {
        local.revokedAt = incoming.revokedAt;
        local.revokeReason = incoming.revokeReason;
        if (!inserted.has(incoming.id)) result.revoked.push({ id: local.id, revokedAt: incoming.revokedAt, expiresAt: local.expiresAt, userId: local.userId });
      }
      local.version = Math.max(local.version, incoming.version);
      if (!inserted.has(incoming.id)) dirty.add(incoming.id);
    }
    if (inserted.size > 0) {
      const owners = [...new Set([...inserted.values()].map((s) => s.userId).filter((id): id is string => id !== null))];
      // FOR SHARE: a logout-all or password change committing meanwhile either has set its cut-off
      // before we read it, or waits for this insert and then revokes the session itself.
      const ownerRows = await trx<Row>('users').whereIn('id', owners).select('id', 'sessions_revoked_before', 'sessions_revoked_keep').forShare();
      const known = new Set(ownerRows.map((u) => u.id as string));
      // A session opened before its user's last password change or logout-all (made in a region
      // that did not know the session yet) arrives revoked.
      const cutoffs = new Map(ownerRows.filter((u) => u.sessions_revoked_before).map((u) => [u.id as string, u]));
      for (const s of inserted.values()) {
        const owner = s.userId === null ? undefined : cutoffs.get(s.userId);
        if (!owner || s.revokedAt || s.id === owner.sessions_revoked_keep || s.createdAt >= new Date(owner.sessions_revoked_before as string)) continue;
        s.revokedAt = now;
        s.revokeReason = 'replicated';
        result.revoked.push({ id: s.id, revokedAt: now, expiresAt: s.expiresAt, userId: s.userId });
      }
      // Sessions of a deleted user keep no owner, as they do in the region that deleted it.
      const deleted = new Set((await trx<Row>('replication_tombstones').whereIn('id', owners).select('id')).map((u) => u.id as string));
      for (const s of inserted.values()) if (s.userId !== null && deleted.has(s.userId)) s.userId = null;
      if (owners.some((id) => !known.has(id) && !deleted.has(id))) {
        // The user comes from another region's stream (its home) that has not delivered yet:
        // refuse the batch for now; the sender retries it without dead-lettering.
        throw new AppError('conflict', 'a session of a user not replicated here yet');
      }
      await trx('sessions').insert(
        [...inserted.values()].map((s) => ({
          ...fromState(s),
          user_id: s.userId,
          home_region: s.homeRegion,
          created_at: s.createdAt,
          expires_at: s.expiresAt,
          user_agent: s.userAgent,
          ip: s.ip,
        })),
      );
    }
    if (dirty.size > 0) {
      await trx.raw(
        `update sessions s set counter = b.counter, rotated_at = b.rotated_at, last_used_at = b.last_used_at,
                revoked_at = b.revoked_at, revoke_reason = b.revoke_reason, version = b.version
           from jsonb_to_recordset(?::jsonb) as b(id uuid, counter bigint, rotated_at timestamptz, last_used_at timestamptz, revoked_at timestamptz, revoke_reason text, version bigint)
          where s.id = b.id`,
        [JSON.stringify([...dirty].map((id) => fromState(state.get(id)!)))],
      );
    }
    if (forks.size > 0) {
      // Captured on purpose: every region must learn that the session is revoked.
      await setApplying(trx, false);
      const revoked = await trx('sessions')
        .whereIn('id', [...forks])
        .whereNull('revoked_at')
        .update({ revoked_at: now, revoke_reason: 'reuse', version: trx.raw('version + 1') })
        .returning<Array<{ id: string; expires_at: Date; user_id: string | null }>>(['id', 'expires_at', 'user_id']);
      await setApplying(trx, true);
      result.forks.push(...revoked.map((r) => r.id));
      result.revoked.push(...revoked.map((r) => ({ id: r.id, revokedAt: now, expiresAt: r.expires_at, userId: r.user_id })));
    }
  }

  /** Public keys of other regions: inserted once, then only their retirement changes. */
  private async applyKey(trx: Knex.Transaction, k: Row, result: ApplyResult): Promise<void> {
    const rows = await trx('signing_keys')
      .insert({
        kid: k.kid,
        alg: k.alg,
        public_jwk: JSON.stringify(k.public_jwk),
        private_jwk_encrypted: null,
        home_region: k.home_region,
        created_at: k.created_at,
        activates_at: k.activates_at,
        retires_at: k.retires_at,
        version: k.version,
      })
      .onConflict('kid')
      .merge({ retires_at: k.retires_at, version: k.version })
      .where('signing_keys.version', '<', Number(k.version))
      .returning('kid');
    if (rows.length > 0) result.keysChanged = true;
  }
}

/**
 * Whether an incoming user row replaces the local one: the higher version; on equal versions (two
 * regions each changed the user once, concurrently) the later `updated_at`, except that a
 * disable is never lost to a concurrent change elsewhere. Both regions decide alike.
 */
function userWins(incoming: Row, local: Row): boolean {
  const [vi, vl] = [Number(incoming.version), Number(local.version)];
  if (vi !== vl) return vi > vl;
  if (incoming.status !== local.status) return incoming.status === 'disabled';
  return new Date(incoming.updated_at as string).getTime() > new Date(local.updated_at as string).getTime();
}

/** A session as merged in memory: its record and its replication version. */
interface SessionState extends SessionRecord {
  version: number;
}

function toState(r: Row): SessionState {
  return {
    id: r.id as string,
    userId: (r.user_id as string | null) ?? null,
    homeRegion: r.home_region as string,
    counter: Number(r.counter),
    createdAt: date(r.created_at)!,
    lastUsedAt: date(r.last_used_at)!,
    rotatedAt: date(r.rotated_at)!,
    expiresAt: date(r.expires_at)!,
    revokedAt: date(r.revoked_at),
    revokeReason: (r.revoke_reason as string | null) ?? null,
    userAgent: (r.user_agent as string | null) ?? null,
    ip: (r.ip as string | null) ?? null,
    version: Number(r.version),
  };
}

/** The merged columns of a session, as written back. */
function fromState(s: SessionState) {
  return {
    id: s.id,
    counter: s.counter,
    rotated_at: s.rotatedAt,
    last_used_at: s.lastUsedAt,
    revoked_at: s.revokedAt,
    revoke_reason: s.revokeReason,
    version: s.version,
  };
}

async function setApplying(ex: Executor, on: boolean): Promise<void> {
  await ex.raw(`select set_config('authctl.applying', ?, true)`, [on ? 'on' : 'off']);
}

function toPeer(r: Row): PeerRow {
  return {
    name: r.name as string,
    url: r.url as string,
    attempts: Number(r.attempts),
    nextAttemptAt: date(r.next_attempt_at),
    lastSuccessAt: date(r.last_success_at),
    lastError: (r.last_error as string | null) ?? null,
    lastErrorAt: date(r.last_error_at),
    recentLagMs: (r.recent_lag_ms as number[] | null) ?? [],
  };
}
