/**
 * How long the admin reads take on a large region: `authctl stats` and `authctl user list`, run
 * as a user runs them (a new `authctl` process, its start-up included; `authctl --version` alone
 * is timed beside them, so what the table size adds shows), and the database part of each,
 * timed in this process on the repositories the commands use.
 */
import { execFile } from 'node:child_process';
import { loadavg } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import type { Config } from '../../src/config/schema.js';
import { Db } from '../../src/store/pg/db.js';
import { StatsRepo } from '../../src/store/pg/stats-repo.js';
import { UsersRepo } from '../../src/store/pg/users-repo.js';
import { ROOT } from './env.js';
import { round } from './stats.js';

const run = promisify(execFile);

export interface Timing {
  /** Wall time, ms: the median and the fastest of `runs`. */
  medianMs: number;
  minMs: number;
  runs: number;
}

export interface AdminTimings {
  /** Load average (1, 5, 15 min) before the first run. */
  loadAvg: number[];
  cli: {
    version: Timing;
    stats: Timing;
    /** The first page (50 users). */
    userList: Timing;
    /** A page from the middle (`--after user<N/2>`). */
    userListAfter: Timing;
    /** A search no user matches: a substring search reads the whole table. */
    userListSearch: Timing;
  };
  /** The same reads on the repositories, in this process (no start-up, no connection set-up). */
  db: { statsCounts: Timing; userListPage: Timing; userListSearch: Timing };
  /** What `authctl stats --json` said, beside the true counts: how far off the estimates are. */
  reported: { users: number; sessionsActive: number; estimated: string[] };
  truth: { users: number; sessionsActive: number };
}

async function time(runs: number, work: () => Promise<unknown>): Promise<Timing> {
  const ms: number[] = [];
  for (let i = 0; i < runs; i++) {
    const t0 = performance.now();
    await work();
    ms.push(performance.now() - t0);
  }
  ms.sort((a, b) => a - b);
  return { medianMs: round(ms[Math.floor(ms.length / 2)]!, 1), minMs: round(ms[0]!, 1), runs };
}

/**
 * Times the admin reads against the region `processEnv` points at (the server's environment);
 * `users` is how many were seeded (`user0`…), for a page in the middle.
 */
export async function timeAdminReads(opts: {
  processEnv: NodeJS.ProcessEnv;
  database: Config['database'];
  users: number;
  runs?: number | undefined;
}): Promise<AdminTimings> {
  const runs = opts.runs ?? 3;
  const loadAvg = loadavg().map((x) => round(x));
  const authctl = async (args: string[]) => (await run(process.execPath, [join(ROOT, 'bin/run.js'), ...args], { cwd: ROOT, env: opts.processEnv })).stdout;
  const middle = `user${Math.floor(opts.users / 2)}`;
  const nobody = 'no-such-user-anywhere';

  let report: { users: { total: number }; sessions: { active: number }; estimated: string[] } | undefined;
  const cli = {
    version: await time(runs, () => authctl(['--version'])),
    stats: await time(runs, async () => {
      report = JSON.parse(await authctl(['stats', '--json'])) as typeof report;
    }),
    userList: await time(runs, () => authctl(['user', 'list', '--json'])),
    userListAfter: await time(runs, () => authctl(['user', 'list', '--after', middle, '--json'])),
    userListSearch: await time(runs, () => authctl(['user', 'list', '--search', nobody, '--json'])),
  };

  const db = new Db(opts.database);
  try {
    const stats = new StatsRepo(db);
    const users = new UsersRepo(db);
    await db.ping();
    const now = new Date();
    const dbTimings = {
      statsCounts: await time(runs, () =>
        Promise.all([stats.userCounts(), stats.sessionCounts(now, new Date(now.getTime() - 86_400_000))]).then(() => stats.databaseLoad()),
      ),
      userListPage: await time(runs, () => users.list({ limit: 50, after: middle })),
      userListSearch: await time(runs, () => users.list({ limit: 50, search: nobody })),
    };
    // The true counts, to tell how far off the estimates are (untimed: this is the scan they avoid).
    const truth = await db.writer.raw<{ rows: Array<{ users: string; active: string }> }>(
      `select (select count(*) from users) as users, (select count(*) from sessions where expires_at > now() and revoked_at is null) as active`,
    );
    return {
      loadAvg,
      cli,
      db: dbTimings,
      reported: { users: report?.users.total ?? 0, sessionsActive: report?.sessions.active ?? 0, estimated: report?.estimated ?? [] },
      truth: { users: Number(truth.rows[0]!.users), sessionsActive: Number(truth.rows[0]!.active) },
    };
  } finally {
    await db.close();
  }
}
