/**
 * Bulk seeding for the scale benchmark: users `user<N>` and their sessions, generated entirely
 * inside PostgreSQL (`INSERT … SELECT … FROM generate_series`), so a million rows cost one round
 * trip per batch and no client-side row building. Rows look like what the server writes:
 * - ids are UUIDv7-shaped (48-bit millisecond timestamp, version 7, variant 10) with the
 *   timestamp rising with N, so primary-key inserts append the way `uuidv7()` ids do;
 * - every user shares ONE argon2id hash of a known password, computed once at the given
 *   parameters (the server's own, so logins verify at full cost and never need a rehash);
 * - sessions are live (counter 1, created as the seeding runs, 14 days of life), with a
 *   browser-sized user agent and an IP, so bytes per session are those of real logins.
 * Incremental: `seed(url, { startIndex: 10_000, users: 100_000 })` adds user10000…user99999.
 *
 * Speed (2-core VM, ~25,000 users + sessions per second at 2M rows): the seeding connection
 * does not wait for WAL flushes (`synchronous_commit off`) and, as a superuser, runs with
 * `session_replication_role = replica`, which skips the triggers — the foreign-key checks
 * (the rows are consistent by construction) and the replication capture (no peers: it would
 * only spool each batch's transition table) — 18,000 → 25,000 users/s. The indexes stay during
 * the load: building the secondary ones after it was measured at only ~20 % faster inserts, and
 * an incremental step would rebuild them over the whole table each time (~45 s at 10M).
 * `seedExpiredSessions` adds the stale sessions the cleanup job is measured on.
 */
import argon2 from 'argon2';
import pg from 'pg';
import { ServerSecrets } from '../src/core/keys/secrets.js';
import { RefreshTokenCodec } from '../src/core/tokens/refresh-token.js';
import { OWASP_ARGON2_MINIMUM, type Argon2Params } from '../src/core/users/password-hasher.js';

export const SEED_PASSWORD = 'scale bench password 0123';
/** A current desktop Chrome user agent: what a real login stores in `sessions.user_agent`. */
export const SEED_USER_AGENT = 'Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36';

export interface SeedOptions {
  /** Seed up to this many users in all: inserts user<startIndex> … user<users - 1>. */
  users: number;
  /** Index of the first user to insert (the number already seeded); default 0. */
  startIndex?: number;
  /** Sessions per new user; default 1. */
  sessionsPerUser?: number;
  /** `home_region` of the rows and region of the minted refresh tokens; default `local`. */
  region?: string;
  /** The server secret (`AUTHCTL_SECRET`) the refresh tokens of the sample are minted with. */
  secret: string;
  /** Password of every seeded user; default {@link SEED_PASSWORD}. */
  password?: string;
  /** argon2id parameters of the shared hash; default the OWASP minimum (the server default). */
  hashParams?: Argon2Params;
  /** A hash of `password` to reuse (from an earlier call's result) instead of computing one. */
  passwordHash?: string;
  /** Sessions to return, with refresh tokens, for a latency phase; default 64. */
  sample?: number;
  /**
   * The users' clock. Keep it fixed across incremental calls so user timestamps (and so ids)
   * keep rising with N: user N is created at `now - 30 d + N s`. Sessions are created at the
   * wall-clock time of their batch + j × 10 µs (j counts the batch's sessions; seeding is slower
   * than that), so their ids land after those of every session the server created before the
   * call (logins of an earlier step) and before the ones it creates after: the session indexes
   * grow at their right edge, as in production. Seeding them in the past instead would insert
   * them in the middle of the key range and leave every B-tree leaf half full (+75% pkey size).
   */
  now?: Date;
  /** Session lifetime, s; default 14 days (the server's `tokens.refreshTtl`). */
  refreshTtlSeconds?: number;
  /** Users per INSERT statement (one transaction each); default 100,000. */
  batchSize?: number;
  /** VACUUM (ANALYZE) and CHECKPOINT afterwards (default), or only ANALYZE (false). */
  settle?: boolean;
  /** Progress lines; default none. */
  log?: (line: string) => void;
}

/** A seeded session and the refresh token that is current for it. */
export interface SampledSession {
  userIndex: number;
  username: string;
  userId: string;
  sessionId: string;
  counter: number;
  refreshToken: string;
}

export interface SeedResult {
  inserted: { users: number; sessions: number };
  totals: { users: number; sessions: number };
  /** Milliseconds: hashing the password, inserting, VACUUM/ANALYZE, CHECKPOINT, all. */
  ms: { hash: number; insert: number; analyze: number; checkpoint: number; total: number };
  /** Users inserted per second (insert phase only). */
  usersPerSecond: number;
  password: string;
  passwordHash: string;
  sample: SampledSession[];
}

