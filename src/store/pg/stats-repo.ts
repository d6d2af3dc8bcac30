import { FOREIGN_HASH_SQL, HASH_CLASS_SQL } from './hash-classes.js';
import type { Db } from './db.js';
import { guard } from './errors.js';
import { countRows, EXACT_COUNT_BELOW, type RowCount } from './row-count.js';

export interface UserCounts {
  total: RowCount;
  disabled: RowCount;
}

export interface SessionCounts {
  /** Not revoked and not expired at `now`. */
  active: RowCount;
  /** Revoked at or after `revokedSince`. */
  revokedSince: RowCount;
}

/** How many users have a foreign hash of one class ({@link HASH_CLASS_SQL}; null: a string of no known shape). */
export interface HashClassCount {
  hashClass: string | null;
  count: number;
}

export interface StatsRepoOptions {
  /** Counts the planner puts at this many rows or more are its estimate, not a count; default {@link EXACT_COUNT_BELOW}. */
  exactBelow?: number;
}

/** PostgreSQL's own view of the region's database (`pg_stat_database`, `pg_stat_activity`). */
export interface DatabaseLoad {
  name: string;
  sizeBytes: number;
  /** Backends connected to this database (every client: servers, workers, pg-boss, psql). */
  connections: number;
  /** The server's `max_connections` (shared by every database of the cluster). */
  maxConnections: number;
  /** Queries running now (this one excluded). */
  activeQueries: number;
  /** Sessions holding a transaction open while doing nothing: they hold locks and block vacuum. */
  idleInTransaction: number;
  /** How long the oldest running query has been running, seconds; null when none runs. */
  longestQuerySeconds: number | null;
  /** Cumulative since `statsSince`. */
  xactCommit: number;
  xactRollback: number;
  deadlocks: number;
  /** blks_hit / (blks_hit + blks_read): share of block reads served from shared buffers. */
  blocksHitRatio: number | null;
  /** When the cumulative counters were last reset (null: never, i.e. since initdb). */
  statsSince: Date | null;
}

interface LoadRow {
  name: string;
  size_bytes: string | number;
  numbackends: number | null;
  max_connections: number;
  active_queries: string | number;
  idle_in_transaction: string | number;
  longest_query_seconds: string | number | null;
  xact_commit: string | number | null;
  xact_rollback: string | number | null;
  deadlocks: string | number | null;
  blks_hit: string | number | null;
  blks_read: string | number | null;
  stats_reset: Date | null;
}

/**
 * The read-only SQL behind `authctl stats`: counts and PostgreSQL's statistics views, each one
 * cheap at any table size. A count of many rows is the planner's estimate (src/store/pg/row-count.ts);
 * the small ones (disabled users, recent revocations) are counted exactly, each on its index.
 */
export class StatsRepo {
  private readonly exactBelow: number;

  constructor(
    private readonly db: Db,
    options: StatsRepoOptions = {},
  ) {
    this.exactBelow = options.exactBelow ?? EXACT_COUNT_BELOW;
  }

  async userCounts(): Promise<UserCounts> {
    const [total, disabled] = await Promise.all([
      this.db.read((k) => countRows(k, 'users', {}, this.exactBelow)),
      // users_disabled_idx (0007-scale-indexes).
      this.db.read((k) => countRows(k, `users where status = 'disabled'`, {}, this.exactBelow)),
    ]);
    return { total, disabled };
  }

  /**
   * Users whose password hash is still a foreign one (imported, not logged in since), by class of
   * hash: one `count(*) … group by` on `users_foreign_hash_idx`, which holds only those users.
   */
  async foreignHashCounts(): Promise<HashClassCount[]> {
    const { rows } = await guard(
      this.db.read((k) =>
        k.raw<{ rows: Array<{ cls: string | null; count: string }> }>(
          `select ${HASH_CLASS_SQL} as cls, count(*) as count from users where ${FOREIGN_HASH_SQL} group by 1`,
        ),
      ),
    );
    return rows.map((row) => ({ hashClass: row.cls, count: Number(row.count) }));
  }

  /**
   * One stored hash of each format and cost among the foreign hashes (`$2b$10$…`, `$2b$12$…`,
   * `$pbkdf2-sha256$i=27500$…`): what PasswordHasher.calibrateFloor measures. Read on the writer:
   * a hash just imported counts at once.
   */
  async foreignHashSamples(): Promise<string[]> {
    const { rows } = await guard(
      this.db.writer.raw<{ rows: Array<{ password_hash: string }> }>(
        `select distinct on (${HASH_CLASS_SQL}) password_hash from users where ${FOREIGN_HASH_SQL} order by ${HASH_CLASS_SQL}`,
      ),
    );
    return rows.map((row) => row.password_hash);
  }

  /**
   * Live sessions (`expires_at`, neither revoked nor expired: the estimate, past the threshold),
   * and sessions revoked since `revokedSince` (the partial index on `revoked_at` the revocation
   * feed uses).
   */
  async sessionCounts(now: Date, revokedSince: Date): Promise<SessionCounts> {
    const [active, revoked] = await Promise.all([
      this.db.read((k) => countRows(k, 'sessions where expires_at > :now and revoked_at is null', { now }, this.exactBelow)),
      this.db.read((k) => countRows(k, 'sessions where revoked_at >= :since', { since: revokedSince }, this.exactBelow)),
    ]);
    return { active, revokedSince: revoked };
  }

  /** Load of the writer's database (the replica, if any, is not what servers write to). */
  async databaseLoad(): Promise<DatabaseLoad> {
    const result = await guard(
      this.db.writer.raw<{ rows: LoadRow[] }>(
        `select current_database() as name,
                pg_database_size(current_database()) as size_bytes,
                current_setting('max_connections')::int as max_connections,
                d.numbackends, d.xact_commit, d.xact_rollback, d.deadlocks, d.blks_hit, d.blks_read, d.stats_reset,
                a.active_queries, a.idle_in_transaction, a.longest_query_seconds
           from (select 1) as one
           left join pg_stat_database d on d.datname = current_database()
           cross join lateral (
             select count(*) filter (where state = 'active') as active_queries,
                    count(*) filter (where state like 'idle in transaction%') as idle_in_transaction,
                    extract(epoch from max(clock_timestamp() - query_start) filter (where state = 'active')) as longest_query_seconds
               from pg_stat_activity
              where datname = current_database() and pid <> pg_backend_pid() and backend_type = 'client backend'
           ) a`,
      ),
    );
    const row = result.rows[0];
    if (!row) throw new Error('pg_stat_database returned no row');
    const hit = Number(row.blks_hit ?? 0);
    const read = Number(row.blks_read ?? 0);
    return {
      name: row.name,
      sizeBytes: Number(row.size_bytes),
      connections: Number(row.numbackends ?? 0),
      maxConnections: row.max_connections,
      activeQueries: Number(row.active_queries),
      idleInTransaction: Number(row.idle_in_transaction),
      longestQuerySeconds: row.longest_query_seconds === null ? null : Number(row.longest_query_seconds),
      xactCommit: Number(row.xact_commit ?? 0),
      xactRollback: Number(row.xact_rollback ?? 0),
      deadlocks: Number(row.deadlocks ?? 0),
      blocksHitRatio: hit + read > 0 ? hit / (hit + read) : null,
      statsSince: row.stats_reset,
    };
  }
}
