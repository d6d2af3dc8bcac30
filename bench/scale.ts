/**
 * Scale benchmark: does latency stay flat as the user base grows? On its own database, with a
 * real `authctl serve` child (bench/lib/env.ts), it seeds users and sessions in steps (10k → 100k
 * → 1M → 3M by default, then `--users`; incremental, so 10M users cost 10M rows in all) and at
 * each step measures, with autocannon (bench/lib/load.ts):
 * - refresh: every connection rotates its own refresh-token chains, over its own set of
 *   distinct seeded sessions drawn at random from the whole table (round-robin, so the rows
 *   touched are spread over the table, not a handful of hot ones);
 * - login: every request logs in as a random seeded user (argon2id-bound);
 * and reports req/s and p50/p95/p99, PostgreSQL bytes per user and per session (table and
 * indexes) and the database size, and how long `authctl stats` and `authctl user list` take
 * (bench/lib/admin-timings.ts). After the last step:
 * - back to back: a second region seeded to `--reference` users (default 1M) and the largest
 *   one are measured in alternation (refresh, then login; ABBA over `--rounds` rounds), so the
 *   ratio of their p99s is not a change of the machine's load between two runs far apart;
 * - cleanup: `--expired` sessions (default 1M) that expired a day ago are added, a real
 *   `authctl worker` runs the pg-boss cleanup job (batches of `--cleanup-batch-size`) while the
 *   refresh load runs (bench/lib/cleanup-load.ts): its duration, and refresh latency before and
 *   during;
 * - Redis bytes per cached session and per cached user profile (entries written by the server).
 * Writes JSON to bench/results/scale-<ISO>.json.
 *
 * The machine is shared (2 cores: server, PostgreSQL and load generator already compete; and
 * the PostgreSQL server too, where anyone's DROP DATABASE forces a checkpoint), so each phase
 * first waits (bounded) for other processes to go quiet, records how much CPU they took and how
 * many checkpoints ran meanwhile, and is run again when that was over 30 % of a core or any
 * checkpoint; the verdict names steps that stayed disturbed.
 *
 *   node dist/bench/scale.js --users 10000000 [--connections 16] [--duration 10] [--login-duration 10]
 *     [--steps 10000,100000,1000000,3000000] [--sessions-per-connection 256] [--warmup 2] [--quiet-wait 60]
 *     [--retries 2] [--reference 1000000 | 0] [--rounds 2] [--expired 1000000 | 0] [--cleanup-batch-size 1000]
 *     [--pg-url postgres://…/postgres] [--redis redis://127.0.0.1:6379 | --redis '']
 *
 * Library use (bench/run.ts `--users N`): `await runScale({ pgUrl, redisUrl, users: N })`.
 */