/** A UUIDv7-shaped id from a timestamp expression and a 32-hex-digit random-looking expression. */
function uuid7Sql(ts: string, hex: string): string {
  return `(lpad(to_hex((extract(epoch from ${ts}) * 1000)::bigint), 12, '0') || '7' || substr(${hex}, 1, 3) || '8' || substr(${hex}, 4, 15))::uuid`;
}

// One statement per batch: users and their sessions from the same generated rows (the foreign
// key is checked at the end of the statement, when the users are there).
const INSERT_SQL = `
with g as materialized (
  select i, ts, ${uuid7Sql('ts', "md5('u' || i)")} as id
    from generate_series($1::bigint, $2::bigint) i,
         lateral (select $3::timestamptz + i * interval '1 second' as ts) t
), u as (
  insert into users (id, username, password_hash, status, home_region, created_at, updated_at, password_changed_at, version)
  select id, 'user' || i, $4::text, 'active', $5::text, ts, ts, ts, 1 from g
)
insert into sessions (id, user_id, home_region, counter, created_at, last_used_at, rotated_at, expires_at, user_agent, ip, version)
select ${uuid7Sql('st', "md5('s' || g.i || '.' || k)")}, g.id, $5::text, 1, st, st, st, st + $7::int * interval '1 second',
       $8::text, '203.0.113.' || (g.i % 254 + 1), 1
  from g cross join generate_series(0, $6::int - 1) k,
       lateral (select $9::timestamptz + ((g.i - $1::bigint) * $6::int + k) * interval '10 microseconds' as st) s`;

/**
 * Inserts users `user<startIndex>` … `user<users - 1>` and `sessionsPerUser` sessions each,
 * settles the tables (VACUUM ANALYZE + CHECKPOINT, so the measurement that follows pays for
 * neither hint bits nor the seeding's dirty pages), and returns a random sample of live sessions
 * over ALL seeded users with valid refresh tokens.
 */
