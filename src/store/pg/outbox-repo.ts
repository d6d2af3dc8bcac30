import type { CapturedRow, ReplicatedEntity } from '../../model/replication.js';
import type { Db } from './db.js';
import { guard } from './errors.js';

/** One captured change on its way to one peer, as the trigger wrote it. */
export interface OutboxEntry {
  id: number;
  entity: ReplicatedEntity;
  payload: CapturedRow;
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

/** A `replication_peers` row as node-pg returns it. */
interface PeerDbRow {
  name: string;
  url: string;
  attempts: number;
  next_attempt_at: Date | null;
  last_success_at: Date | null;
  last_error: string | null;
  last_error_at: Date | null;
  recent_lag_ms: number[] | null;
}

interface OutboxDbRow {
  id: string | number;
  entity: ReplicatedEntity;
  payload: CapturedRow;
  created_at: Date;
}

const LAG_SAMPLES = 1_000;

/** The entities that belong to a user (`user_id`): a peer applies them only once it has the user. */
const OWNED = new Set<ReplicatedEntity>(['sessions', 'email_challenges', 'mfa_factors', 'mfa_recovery_codes', 'mfa_token_uses', 'user_identities', 'passkeys']);

/**
 * The transport side of replication: the peers table, the outbox the capture trigger fills, and
 * what the shipper does with it (lease, acknowledge, back off, dead-letter), the backlog and lag
 * samples for status, and the snapshot a new peer starts from. It never reads a payload's
 * content (but a session's `user_id`, to send its foreign owner first): rows ship as captured.
 */
export class OutboxRepo {
  constructor(private readonly db: Db) {}

  /**
   * Makes `replication_peers` match the config. A peer seen for the first time gets a snapshot
   * of everything that replicates — users, live sessions, public keys, live e-mail challenges,
   * service clients, live second factors and recovery codes, unexpired single-use ids, live
   * provider identities and passkeys, users first — so a region added later starts complete (a
   * user's second factor is asked for there from the start); the trigger then captures changes
   * from this commit on.
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
             select ?, 'signing_keys', to_jsonb(k) - 'private_jwk_encrypted' from signing_keys k
           union all
             select ?, 'email_challenges', to_jsonb(c) from email_challenges c where c.ended_at is null and c.expires_at > ?
           union all
             select ?, 'service_clients', to_jsonb(sc) from service_clients sc
           union all
             select ?, 'mfa_factors', to_jsonb(f) from mfa_factors f where f.removed_at is null
           union all
             select ?, 'mfa_recovery_codes', to_jsonb(rc) from mfa_recovery_codes rc where rc.ended_at is null
           union all
             select ?, 'mfa_token_uses', to_jsonb(tu) from mfa_token_uses tu where tu.expires_at > ?
           union all
             select ?, 'user_identities', to_jsonb(i) from user_identities i where i.removed_at is null
           union all
             select ?, 'passkeys', to_jsonb(pk) from passkeys pk where pk.removed_at is null`,
          [peer, peer, now, peer, peer, now, peer, peer, peer, peer, now, peer, peer],
        );
      }
      return added;
    });
  }

  async peer(name: string): Promise<PeerRow | undefined> {
    const row = await guard(this.db.writer<PeerDbRow>('replication_peers').where({ name }).first());
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
      const result = await trx.raw<{ rows: OutboxDbRow[] }>(
        `update replication_outbox o set leased_until = clock_timestamp() + (? * interval '1 millisecond')
          where o.id in (select id from replication_outbox
                          where peer = ? and dead_at is null
                          order by id limit ?)
            and not exists (select 1 from replication_outbox l where l.peer = ? and l.leased_until > clock_timestamp())
        returning o.id, o.entity, o.payload, o.created_at`,
        [leaseMs, peer, limit, peer],
      );
      return result.rows.map((r) => ({ id: Number(r.id), entity: r.entity, payload: r.payload, createdAt: r.created_at })).sort((a, b) => a.id - b.id);
    });
  }

  /**
   * The users of these entries' sessions, e-mail challenges, second factors, recovery codes,
   * single-use ids, identities and passkeys that are homed in another region,
   * as `users` changes to send first: a peer that has not heard of them from their home region
   * (down, or slower) can still apply the sessions and challenges instead of holding up this
   * region's whole stream. Applying a user it already has is a no-op (higher version wins).
   */
  async foreignOwners(entries: OutboxEntry[], region: string): Promise<Array<{ entity: 'users'; payload: CapturedRow }>> {
    const ids = [...new Set(entries.filter((e) => OWNED.has(e.entity)).map((e) => e.payload.user_id))].filter((id): id is string => typeof id === 'string');
    if (ids.length === 0) return [];
    const result = await this.db.writer.raw<{ rows: Array<{ payload: CapturedRow }> }>(
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
      this.db.writer.raw<{ rows: Array<PeerDbRow & { backlog: string; dead: string; oldest: Date | null }> }>(
        `select p.*,
                (select count(*) from replication_outbox o where o.peer = p.name and o.dead_at is null) as backlog,
                (select count(*) from replication_outbox o where o.peer = p.name and o.dead_at is not null) as dead,
                (select min(created_at) from replication_outbox o where o.peer = p.name and o.dead_at is null) as oldest
           from replication_peers p order by p.name`,
      ),
    );
    return rows.rows.map((r) => ({ ...toPeer(r), backlog: Number(r.backlog), deadLettered: Number(r.dead), oldestPendingAt: r.oldest }));
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
}

function toPeer(r: PeerDbRow): PeerRow {
  return {
    name: r.name,
    url: r.url,
    attempts: Number(r.attempts),
    nextAttemptAt: r.next_attempt_at,
    lastSuccessAt: r.last_success_at,
    lastError: r.last_error,
    lastErrorAt: r.last_error_at,
    recentLagMs: r.recent_lag_ms ?? [],
  };
}