import { existsSync, readFileSync, statfsSync } from 'node:fs';
import { loadavg } from 'node:os';
import { pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import { Redis } from 'ioredis';
import pg from 'pg';
import { OWASP_ARGON2_MINIMUM } from '../src/core/users/password-hasher.js';
import { timeAdminReads, type AdminTimings } from './lib/admin-timings.js';
import { inParallel, JSON_HEADERS, postJson } from './lib/api.js';
import { measureCleanupUnderLoad, startCleanupWorker, type CleanupDone, type LatencyWindow } from './lib/cleanup-load.js';
import { machineCores, waitForQuiet } from './lib/cpu.js';
import { Cleanup, DEFAULT_PG_URL, DEFAULT_REDIS_URL, scanKeys, startEnvironment, type Environment } from './lib/env.js';
import { measure, warmUp, type LoadSpec, type LoadTarget } from './lib/load.js';
import { RESULTS_DIR, resultPath, revision, writeJson } from './lib/results.js';
import { round } from './lib/stats.js';
import { sampleSessions, seed, seedExpiredSessions, SEED_PASSWORD, type SampledSession } from './seed.js';

export const DEFAULT_SCALE_STEPS = [10_000, 100_000, 1_000_000, 3_000_000] as const;
/** The region the largest one is compared with back to back, and the expired sessions the cleanup is measured on. */
export const DEFAULT_REFERENCE_USERS = 1_000_000;
export const DEFAULT_EXPIRED_SESSIONS = 1_000_000;
/** The target of a 10× larger region: p99 at most this times the reference's. */
const P99_TARGET_RATIO = 1.2;
/** Other processes' CPU (% of one core) above which a phase counts as disturbed. */
const NOISY_PCT = 30;

export interface ScaleOptions {
  /** Any database URL of the PostgreSQL server; a fresh database is created beside it and dropped after. */
  pgUrl: string;
  /** Redis for the server's cache (and the Redis sizes); without it the server caches in process and Redis sizes are skipped. */
  redisUrl?: string | undefined;
  /** Users at the last step. */
  users: number;
  /** User counts to measure at; default 10k, 100k, 1M below `users`, then `users`. */
  steps?: number[] | undefined;
  /** Concurrent connections per phase; default 16. */
  connections?: number | undefined;
  /** Refresh phase length, s; default 10. */
  duration?: number | undefined;
  /** Login phase length, s; default `duration` (login p99 needs the samples: ~80 logins/s on 2 cores). */
  loginDuration?: number | undefined;
  /** Distinct sessions each connection rotates through during the refresh phase; default 256. */
  sessionsPerConnection?: number | undefined;
  /** Warm-up before the first step (refresh and login, each this long, discarded), s; default 2. */
  warmup?: number | undefined;
  /**
   * Before each phase, wait up to this long (s) for the machine to be idle (other processes using
   * under 30 % of a core), so a neighbour's build does not pass for a scale effect; default 60, 0: don't.
   */
  quietWait?: number | undefined;
  /** Extra runs of a phase disturbed by other processes (over 30 % of a core); default 2. */
  retries?: number | undefined;
  /** Server-written cache entries to size per kind; default 200. */
  redisSamples?: number | undefined;
  /**
   * Users of the region measured back to back with the largest step; default 1M when the largest
   * step is over 1M, else none; 0: none.
   */
  reference?: number | undefined;
  /** Alternations of the back-to-back comparison (ABBA…); default 2. */
  rounds?: number | undefined;
  /** Expired sessions the cleanup job is measured on, at the largest step; default 1M; 0: no cleanup run. */
  expired?: number | undefined;
  /** `jobs.cleanupBatchSize` of the worker; default 1,000 (the configuration's default). */
  cleanupBatchSize?: number | undefined;
  /** Runs of each admin command timed; default 3. */
  adminRuns?: number | undefined;
  /** Where to write scale-<ISO>.json; default bench/results; null: don't write. */
  resultsDir?: string | null | undefined;
  /** Print the tables to stdout at the end; default true. */
  print?: boolean | undefined;
  /** Progress lines; default stderr. */
  log?: ((line: string) => void) | undefined;
}

export interface PhaseResult {
  requests: number;
  /** Non-2xx responses plus connection errors and timeouts. */
  errors: number;
  /** Successful responses per second. */
  rps: number;
  /** Latency, ms. */
  p50: number;
  p95: number;
  p99: number;
  max: number;
  /**
   * CPU, % of one core (bench/lib/cpu.ts): the server, the load generator (this process),
   * PostgreSQL (our database's backends and the shared background processes), Redis.
   */
  serverCpuPct: number;
  loadCpuPct: number;
  pgCpuPct: number;
  redisCpuPct: number;
  /** Whole machine (all cores = 100 × cores), and what of it none of the above used (other work on the machine: noise). */
  machineCpuPct: number;
  otherCpuPct: number;
  /** Seconds spent waiting, before the phase, for other work on the machine to quiet down. */
  quietWaitS: number;
  /**
   * PostgreSQL checkpoints during the phase. The server is shared: every DROP DATABASE anywhere on
   * it forces one, and its write burst shows up in our commit latency (p99) and nowhere in CPU.
   */
  checkpoints: number;
  /**
   * Block devices during the phase (/proc/diskstats): writes and flushes per second and their
   * mean service time, ms. Every refresh and login commit waits for a WAL flush, so a slow disk
   * (a neighbour's I/O on a shared one) shows here and in p99 before anywhere else.
   */
  disk: { writesPerS: number; writeMs: number; flushesPerS: number; flushMs: number };
  /** Runs it took (a run disturbed by other processes or by a checkpoint is repeated). */
  attempts: number;
  /** The machine's load average (1, 5, 15 min) as the (counted) run started. */
  loadAvg: number[];
}

export interface TableSize {
  rows: number;
  /** pg_table_size: heap + TOAST + free space and visibility maps. */
  tableBytes: number;
  /** pg_indexes_size. */
  indexBytes: number;
  /** pg_total_relation_size. */
  totalBytes: number;
  perRow: { table: number; indexes: number; total: number };
  indexes: Record<string, number>;
}

export interface StepResult {
  users: number;
  sessions: number;
  seed: { insertedUsers: number; usersPerSecond: number; insertMs: number; analyzeMs: number; checkpointMs: number; totalMs: number };
  /** Sizes right after seeding (and VACUUM ANALYZE), before any traffic. */
  pg: { users: TableSize; sessions: TableSize };
  /** pg_database_size after seeding: every table, index, pg-boss's schema and the catalogue. */
  databaseBytes: number;
  refresh: PhaseResult;
  login: PhaseResult;
  /** `authctl stats` and `authctl user list`, after the load phases. */
  admin: AdminTimings;
}

/** One round of the back-to-back comparison. */
export interface ComparisonRound {
  order: number[];
  refresh: Record<string, PhaseResult>;
  login: Record<string, PhaseResult>;
}

export interface Comparison {
  /** The two user counts (reference, largest). */
  users: [number, number];
  seedMs: number;
  rounds: ComparisonRound[];
  /** Median over the rounds of each side's p99, and their ratio (largest / reference). */
  refreshP99: [number, number];
  loginP99: [number, number];
  refreshP99Ratio: number;
  loginP99Ratio: number;
  withinTarget: boolean;
}

export interface CleanupResult {
  users: number;
  expired: number;
  seedMs: number;
  batchSize: number;
  job: CleanupDone;
  /** Deleted sessions per second over the pass. */
  perSecond: number;
  /** Stale sessions left afterwards (should be 0). */
  leftOver: number;
  /** Refresh measured just before (same worker running, idle) and while the job ran. */
  before: PhaseResult;
  during: LatencyWindow;
  duringLoadAvg: number[];
  duringCpu: { serverCpuPct: number; pgCpuPct: number; otherCpuPct: number; machineCpuPct: number };
}

export interface RedisEntrySize {
  keys: number;
  avgBytes: number;
  minBytes: number;
  maxBytes: number;
  encoding: string;
}

export interface ScaleResult {
  /** When the run started. */
  at: string;
  /** What was measured (bench/lib/results.ts). */
  revision: { commit: string; uncommitted: string[] };
  node: string;
  cpus: number;
  connections: number;
  durationS: number;
  loginDurationS: number;
  sessionsPerConnection: number;
  cache: 'redis' | 'memory';
  steps: StepResult[];
  /** Seeding time over every step (insert, VACUUM ANALYZE, CHECKPOINT), ms. */
  seedingMs: number;
  comparison: Comparison | null;
  cleanup: CleanupResult | null;
  /** Bytes per entry (MEMORY USAGE, which leaves out the ~40 B of the key's TTL entry). */
  redis: { session: RedisEntrySize; revokedSession: RedisEntrySize; user: RedisEntrySize } | null;
  /** p99 at the largest step over p99 at the smallest, and the worst step over the smallest. */
  flat: {
    refreshP99Ratio: number;
    loginP99Ratio: number;
    refreshWorstRatio: number;
    loginWorstRatio: number;
    within1_5x: boolean;
    /** Steps (user counts) still disturbed (other processes over 30 % of a core, or a checkpoint) after the retries: their numbers are suspect. */
    noisySteps: number[];
  };
  file?: string;
}

/** The user counts measured for `users` (default steps below it, then `users` itself). */
export function scaleSteps(users: number, steps?: readonly number[]): number[] {
  const list = steps?.length ? [...steps] : [...DEFAULT_SCALE_STEPS.filter((s) => s < users), users];
  return [...new Set(list.filter((s) => s > 0 && s <= users))].sort((a, b) => a - b);
}

/** Seeds in steps and measures refresh and login latency at each; see the file comment. */
export async function runScale(opts: ScaleOptions): Promise<ScaleResult> {
  const log = opts.log ?? ((line: string) => console.error(line));
  const say = (line: string) => log(`scale: ${line}`);
  const connections = opts.connections ?? 16;
  const duration = opts.duration ?? 10;
  const loginDuration = opts.loginDuration ?? duration;
  const perConnection = opts.sessionsPerConnection ?? 256;
  const warmup = opts.warmup ?? 2;
  const steps = scaleSteps(opts.users, opts.steps);
  if (steps.length === 0) throw new Error('runScale: no step to measure (users must be positive)');
  const largest = steps[steps.length - 1]!;
  const reference = opts.reference ?? (largest > DEFAULT_REFERENCE_USERS ? DEFAULT_REFERENCE_USERS : 0);
  if (reference >= largest && reference > 0) throw new Error(`runScale: the reference (${reference} users) must be smaller than the largest step (${largest})`);
  const expired = opts.expired ?? DEFAULT_EXPIRED_SESSIONS;
  const batchSize = opts.cleanupBatchSize ?? 1_000;

  const cleanup = new Cleanup();
  const interrupted = new AbortController();
  const untrap = cleanup.exitOnSignal(say, () => interrupted.abort());
  try {
    await checkDisk(opts.pgUrl, largest + reference, expired, say);
    // The seeded hash is made at these parameters: logins verify at full cost, never rehash.
    const serverEnv = {
      AUTHCTL_HASH_MEMORY_COST: String(OWASP_ARGON2_MINIMUM.memoryCost),
      AUTHCTL_HASH_TIME_COST: String(OWASP_ARGON2_MINIMUM.timeCost),
      AUTHCTL_HASH_PARALLELISM: String(OWASP_ARGON2_MINIMUM.parallelism),
    };
    const region = async (name: string): Promise<Region> => {
      const env = await startEnvironment({ name, pgUrl: opts.pgUrl, redis: opts.redisUrl ?? 'none', serverEnv, cleanup, log: say });
      // Seeded rows and minted refresh tokens must be the server's own region and secret.
      const { region: home, secret } = env.config;
      if (!secret) throw new Error('scale: the server has no secret');
      return {
        env,
        phases: {
          target: { base: env.base, serverPid: env.serverPid, database: env.databaseName, connections, signal: interrupted.signal },
          admin: env.admin,
          quietWaitS: opts.quietWait ?? 60,
          say,
        },
        sample: (count, users) => sampleSessions(env.databaseUrl, { count, users, region: home, secret }),
        seed: (users, startIndex) => seed(env.databaseUrl, { users, startIndex, region: home, secret, now, passwordHash, sample: 0, log }),
      };
    };
    const now = new Date();
    let passwordHash: string | undefined;
    const secs = (ms: number) => (ms / 1000).toFixed(1);

    // A phase during which other work took a noticeable share of the machine, or PostgreSQL
    // checkpointed, is run again; the least disturbed run counts.
    const measured = async (name: string, run: () => Promise<PhaseResult>): Promise<PhaseResult> => {
      let best = await run();
      for (let attempt = 2; attempt <= 1 + (opts.retries ?? 2) && disturbed(best); attempt++) {
        const why = `other processes ${best.otherCpuPct} % of a core, ${best.checkpoints} checkpoint(s)`;
        say(`${name} was disturbed (${why}); measuring again (attempt ${attempt})`);
        const again = await run();
        if (disturbance(again) < disturbance(best)) best = again;
        best = { ...best, attempts: attempt };
      }
      return best;
    };
    const refreshOf = (r: Region, users: number) =>
      measured(`refresh at ${users}`, async () => {
        const sessions = await r.sample(connections * perConnection, users);
        say(`${users} users: refresh ${duration} s over ${sessions.length} sessions`);
        return phase(r.phases, refreshSpec(sessions, connections, duration));
      });
    const loginOf = (r: Region, users: number) =>
      measured(`login at ${users}`, () => {
        say(`${users} users: login ${loginDuration} s`);
        return phase(r.phases, loginSpec(users, loginDuration));
      });
    const warm = async (r: Region, users: number) => {
      if (warmup <= 0) return;
      say(`warm-up ${warmup} s refresh + ${warmup} s login`);
      await warmUp(r.phases.target, refreshSpec(await r.sample(connections * 8, users), connections, warmup), warmup);
      await warmUp(r.phases.target, loginSpec(users, warmup), warmup);
    };
    const line = (p: PhaseResult) => `${p.rps}/s p99 ${p.p99} ms (${p.errors} errors, load ${p.loadAvg[0]})`;

    const big = await region('scale');
    // Written after every step too (`partial: true`): a long run that fails late keeps what it measured.
    const startedAt = new Date().toISOString();
    const dir = opts.resultsDir === undefined ? RESULTS_DIR : opts.resultsDir;
    const file = dir === null ? undefined : resultPath(dir, 'scale-', startedAt);
    const progress = (data: object) => {
      if (file) writeJson(file, { at: startedAt, revision: revision(), partial: true, ...data });
    };
    let seeded = 0;
    let seedingMs = 0;
    const results: StepResult[] = [];
    for (const [stepIndex, target] of steps.entries()) {
      if (interrupted.signal.aborted) throw new Error('scale: interrupted');
      say(`seeding user${seeded}…user${target - 1}`);
      const s = await big.seed(target, seeded);
      passwordHash = s.passwordHash;
      seeded = target;
      seedingMs += s.ms.total;
      say(
        `${target} users seeded (+${s.inserted.users} in ${secs(s.ms.total)} s: insert ${secs(s.ms.insert)} s at ${s.usersPerSecond}/s, ` +
          `vacuum+analyze ${secs(s.ms.analyze)} s, checkpoint ${secs(s.ms.checkpoint)} s)`,
      );
      const sizes = await pgSizes(big.env.databaseUrl);
      if (stepIndex === 0) await warm(big, target);
      const refresh = await refreshOf(big, target);
      const login = await loginOf(big, target);
      say(`${target} users: refresh ${line(refresh)}, login ${line(login)}`);
      say(`${target} users: timing authctl stats and user list`);
      const admin = await timeAdminReads({ processEnv: big.env.processEnv, database: big.env.config.database, users: target, runs: opts.adminRuns });
      say(
        `${target} users: stats ${admin.cli.stats.medianMs} ms, user list ${admin.cli.userList.medianMs} ms (authctl --version ${admin.cli.version.medianMs} ms)`,
      );
      results.push({
        users: s.totals.users,
        sessions: s.totals.sessions,
        seed: {
          insertedUsers: s.inserted.users,
          usersPerSecond: s.usersPerSecond,
          insertMs: s.ms.insert,
          analyzeMs: s.ms.analyze,
          checkpointMs: s.ms.checkpoint,
          totalMs: s.ms.total,
        },
        pg: sizes.tables,
        databaseBytes: sizes.databaseBytes,
        refresh,
        login,
        admin,
      });
      progress({ steps: results });
    }

    let comparison: Comparison | null = null;
    if (reference > 0) {
      const ref = await region('scaleref');
      say(`back to back: seeding a region of ${reference} users`);
      const s = await ref.seed(reference, 0);
      await warm(ref, reference);
      const sides: Array<[Region, number]> = [
        [ref, reference],
        [big, largest],
      ];
      const rounds: ComparisonRound[] = [];
      for (let round = 0; round < (opts.rounds ?? 2); round++) {
        const order = round % 2 === 0 ? sides : [...sides].reverse();
        const r: ComparisonRound = { order: order.map(([, users]) => users), refresh: {}, login: {} };
        for (const [side, users] of order) r.refresh[users] = await refreshOf(side, users);
        for (const [side, users] of order) r.login[users] = await loginOf(side, users);
        say(`back to back, round ${round + 1}: ` + order.map(([, u]) => `${u}: refresh ${line(r.refresh[u]!)}, login ${line(r.login[u]!)}`).join('; '));
        rounds.push(r);
      }
      const p99s = (kind: 'refresh' | 'login', users: number) => median(rounds.map((r) => r[kind][users]!.p99));
      const refreshP99: [number, number] = [p99s('refresh', reference), p99s('refresh', largest)];
      const loginP99: [number, number] = [p99s('login', reference), p99s('login', largest)];
      comparison = {
        users: [reference, largest],
        seedMs: s.ms.total,
        rounds,
        refreshP99,
        loginP99,
        refreshP99Ratio: ratio(refreshP99[1], refreshP99[0]),
        loginP99Ratio: ratio(loginP99[1], loginP99[0]),
        withinTarget: false,
      };
      comparison.withinTarget = comparison.refreshP99Ratio <= P99_TARGET_RATIO && comparison.loginP99Ratio <= P99_TARGET_RATIO;
      progress({ steps: results, comparison });
    }

    let cleanupResult: CleanupResult | null = null;
    if (expired > 0) {
      say(`cleanup: adding ${expired} sessions that expired a day ago`);
      const seedMs = await seedExpiredSessions(big.env.databaseUrl, { count: expired, users: largest, region: big.env.config.region, log });
      const worker = await startCleanupWorker({ env: big.env, cleanup, batchSize });
      say(`cleanup: worker pid ${worker.pid} (batches of ${batchSize}); refresh before the job`);
      const before = await refreshOf(big, largest);
      say(`cleanup: refresh under the cleanup job`);
      const run = await measureCleanupUnderLoad({
        target: big.phases.target,
        spec: refreshSpec(await big.sample(connections * perConnection, largest), connections, duration),
        worker,
      });
      const leftOver = await staleSessions(big.env.databaseUrl, big.env.config.tokens.accessTtl + big.env.config.tokens.clockSkew);
      cleanupResult = {
        users: largest,
        expired,
        seedMs,
        batchSize,
        job: run.cleanup,
        perSecond: Math.round(run.cleanup.deletedSessions / Math.max(run.cleanup.durationMs / 1000, 0.001)),
        leftOver,
        before,
        during: run.during,
        duringLoadAvg: run.loadAvg,
        duringCpu: { serverCpuPct: run.cpu.server, pgCpuPct: run.cpu.postgres, otherCpuPct: run.cpu.other, machineCpuPct: run.cpu.machine },
      };
      say(
        `cleanup: ${run.cleanup.deletedSessions} sessions in ${secs(run.cleanup.durationMs)} s (${run.cleanup.batches} batches); ` +
          `refresh p99 ${before.p99} ms before, ${run.during.p99} ms during (${run.during.rps}/s)`,
      );
    }

    const redisSizes = opts.redisUrl
      ? await redisEntrySizes(big.env.base, opts.redisUrl, big.env.cachePrefix, await big.sample((opts.redisSamples ?? 200) * 2, seeded))
      : null;
    const first = results[0]!;
    const last = results[results.length - 1]!;
    const flat = {
      refreshP99Ratio: ratio(last.refresh.p99, first.refresh.p99),
      loginP99Ratio: ratio(last.login.p99, first.login.p99),
      refreshWorstRatio: ratio(Math.max(...results.map((r) => r.refresh.p99)), first.refresh.p99),
      loginWorstRatio: ratio(Math.max(...results.map((r) => r.login.p99)), first.login.p99),
      within1_5x: false,
      noisySteps: results.filter((r) => disturbed(r.refresh) || disturbed(r.login)).map((r) => r.users),
    };
    flat.within1_5x = flat.refreshWorstRatio <= 1.5 && flat.loginWorstRatio <= 1.5;
    const result: ScaleResult = {
      at: startedAt,
      revision: revision(),
      node: process.version,
      cpus: machineCores,
      connections,
      durationS: duration,
      loginDurationS: loginDuration,
      sessionsPerConnection: perConnection,
      cache: opts.redisUrl ? 'redis' : 'memory',
      steps: results,
      seedingMs,
      comparison,
      cleanup: cleanupResult,
      redis: redisSizes,
      flat,
    };
    if (file) {
      result.file = file;
      writeJson(file, result);
    }
    if (opts.print ?? true) printScale(result);
    return result;
  } finally {
    untrap();
    await cleanup.run();
  }
}

/** A region under measurement: its server and database, and how to seed and sample it. */
interface Region {
  env: Environment;
  phases: Phases;
  sample: (count: number, users: number) => Promise<SampledSession[]>;
  /** Seeds up to `users` from `startIndex` (the shared hash and clock of the run). */
  seed: (users: number, startIndex: number) => ReturnType<typeof seed>;
}

function ratio(a: number, b: number): number {
  return round(b > 0 ? a / b : 0);
}

function median(xs: number[]): number {
  const sorted = [...xs].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? sorted[mid]! : round((sorted[mid - 1]! + sorted[mid]!) / 2);
}

/**
 * Refuses to start a run the disk cannot hold: ~800 B per user with its session (rows and
 * indexes, measured), ~450 B per expired session, the WAL PostgreSQL may keep, and 2 GB to
 * spare. Only where the data directory is on this machine (a superuser can read its path).
 */
async function checkDisk(pgUrl: string, users: number, expired: number, say: (line: string) => void): Promise<void> {
  const client = new pg.Client({ connectionString: pgUrl });
  await client.connect();
  let dir: string;
  let walBytes: number;
  try {
    dir = (await client.query<{ d: string }>("select current_setting('data_directory') as d")).rows[0]!.d;
    walBytes = Number((await client.query<{ b: string }>(`select pg_size_bytes(current_setting('max_wal_size')) as b`)).rows[0]!.b);
  } catch {
    return;
  } finally {
    await client.end();
  }
  if (!existsSync(dir)) return;
  const { bavail, bsize } = statfsSync(dir);
  const free = bavail * bsize;
  const need = users * 800 + expired * 450 + walBytes * 2 + 2e9;
  const gb = (b: number) => (b / 1e9).toFixed(1);
  if (free < need) throw new Error(`scale: the run needs ~${gb(need)} GB on ${dir}; ${gb(free)} GB are free`);
  say(`disk: ~${gb(need)} GB needed, ${gb(free)} GB free on ${dir}`);
}

/** Sessions the cleanup job should have deleted (expired or revoked before its horizon). */
async function staleSessions(url: string, horizonSeconds: number): Promise<number> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    const { rows } = await client.query<{ n: string }>(
      `select count(*) as n from sessions where expires_at < now() - $1 * interval '1 second' or revoked_at < now() - $1 * interval '1 second'`,
      [horizonSeconds],
    );
    return Number(rows[0]!.n);
  } finally {
    await client.end();
  }
}

