import type { Knex } from 'knex';
import { AppError } from '../../errors.js';
import type { Db, Executor } from './db.js';
import { guard } from './errors.js';
import type { RevokedSession } from './sessions-repo.js';

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
        const rows = await trx('replication_peers').insert({ name: peer.name, url: peer.url }).onConflict('name').merge({ url: peer.url }).returning<Array<{ inserted: boolean }>>(trx.raw('(xmax = 0) as inserted'));
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
   * Leases the oldest pending entries for `peer` (oldest first, so a session's rotations reach
   * the peer in the order they happened). The lease lets several workers share a peer without a
   * long transaction open across the HTTP call.
   */
  async claim(peer: string, limit: number, leaseMs: number): Promise<OutboxEntry[]> {
    const result = await guard(
      this.db.writer.raw<{ rows: Row[] }>(
        `update replication_outbox o set leased_until = clock_timestamp() + (? * interval '1 millisecond')
          where o.id in (select id from replication_outbox
                          where peer = ? and dead_at is null and (leased_until is null or leased_until < clock_timestamp())
                          order by id limit ? for update skip locked)
        returning o.id, o.entity, o.payload, o.created_at`,
        [leaseMs, peer, limit],
      ),
    );
    return result.rows
      .map((r) => ({ id: Number(r.id), entity: r.entity as string, payload: r.payload as Record<string, unknown>, createdAt: r.created_at as Date }))
      .sort((a, b) => a.id - b.id);
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
        .update({ attempts: trx.raw('attempts + 1'), next_attempt_at: new Date(now.getTime() + options.backoffMs), last_error: error.slice(0, 500), last_error_at: now });
      await trx('replication_outbox').whereIn('id', ids).update({ attempts: trx.raw('attempts + 1'), leased_until: null, last_error: error.slice(0, 500) });
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

  /** Forgets applied-batch ids older than `before` (a re-delivery is never that late). */
  async pruneApplied(before: Date): Promise<number> {
    return guard(this.db.writer('replication_applied').where('applied_at', '<', before).delete());
  }

  /**
   * Applies a batch from `origin` in one transaction, idempotently: a batch id seen before is
   * skipped; within a batch each row merges by its own rule (see applySession, applyUser).
   */
  async apply(origin: string, batchId: string, changes: Array<{ entity: string; payload: Row }>, now: Date): Promise<ApplyResult> {
    return this.db.transaction(async (trx) => {
      const result: ApplyResult = { duplicate: false, applied: 0, revoked: [], forks: [], renamed: [], keysChanged: false };
      const fresh = await trx('replication_applied').insert({ origin, batch_id: batchId, applied_at: now }).onConflict(['origin', 'batch_id']).ignore().returning('batch_id');
      if (fresh.length === 0) return { ...result, duplicate: true };
      await setApplying(trx, true);
      for (const change of changes) {
        switch (change.entity) {
          case 'users':
            await this.applyUser(trx, change.payload, result);
            break;
          case 'users_deleted':
            await trx('users').where({ id: change.payload.id as string }).delete();
            break;
          case 'sessions':
            await this.applySession(trx, change.payload, now, result);
            break;
          case 'signing_keys':
            await this.applyKey(trx, change.payload, result);
            break;
          default:
            throw new Error(`unknown replicated entity ${change.entity}`);
        }
        result.applied += 1;
      }
      return result;
    });
  }

  /**
   * Users: upsert by id, higher `version` wins. A username another user holds here (both regions
   * registered it during a partition) goes to the user created first, then to the lower home
   * region name, then the lower id; the loser is renamed `<name>.<home region>` in every region alike.
   */
  private async applyUser(trx: Knex.Transaction, user: Row, result: ApplyResult): Promise<void> {
    const local = await trx<Row>('users').where({ id: user.id }).forUpdate().first();
    if (local && Number(local.version) >= Number(user.version)) return;
    const incoming = { ...user };
    const clash = await trx<Row>('users').where({ username: incoming.username }).whereNot({ id: incoming.id }).forUpdate().first();
    if (clash) {
      const rank = (u: Row) => [new Date(u.created_at as string).getTime(), u.home_region as string, u.id as string] as const;
      const [a, b] = [rank(incoming), rank(clash)];
      const incomingWins = a[0] !== b[0] ? a[0] < b[0] : a[1] !== b[1] ? a[1] < b[1] : a[2] < b[2];
      const loser = incomingWins ? clash : incoming;
      const renamed = clashName(loser.username as string, loser.home_region as string);
      result.renamed.push({ userId: loser.id as string, from: loser.username as string, to: renamed, winnerId: (incomingWins ? incoming : clash).id as string });
      if (incomingWins) await trx('users').where({ id: clash.id as string }).update({ username: renamed });
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
      version: incoming.version,
    };
    await trx('users').insert(row).onConflict('id').merge();
  }

  /**
   * Sessions merge by counter: the higher counter wins (with its rotation time); a revocation
   * is never undone. The same counter reached with two different rotation times means two
   * regions each rotated the session from the previous counter — two clients used one token —
   * and is treated as reuse: the session is revoked here and that revocation ships everywhere.
   */
  private async applySession(trx: Knex.Transaction, s: Row, now: Date, result: ApplyResult): Promise<void> {
    const local = await trx<Row>('sessions').where({ id: s.id }).forUpdate().first();
    const incomingRevoked = date(s.revoked_at);
    if (!local) {
      if (s.user_id !== null && !(await trx<Row>('users').where({ id: s.user_id }).first('id'))) {
        // The user comes from another region's stream (its home) that has not delivered yet:
        // refuse the batch for now; the sender retries it without dead-lettering.
        throw new AppError('conflict', 'a session of a user not replicated here yet');
      }
      await trx('sessions').insert({
        id: s.id,
        user_id: s.user_id,
        home_region: s.home_region,
        counter: s.counter,
        created_at: s.created_at,
        last_used_at: s.last_used_at,
        rotated_at: s.rotated_at,
        expires_at: s.expires_at,
        revoked_at: s.revoked_at,
        revoke_reason: s.revoke_reason,
        user_agent: s.user_agent,
        ip: s.ip,
        version: s.version,
      });
      if (incomingRevoked) result.revoked.push({ id: s.id as string, revokedAt: incomingRevoked, expiresAt: new Date(s.expires_at as string), userId: s.user_id as string | null });
      return;
    }
    const localCounter = Number(local.counter);
    const incomingCounter = Number(s.counter);
    const localRevoked = date(local.revoked_at);
    const fork =
      localRevoked === null && incomingRevoked === null && localCounter === incomingCounter && date(local.rotated_at)!.getTime() !== date(s.rotated_at)!.getTime();
    const ahead = incomingCounter > localCounter;
    const revokedAt = localRevoked ?? incomingRevoked;
    await trx('sessions')
      .where({ id: s.id as string })
      .update({
        counter: Math.max(localCounter, incomingCounter),
        rotated_at: ahead ? s.rotated_at : local.rotated_at,
        last_used_at: new Date(Math.max(date(local.last_used_at)!.getTime(), date(s.last_used_at)!.getTime())),
        revoked_at: revokedAt,
        revoke_reason: localRevoked ? local.revoke_reason : s.revoke_reason,
        version: Math.max(Number(local.version), Number(s.version)),
      });
    if (!localRevoked && incomingRevoked) {
      result.revoked.push({ id: s.id as string, revokedAt: incomingRevoked, expiresAt: date(local.expires_at)!, userId: local.user_id as string | null });
    }
    if (fork) {
      // Captured on purpose: every region must learn that the session is revoked.
      await setApplying(trx, false);
      await trx('sessions').where({ id: s.id as string }).update({ revoked_at: now, revoke_reason: 'reuse', version: trx.raw('version + 1') });
      await setApplying(trx, true);
      result.forks.push(s.id as string);
      result.revoked.push({ id: s.id as string, revokedAt: now, expiresAt: date(local.expires_at)!, userId: local.user_id as string | null });
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