export async function seed(pgUrl: string, opts: SeedOptions): Promise<SeedResult> {
  const started = performance.now();
  const start = opts.startIndex ?? 0;
  const perUser = opts.sessionsPerUser ?? 1;
  const region = opts.region ?? 'local';
  const password = opts.password ?? SEED_PASSWORD;
  const batchSize = opts.batchSize ?? 100_000;
  const now = opts.now ?? new Date();
  const log = opts.log ?? (() => undefined);
  if (!Number.isInteger(opts.users) || !Number.isInteger(start) || start < 0 || opts.users < start) {
    throw new Error(`seed: need 0 <= startIndex (${start}) <= users (${opts.users})`);
  }
  if (!Number.isInteger(perUser) || perUser < 1) throw new Error('seed: sessionsPerUser must be a positive integer');

  const passwordHash = opts.passwordHash ?? (await argon2.hash(password, { type: argon2.argon2id, ...(opts.hashParams ?? OWASP_ARGON2_MINIMUM) }));
  const hashed = performance.now();

  const client = new pg.Client({ connectionString: pgUrl });
  await client.connect();
  try {
    await fastLoad(client);
    const userEpoch = new Date(now.getTime() - 30 * 86_400_000);
    let sessions = 0;
    for (let from = start; from < opts.users; from += batchSize) {
      const to = Math.min(from + batchSize, opts.users);
      const t0 = performance.now();
      const res = await client.query(INSERT_SQL, [
        from,
        to - 1,
        userEpoch,
        passwordHash,
        region,
        perUser,
        opts.refreshTtlSeconds ?? 1_209_600,
        SEED_USER_AGENT,
        new Date(), // this batch's sessions: from now on, 10 µs apart
      ]);
      sessions += res.rowCount ?? 0;
      log(`seed: user${from}…user${to - 1} (+${to - from} users, +${res.rowCount} sessions) in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
    }
    const inserted = performance.now();

    await client.query(opts.settle === false ? 'analyze users, sessions' : 'vacuum (analyze) users, sessions');
    const analyzed = performance.now();
    if (opts.settle !== false) await client.query('checkpoint');
    const checkpointed = performance.now();

    const totals = await counts(client);
    const sample = await sampleSessions(client, { count: opts.sample ?? 64, users: opts.users, region, secret: opts.secret });
    const insertMs = inserted - hashed;
    return {
      inserted: { users: opts.users - start, sessions },
      totals,
      ms: {
        hash: Math.round(hashed - started),
        insert: Math.round(insertMs),
        analyze: Math.round(analyzed - inserted),
        checkpoint: Math.round(checkpointed - analyzed),
        total: Math.round(performance.now() - started),
      },
      usersPerSecond: insertMs > 0 ? Math.round(((opts.users - start) / insertMs) * 1000) : 0,
      password,
      passwordHash,
      sample,
    };
  } finally {
    await client.end();
  }
}

/**
 * Seeding is not the workload: do not wait for WAL flushes at every batch, and skip the
 * triggers (foreign keys, replication capture) when allowed to (superuser only).
 */
async function fastLoad(client: pg.Client): Promise<void> {
  await client.query('set synchronous_commit = off');
  try {
    await client.query('set session_replication_role = replica');
  } catch {
    // Not a superuser: the triggers run (slower, same rows).
  }
}

export interface ExpiredSeedOptions {
  /** Sessions to add. */
  count: number;
  /** Users seeded so far: session k belongs to user<k mod users>. */
  users: number;
  region?: string;
  /** Created this long ago, s; default 15 days (and expired a day ago, after 14 days of life). */
  createdAgoSeconds?: number;
  refreshTtlSeconds?: number;
  /** Sessions per INSERT; default 100,000. */
  batchSize?: number;
  log?: (line: string) => void;
}

/**
 * Adds `count` sessions that expired a day ago (created 15 days ago, ids of that time: they sort
 * before the live ones, as old sessions do), spread over the seeded users, then ANALYZEs. What the
 * cleanup job deletes (it keeps a session until access TTL + clock skew after it expired).
 * Returns the milliseconds it took.
 */
export async function seedExpiredSessions(pgUrl: string, opts: ExpiredSeedOptions): Promise<number> {
  const started = performance.now();
  const batchSize = opts.batchSize ?? 100_000;
  const createdAgo = opts.createdAgoSeconds ?? 15 * 86_400;
  const client = new pg.Client({ connectionString: pgUrl });
  await client.connect();
  try {
    await fastLoad(client);
    const epoch = new Date(Date.now() - createdAgo * 1000);
    for (let from = 0; from < opts.count; from += batchSize) {
      const to = Math.min(from + batchSize, opts.count);
      const t0 = performance.now();
      await client.query(
        `insert into sessions (id, user_id, home_region, counter, created_at, last_used_at, rotated_at, expires_at, user_agent, ip, version)
         select ${uuid7Sql('st', "md5('x' || k)")}, u.id, $4::text, 1, st, st, st, st + $5::int * interval '1 second', $6::text,
                '198.51.100.' || (k % 254 + 1), 1
           from generate_series($1::bigint, $2::bigint) k
           cross join lateral (select $3::timestamptz + k * interval '1 millisecond' as st) t
           join users u on u.username = 'user' || (k % $7::bigint)`,
        [from, to - 1, epoch, opts.region ?? 'local', opts.refreshTtlSeconds ?? 1_209_600, SEED_USER_AGENT, opts.users],
      );
      opts.log?.(`seed: expired sessions ${from}…${to - 1} in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
    }
    await client.query('analyze sessions');
    return Math.round(performance.now() - started);
  } finally {
    await client.end();
  }
}

async function counts(client: pg.Client): Promise<{ users: number; sessions: number }> {
  const { rows } = await client.query<{ users: string; sessions: string }>(
    'select (select count(*) from users) as users, (select count(*) from sessions) as sessions',
  );
  return { users: Number(rows[0]!.users), sessions: Number(rows[0]!.sessions) };
}

export interface SampleOptions {
  /** How many sessions (of distinct users). */
  count: number;
  /** Users seeded so far: the sample is drawn from user0 … user<users - 1>. */
  users: number;
  region: string;
  secret: string;
  /** User indexes to leave out (e.g. those another phase is using). */
  exclude?: ReadonlySet<number>;
}

/**
 * Live sessions of `count` distinct random seeded users (one each, the newest), with the refresh
 * token current for each: minted for the counter the row holds now, so a session an earlier
 * phase rotated is picked up where it stands. Index lookups only, so it costs the same at any
 * table size.
 */
export async function sampleSessions(client: pg.Client | string, opts: SampleOptions): Promise<SampledSession[]> {
  const available = opts.users - (opts.exclude?.size ?? 0);
  const want = Math.min(opts.count, available);
  const picked = new Set<number>();
  while (picked.size < want) {
    const i = Math.floor(Math.random() * opts.users);
    if (!opts.exclude?.has(i)) picked.add(i);
  }
  const own = typeof client === 'string' ? new pg.Client({ connectionString: client }) : undefined;
  const db = own ?? (client as pg.Client);
  if (own) await own.connect();
  try {
    const { rows } = await db.query<{ username: string; user_id: string; session_id: string; counter: string }>(
      `select distinct on (u.id) u.username, u.id as user_id, s.id as session_id, s.counter
         from users u join sessions s on s.user_id = u.id
        where u.username = any($1::text[]) and s.revoked_at is null and s.expires_at > now()
        order by u.id, s.created_at desc`,
      [[...picked].map((i) => `user${i}`)],
    );
    const codec = new RefreshTokenCodec(new ServerSecrets(opts.secret).refreshMacKeys());
    return rows.map((r) => ({
      userIndex: Number(r.username.slice(4)),
      username: r.username,
      userId: r.user_id,
      sessionId: r.session_id,
      counter: Number(r.counter),
      refreshToken: codec.encode({ region: opts.region, sessionId: r.session_id, counter: Number(r.counter) }),
    }));
  } finally {
    await own?.end();
  }
}