/** Prints a result as tables (stdout). */
export function printScale(result: ScaleResult): void {
  const n = (x: number) => x.toLocaleString('en-US');
  console.log(
    `\nscale: ${result.connections} connections, refresh ${result.durationS} s (${result.sessionsPerConnection} sessions per connection), ` +
      `login ${result.loginDurationS} s, cache ${result.cache}, ${result.cpus} cores, Node ${result.node}\n`,
  );
  console.table(
    result.steps.map((s) => ({
      users: n(s.users),
      'seed s': round(s.seed.totalMs / 1000, 1),
      'refresh/s': s.refresh.rps,
      'refresh p50': s.refresh.p50,
      'refresh p95': s.refresh.p95,
      'refresh p99': s.refresh.p99,
      'refresh err': s.refresh.errors,
      'login/s': s.login.rps,
      'login p50': s.login.p50,
      'login p95': s.login.p95,
      'login p99': s.login.p99,
      'login err': s.login.errors,
      'DB GB': round(s.databaseBytes / 1e9, 2),
      load: `${s.refresh.loadAvg[0]} / ${s.login.loadAvg[0]}`,
    })),
  );
  console.log(`seeding: ${round(result.seedingMs / 1000, 1)} s in all; load = 1-min load average before refresh / login`);
  console.log(
    'latencies in ms; per phase (refresh / login): CPU, % of one core (server / PostgreSQL / Redis / load generator / other processes / machine), ' +
      'checkpoints, disk:',
  );
  const cpu = (p: PhaseResult) => `${p.serverCpuPct} / ${p.pgCpuPct} / ${p.redisCpuPct} / ${p.loadCpuPct} / ${p.otherCpuPct} / ${p.machineCpuPct}`;
  console.table(
    result.steps.map((s) => ({
      users: n(s.users),
      refresh: cpu(s.refresh),
      login: cpu(s.login),
      'quiet wait s': `${s.refresh.quietWaitS} / ${s.login.quietWaitS}`,
      checkpoints: `${s.refresh.checkpoints} / ${s.login.checkpoints}`,
      'disk writes/s (ms)': `${s.refresh.disk.writesPerS} (${s.refresh.disk.writeMs}) / ${s.login.disk.writesPerS} (${s.login.disk.writeMs})`,
      'flushes/s (ms)': `${s.refresh.disk.flushesPerS} (${s.refresh.disk.flushMs}) / ${s.login.disk.flushesPerS} (${s.login.disk.flushMs})`,
      runs: `${s.refresh.attempts} / ${s.login.attempts}`,
    })),
  );
  console.log("PostgreSQL bytes per row after seeding (table = heap + maps; indexes = all of the table's):");
  console.table(
    result.steps.flatMap((s) =>
      (['users', 'sessions'] as const).map((t) => ({
        users: n(s.users),
        table: t,
        rows: n(s.pg[t].rows),
        'table B/row': s.pg[t].perRow.table,
        'indexes B/row': s.pg[t].perRow.indexes,
        'total B/row': s.pg[t].perRow.total,
        'total MB': round(s.pg[t].totalBytes / 1e6, 1),
      })),
    ),
  );
  const last = result.steps[result.steps.length - 1];
  if (last) {
    console.log(`index bytes per row at ${n(last.users)} users:`);
    console.table(
      Object.fromEntries(
        (['users', 'sessions'] as const).flatMap((t) =>
          Object.entries(last.pg[t].indexes).map(([name, bytes]) => [
            name,
            { 'B/row': round(bytes / Math.max(last.pg[t].rows, 1), 1), MB: round(bytes / 1e6, 1) },
          ]),
        ),
      ),
    );
  }
  if (result.redis) {
    console.log('Redis bytes per cached entry (MEMORY USAGE, entries written by the server):');
    console.table({
      'session (state)': result.redis.session,
      'session (revocation mark)': result.redis.revokedSession,
      'user profile': result.redis.user,
    });
  }
  console.log('authctl stats and user list, ms (median of the runs; CLI = a new process, start-up included; db = the queries alone):');
  console.table(
    result.steps.map((s) => ({
      users: n(s.users),
      'authctl --version': s.admin.cli.version.medianMs,
      stats: s.admin.cli.stats.medianMs,
      'user list': s.admin.cli.userList.medianMs,
      'list --after': s.admin.cli.userListAfter.medianMs,
      'list --search': s.admin.cli.userListSearch.medianMs,
      'db: stats': s.admin.db.statsCounts.medianMs,
      'db: page': s.admin.db.userListPage.medianMs,
      'db: search': s.admin.db.userListSearch.medianMs,
      'users shown': `${s.admin.reported.estimated.includes('users.total') ? '≈ ' : ''}${n(s.admin.reported.users)} (${n(s.admin.truth.users)})`,
      load: s.admin.loadAvg[0],
    })),
  );
  const c = result.comparison;
  if (c) {
    console.log(`back to back, ${n(c.users[0])} and ${n(c.users[1])} users in alternation (p50 / p99 ms, 1-min load):`);
    console.table(
      c.rounds.flatMap((r, i) =>
        r.order.map((users) => ({
          round: i + 1,
          users: n(users),
          'refresh/s': r.refresh[users]!.rps,
          refresh: `${r.refresh[users]!.p50} / ${r.refresh[users]!.p99}`,
          'login/s': r.login[users]!.rps,
          login: `${r.login[users]!.p50} / ${r.login[users]!.p99}`,
          load: `${r.refresh[users]!.loadAvg[0]} / ${r.login[users]!.loadAvg[0]}`,
        })),
      ),
    );
    console.log(
      `p99 ${n(c.users[1])} / ${n(c.users[0])} (median of the rounds): refresh ${c.refreshP99[1]} / ${c.refreshP99[0]} ms = ${c.refreshP99Ratio}×, ` +
        `login ${c.loginP99[1]} / ${c.loginP99[0]} ms = ${c.loginP99Ratio}× → ${c.withinTarget ? `within ${P99_TARGET_RATIO}×` : `NOT within ${P99_TARGET_RATIO}×`}`,
    );
  }
  const k = result.cleanup;
  if (k) {
    console.log(
      `cleanup job at ${n(k.users)} users: ${n(k.job.deletedSessions)} of ${n(k.expired)} expired sessions deleted in ${round(k.job.durationMs / 1000, 1)} s ` +
        `(${n(k.perSecond)}/s, ${k.job.batches} batches of ${k.batchSize}; ${n(k.leftOver)} left); refresh meanwhile: ` +
        `${k.during.rps}/s p50 ${k.during.p50} p99 ${k.during.p99} ms, ${k.during.errors} errors (before: ${k.before.rps}/s p50 ${k.before.p50} p99 ${k.before.p99} ms); ` +
        `CPU during: server ${k.duringCpu.serverCpuPct} %, PostgreSQL ${k.duringCpu.pgCpuPct} %, other ${k.duringCpu.otherCpuPct} %; load ${k.duringLoadAvg[0]} (before ${k.before.loadAvg[0]})`,
    );
  }
  const f = result.flat;
  console.log(
    `p99 largest/smallest step: refresh ${f.refreshP99Ratio}×, login ${f.loginP99Ratio}× (worst step: ${f.refreshWorstRatio}×, ${f.loginWorstRatio}×) → ` +
      (f.within1_5x ? 'flat (within 1.5×)' : 'NOT within 1.5×'),
  );
  if (f.noisySteps.length) {
    const at = f.noisySteps.map(n).join(', ');
    console.log(`caution: other processes (over 30 % of a core) or a PostgreSQL checkpoint disturbed the measurement at ${at} users; rerun on a quiet machine`);
  }
  if (result.file) console.log(`written ${result.file}`);
}

// ---------------------------------------------------------------------------------------------
// Load phases

/** What every phase measures against, besides the load itself. */
interface Phases {
  target: LoadTarget;
  /** Not a backend of our database: it counts checkpoints. */
  admin: pg.Client;
  quietWaitS: number;
  say: (line: string) => void;
}

/** Whether other work may have moved a phase's numbers; and by how much, to pick the cleanest run. */
function disturbed(r: PhaseResult): boolean {
  return r.otherCpuPct > NOISY_PCT || r.checkpoints > 0;
}
function disturbance(r: PhaseResult): number {
  return r.checkpoints * 1000 + r.otherCpuPct;
}

/** Checkpoints since the statistics were reset (PostgreSQL 17 moved them to pg_stat_checkpointer). */
async function checkpointCount(client: pg.Client): Promise<number> {
  try {
    return Number((await client.query<{ n: string }>('select num_timed + num_requested as n from pg_stat_checkpointer')).rows[0]?.n ?? 0);
  } catch {
    return Number((await client.query<{ n: string }>('select checkpoints_timed + checkpoints_req as n from pg_stat_bgwriter')).rows[0]?.n ?? 0);
  }
}

/** One measured run (bench/lib/load.ts) once the machine is quiet, with the checkpoints and disk I/O it saw. */
async function phase(phases: Phases, spec: LoadSpec): Promise<PhaseResult> {
  const { target, quietWaitS: maxWaitS, say } = phases;
  const quietWaitS =
    maxWaitS > 0
      ? await waitForQuiet({
          belowPct: NOISY_PCT,
          maxWaitS,
          signal: target.signal,
          onBusy: (busy) => say(`the machine is busy (${Math.round(busy)} % of a core used by other work); waiting up to ${maxWaitS} s for it to quiet down`),
        })
      : 0;
  if (target.signal?.aborted) throw new Error('scale: interrupted');
  const loadAvg = loadavg().map((x) => round(x));
  const checkpoints0 = await checkpointCount(phases.admin);
  const disk0 = diskStats();
  const t0 = performance.now();
  const r = await measure(target, spec);
  const window = (performance.now() - t0) / 1000;
  const disk1 = diskStats();
  const checkpoints = (await checkpointCount(phases.admin)) - checkpoints0;
  if (target.signal?.aborted) throw new Error('scale: interrupted');
  const writes = disk1.writes - disk0.writes;
  const flushes = disk1.flushes - disk0.flushes;
  return {
    requests: r.requests,
    errors: r.errors,
    rps: r.rps,
    p50: r.latencyMs.p50,
    p95: r.latencyMs.p95,
    p99: r.latencyMs.p99,
    max: r.latencyMs.max,
    serverCpuPct: r.cpu.server,
    loadCpuPct: r.cpu.loadgen,
    pgCpuPct: r.cpu.postgres,
    redisCpuPct: r.cpu.redis,
    machineCpuPct: r.cpu.machine,
    otherCpuPct: r.cpu.other,
    quietWaitS,
    checkpoints,
    disk: {
      writesPerS: Math.round(writes / window),
      writeMs: round((disk1.writeMs - disk0.writeMs) / Math.max(writes, 1)),
      flushesPerS: Math.round(flushes / window),
      flushMs: round((disk1.flushMs - disk0.flushMs) / Math.max(flushes, 1)),
    },
    attempts: 1,
    loadAvg,
  };
}

/** Each connection rotates its own share of `sessions`, round-robin, following each chain. */
function refreshSpec(sessions: SampledSession[], connections: number, durationS: number): LoadSpec {
  const shares: Array<Array<{ token: string; live: boolean }>> = Array.from({ length: connections }, () => []);
  sessions.forEach((s, i) => shares[i % connections]!.push({ token: s.refreshToken, live: true }));
  return {
    name: 'refresh',
    route: 'POST /v1/auth/refresh',
    expect: 200,
    durationS,
    connection: (c) => {
      const mine = shares[c]!;
      let i = -1;
      let current = mine[0]!;
      return [
        {
          method: 'POST',
          path: '/v1/auth/refresh',
          headers: { ...JSON_HEADERS },
          setupRequest: (req) => {
            // The next live session of this connection (a dead one is only retried if all are dead).
            for (let tries = 0; tries < mine.length; tries++) {
              current = mine[(i = (i + 1) % mine.length)]!;
              if (current.live) break;
            }
            return { ...req, body: JSON.stringify({ refreshToken: current.token }) };
          },
          onResponse: (status, body) => {
            if (status === 200) current.token = (JSON.parse(body) as { refreshToken: string }).refreshToken;
            else if (status === 401) current.live = false;
          },
        },
      ];
    },
  };
}

/** Every request logs in as a random seeded user. */
function loginSpec(users: number, durationS: number): LoadSpec {
  return {
    name: 'login',
    route: 'POST /v1/auth/login',
    expect: 200,
    durationS,
    connection: () => [
      {
        method: 'POST',
        path: '/v1/auth/login',
        headers: { ...JSON_HEADERS },
        setupRequest: (req) => ({ ...req, body: JSON.stringify({ username: `user${Math.floor(Math.random() * users)}`, password: SEED_PASSWORD }) }),
      },
    ],
  };
}

/** Writes and flushes completed, and ms spent on them, over the machine's disks (not partitions, loop or RAM devices). */
function diskStats(): { writes: number; writeMs: number; flushes: number; flushMs: number } {
  const total = { writes: 0, writeMs: 0, flushes: 0, flushMs: 0 };
  try {
    for (const line of readFileSync('/proc/diskstats', 'utf8').split('\n')) {
      const f = line.trim().split(/\s+/);
      const name = f[2];
      if (!name || /^(loop|ram|zram|sr|dm-)/.test(name) || existsSync(`/sys/class/block/${name}/partition`)) continue;
      total.writes += Number(f[7] ?? 0);
      total.writeMs += Number(f[10] ?? 0);
      total.flushes += Number(f[18] ?? 0);
      total.flushMs += Number(f[19] ?? 0);
    }
  } catch {
    // Not Linux: no disk figures.
  }
  return total;
}

// ---------------------------------------------------------------------------------------------
// Sizes

async function pgSizes(url: string): Promise<{ tables: { users: TableSize; sessions: TableSize }; databaseBytes: number }> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    const size = async (table: 'users' | 'sessions'): Promise<TableSize> => {
      const { rows } = await client.query<{ rows: string; t: string; i: string; total: string }>(
        `select (select count(*) from ${table}) as rows, pg_table_size($1::regclass) as t, pg_indexes_size($1::regclass) as i,
                pg_total_relation_size($1::regclass) as total`,
        [table],
      );
      const idx = await client.query<{ name: string; bytes: string }>(
        `select indexrelid::regclass::text as name, pg_relation_size(indexrelid) as bytes from pg_index where indrelid = $1::regclass order by 1`,
        [table],
      );
      const r = rows[0]!;
      const count = Number(r.rows);
      const per = (bytes: string) => round(Number(bytes) / Math.max(count, 1), 1);
      return {
        rows: count,
        tableBytes: Number(r.t),
        indexBytes: Number(r.i),
        totalBytes: Number(r.total),
        perRow: { table: per(r.t), indexes: per(r.i), total: per(r.total) },
        indexes: Object.fromEntries(idx.rows.map((x) => [x.name, Number(x.bytes)])),
      };
    };
    const database = await client.query<{ bytes: string }>('select pg_database_size(current_database()) as bytes');
    return { tables: { users: await size('users'), sessions: await size('sessions') }, databaseBytes: Number(database.rows[0]!.bytes) };
  } finally {
    await client.end();
  }
}

/**
 * Has the server write cache entries the way it does in production, from `sample` (half of the
 * sessions each way), then sizes them:
 * - session state: a grace retry (the previous token again, just after a refresh) loses the CAS,
 *   and the server caches the row it then reads;
 * - revocation mark: a logout marks a session revoked in the cache without reading it;
 * - user profile: GET /v1/me caches the caller's profile.
 */
async function redisEntrySizes(base: string, redisUrl: string, prefix: string, sample: SampledSession[]): Promise<NonNullable<ScaleResult['redis']>> {
  const refresh = async (token: string) => {
    const res = await postJson(`${base}/v1/auth/refresh`, { refreshToken: token });
    if (!res.ok) throw new Error(`refresh for the Redis sizes answered ${res.status}`);
    return (await res.json()) as { accessToken: string; refreshToken: string };
  };
  await inParallel(sample, 16, async (s, i) => {
    const tokens = await refresh(s.refreshToken);
    if (i % 2 === 0) {
      await (await postJson(`${base}/v1/auth/refresh`, { refreshToken: s.refreshToken })).arrayBuffer(); // grace retry → session state cached
      await (await fetch(`${base}/v1/me`, { headers: { authorization: `Bearer ${tokens.accessToken}` } })).arrayBuffer(); // profile cached
    } else {
      await (await postJson(`${base}/v1/auth/logout`, {}, tokens.accessToken)).arrayBuffer(); // revocation marked
    }
  });
  await new Promise((r) => setTimeout(r, 500)); // the cache writes are off the response path
  const redis = new Redis(redisUrl, { lazyConnect: true, maxRetriesPerRequest: 1 });
  try {
    await redis.connect();
    const state: number[] = [];
    const marks: number[] = [];
    const profiles: number[] = [];
    const encodings = { state: new Set<string>(), mark: new Set<string>(), user: new Set<string>() };
    for (const key of await scanKeys(redis, `${prefix}:sess:*`)) {
      const bytes = Number(await redis.call('MEMORY', 'USAGE', key, 'SAMPLES', '0'));
      const encoding = String(await redis.call('OBJECT', 'ENCODING', key));
      if ((await redis.hexists(key, 'userId')) && !(await redis.hexists(key, 'revokedAt'))) {
        state.push(bytes);
        encodings.state.add(encoding);
      } else if (!(await redis.hexists(key, 'userId'))) {
        marks.push(bytes);
        encodings.mark.add(encoding);
      }
    }
    for (const key of await scanKeys(redis, `${prefix}:user:*`)) {
      profiles.push(Number(await redis.call('MEMORY', 'USAGE', key, 'SAMPLES', '0')));
      encodings.user.add(String(await redis.call('OBJECT', 'ENCODING', key)));
    }
    const summary = (xs: number[], enc: Set<string>): RedisEntrySize => ({
      keys: xs.length,
      avgBytes: xs.length ? round(xs.reduce((a, b) => a + b, 0) / xs.length, 1) : 0,
      minBytes: xs.length ? Math.min(...xs) : 0,
      maxBytes: xs.length ? Math.max(...xs) : 0,
      encoding: [...enc].join(','),
    });
    return { session: summary(state, encodings.state), revokedSession: summary(marks, encodings.mark), user: summary(profiles, encodings.user) };
  } finally {
    redis.disconnect();
  }
}

// ---------------------------------------------------------------------------------------------
// Direct use: node dist/bench/scale.js --users 1000000

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const { values } = parseArgs({
    options: {
      users: { type: 'string', default: '1000000' },
      steps: { type: 'string' },
      connections: { type: 'string', default: '16' },
      duration: { type: 'string', default: '10' },
      'login-duration': { type: 'string' },
      'sessions-per-connection': { type: 'string', default: '256' },
      warmup: { type: 'string', default: '2' },
      'quiet-wait': { type: 'string', default: '60' },
      retries: { type: 'string', default: '2' },
      'pg-url': { type: 'string', default: DEFAULT_PG_URL },
      // An empty value runs the server with its in-process cache (and skips the Redis sizes).
      redis: { type: 'string', default: process.env.AUTHCTL_BENCH_REDIS_URL ?? DEFAULT_REDIS_URL },
      reference: { type: 'string' },
      rounds: { type: 'string', default: '2' },
      expired: { type: 'string' },
      'cleanup-batch-size': { type: 'string', default: '1000' },
    },
  });
  const num = (name: string, v: string | undefined) => {
    const x = Number(v);
    if (v === undefined || !Number.isFinite(x) || x <= 0) throw new Error(`--${name} must be a positive number`);
    return x;
  };
  await runScale({
    pgUrl: values['pg-url'],
    redisUrl: values.redis || undefined,
    users: num('users', values.users),
    steps: values.steps?.split(',').map((s) => num('steps', s)),
    connections: num('connections', values.connections),
    duration: num('duration', values.duration),
    loginDuration: values['login-duration'] === undefined ? undefined : num('login-duration', values['login-duration']),
    sessionsPerConnection: num('sessions-per-connection', values['sessions-per-connection']),
    warmup: Number(values.warmup),
    quietWait: Number(values['quiet-wait']),
    retries: Number(values.retries),
    reference: values.reference === undefined ? undefined : Number(values.reference),
    rounds: num('rounds', values.rounds),
    expired: values.expired === undefined ? undefined : Number(values.expired),
    cleanupBatchSize: num('cleanup-batch-size', values['cleanup-batch-size']),
  });
}
