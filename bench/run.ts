/**
 * `npm run bench [-- scenario…] [--connections N] [--duration S] [--warmup S] [--redis URL|none] [--pg-url URL] [--pooler pgbouncer]`
 *
 * Drives a real `authctl serve` (child process) on real PostgreSQL and Redis over loopback with
 * autocannon, one scenario after another, and measures this machine's raw ceilings (`limits`)
 * in the same run. Prints a table, writes bench/results/<ISO>.json and bench/results/chart.svg.
 * Creates and drops its own database and Redis key prefix; exits 1 if a scenario had more than
 * 1 % errors (or anything failed), 2 on bad arguments.
 */
import { cpus } from 'node:os';
import { parseArgs } from 'node:util';
import { writeChart } from './chart.js';
import { measureLimits, type Limits } from './limits.js';
import { seedUsers, type Seeded } from './lib/api.js';
import { machineBusyPct, machineCores } from './lib/cpu.js';
import { Cleanup, DEFAULT_PG_URL, DEFAULT_REDIS_URL, POOLER_SERVER_CONNECTIONS, startEnvironment } from './lib/env.js';
import type { LoadResult } from './lib/load.js';
import { RESULTS_DIR, revision } from './lib/results.js';
import type { RunContext } from './lib/scenario.js';
import { computeRatios, printReport, writeReport, type Report } from './report.js';
import { runScale } from './scale.js';
import { SCENARIOS } from './scenarios/index.js';
import { PGBOUNCER_BIN, pgbouncerInstalled } from '../test/helpers/pgbouncer.js';

const DEFAULT_SCENARIOS = ['verify', 'refresh', 'login', 'register', 'logout', 'limits'];

const USAGE = `usage: npm run bench [-- [scenario…] [options]]

scenarios (default: ${DEFAULT_SCENARIOS.join(' ')}):
${Object.values(SCENARIOS)
  .map((s) => `  ${s.name.padEnd(9)} ${s.summary}`)
  .join('\n')}
  limits    raw ceilings in-process: jose verify/s, argon2 verify/s, pg UPDATE … RETURNING commits/s

options:
  --connections N  concurrent connections (and concurrency of the limits), default 16
  --duration S     seconds per measured run, default 10
  --warmup S       unmeasured seconds before each run, default 1
  --redis URL      the server's Redis, default ${DEFAULT_REDIS_URL}; "none" for the in-process cache
  --users N        scale run instead: seed up to N users and sessions (steps 10k, 100k, 1M, 3M, N) and
                   measure refresh and login latency, storage per user/session, \`authctl stats\` and
                   \`user list\` at each step; then a 1M region back to back with the largest (N > 1M)
                   and the cleanup job on 1M expired sessions under refresh load
  --steps A,B,…    (scale) the user counts to measure at instead
  --reference N    (scale) users of the region compared back to back with the largest; 0: none
  --expired N      (scale) expired sessions for the cleanup run, default 1000000; 0: none
  --cleanup-batch-size N  (scale) jobs.cleanupBatchSize of the worker, default 1000
  --pg-url URL     PostgreSQL to create the bench database on (AUTHCTL_BENCH_PG_URL),
                   default postgres://postgres@127.0.0.1:5432/postgres
  --pooler P       none (default), or pgbouncer: the server reaches that PostgreSQL through a
                   PgBouncer the bench starts (transaction pooling, ${POOLER_SERVER_CONNECTIONS} server connections,
                   database.pooler "transaction"); needs ${PGBOUNCER_BIN}
Server settings come from the environment as for \`authctl serve\` (e.g. AUTHCTL_DATABASE_POOL_MAX,
AUTHCTL_HASH_MEMORY_COST, UV_THREADPOOL_SIZE), so the limits use the same values.`;

function usageError(message: string): never {
  console.error(`${message}\n\n${USAGE}`);
  process.exit(2);
}

const isPooler = (value: string): value is 'none' | 'pgbouncer' => value === 'none' || value === 'pgbouncer';

function parse() {
  let parsed;
  try {
    parsed = parseArgs({
      allowPositionals: true,
      options: {
        connections: { type: 'string', default: '16' },
        duration: { type: 'string', default: '10' },
        warmup: { type: 'string', default: '1' },
        redis: { type: 'string', default: DEFAULT_REDIS_URL },
        'pg-url': { type: 'string', default: DEFAULT_PG_URL },
        users: { type: 'string' },
        pooler: { type: 'string', default: 'none' },
        steps: { type: 'string' },
        reference: { type: 'string' },
        expired: { type: 'string' },
        'cleanup-batch-size': { type: 'string' },
        help: { type: 'boolean', short: 'h', default: false },
      },
    });
  } catch (err) {
    usageError((err as Error).message);
  }
  const { values, positionals } = parsed;
  if (values.help) {
    console.log(USAGE);
    process.exit(0);
  }
  const connections = Number(values.connections);
  const durationS = Number(values.duration);
  const warmupS = Number(values.warmup);
  if (!Number.isInteger(connections) || connections < 1 || connections > 1000) usageError('--connections must be a whole number from 1 to 1000');
  if (!(durationS > 0)) usageError('--duration must be a positive number of seconds');
  if (!(warmupS >= 0)) usageError('--warmup must be zero or more seconds');
  const names = positionals.length ? positionals : DEFAULT_SCENARIOS;
  const unknown = names.filter((n) => n !== 'limits' && !(n in SCENARIOS));
  if (unknown.length) usageError(`unknown scenario ${unknown.join(', ')}`);
  if (values.redis !== 'none' && !/^rediss?:\/\//.test(values.redis)) usageError('--redis must be a redis:// URL or "none"');
  const pooler = isPooler(values.pooler) ? values.pooler : usageError('--pooler must be "none" or "pgbouncer"');
  if (pooler === 'pgbouncer' && !pgbouncerInstalled()) usageError(`--pooler pgbouncer needs ${PGBOUNCER_BIN} (apt-get install pgbouncer)`);
  const users = values.users === undefined ? undefined : Number(values.users);
  if (users !== undefined && (!Number.isInteger(users) || users < 1_000)) usageError('--users must be a whole number of at least 1000');
  if (users !== undefined && pooler !== 'none') usageError('--pooler is not supported with --users');
  const count = (name: string, v: string | undefined, min: number) => {
    if (v === undefined) return undefined;
    const x = Number(v);
    if (!Number.isInteger(x) || x < min) usageError(`--${name} must be a whole number of at least ${min}`);
    return x;
  };
  const scale = {
    steps: values.steps?.split(',').map((v) => count('steps', v, 1)!),
    reference: count('reference', values.reference, 0),
    expired: count('expired', values.expired, 0),
    cleanupBatchSize: count('cleanup-batch-size', values['cleanup-batch-size'], 10),
  };
  return { connections, durationS, warmupS, names, redis: values.redis, pgUrl: values['pg-url'], users, pooler, scale };
}

async function main(): Promise<number> {
  const args = parse();
  if (args.users !== undefined) {
    await runScale({
      pgUrl: args.pgUrl,
      ...(args.redis === 'none' ? {} : { redisUrl: args.redis }),
      users: args.users,
      connections: args.connections,
      duration: args.durationS,
      ...args.scale,
    });
    return 0;
  }
  const log = (line: string) => console.log(`· ${line}`);
  const cleanup = new Cleanup();
  const interrupted = new AbortController();
  cleanup.exitOnSignal(
    (line) => console.error(`\n${line}`),
    () => interrupted.abort(),
  );

  // The server and the load generator share these cores: anything else running skews the figures.
  const busyBefore = Math.round(await machineBusyPct(1_000));
  if (busyBefore > 20)
    console.warn(`warning: the machine was ${busyBefore} % busy (of one core) before the run: results will be noisy; see the "other" column`);

  const at = new Date().toISOString();
  const scenarios: LoadResult[] = [];
  let limits: Limits | undefined;
  let report: Report | undefined;
  try {
    const env = await startEnvironment({ pgUrl: args.pgUrl, redis: args.redis, pooler: args.pooler, cleanup, log });
    const tag = Date.now().toString(36);
    let seeding: Promise<Seeded[]> | undefined;
    const ctx: RunContext = {
      target: {
        base: env.base,
        serverPid: env.serverPid,
        database: env.databaseName,
        poolerPid: env.pooler?.pid,
        connections: args.connections,
        signal: interrupted.signal,
      },
      env,
      pgUrl: args.pgUrl,
      redis: args.redis,
      durationS: args.durationS,
      warmupS: args.warmupS,
      tag,
      log,
      seeded: () => {
        seeding ??= (async () => {
          log(`seeding ${args.connections} users with one session each`);
          return seedUsers(env.base, `u-${tag}-`, args.connections, args.connections);
        })();
        return seeding;
      },
    };
    for (const name of args.names) {
      if (name === 'limits') {
        const [first] = await ctx.seeded();
        limits = await measureLimits({
          base: env.base,
          serverPid: env.serverPid,
          config: env.config,
          databaseUrl: env.databaseUrl,
          databaseName: env.databaseName,
          accessToken: first!.tokens.accessToken,
          connections: args.connections,
          log,
        });
        continue;
      }
      log(`${name}: ${SCENARIOS[name]!.summary}`);
      for (const result of await SCENARIOS[name]!.run(ctx)) {
        scenarios.push(result);
        log(`  ${result.scenario}: ${result.rps} req/s, p99 ${result.latencyMs.p99} ms, ${result.errors} errors, server CPU ${result.cpu.server} %`);
      }
    }
    report = {
      at,
      revision: revision(),
      node: process.version,
      cpus: machineCores,
      cpuModel: cpus()[0]?.model.trim() ?? '?',
      connections: args.connections,
      duration: args.durationS,
      warmup: args.warmupS,
      cacheTarget: env.cacheTarget,
      ...(env.pooler ? { pooler: { kind: env.pooler.kind, poolMode: env.pooler.poolMode, serverConnections: env.pooler.serverConnections } } : {}),
      poolMax: env.config.database.poolMax,
      hash: { ...env.config.hash },
      uvThreadpoolSize: process.env.UV_THREADPOOL_SIZE ?? '4 (default)',
      busyBeforePct: busyBefore,
      scenarios,
      ...(limits ? { limits } : {}),
      ratios: computeRatios(scenarios, limits),
      failed: scenarios.filter((s) => s.errorRate > 0.01).map((s) => s.scenario),
    };
  } catch (err) {
    console.error(`bench failed: ${(err as Error).stack ?? String(err)}`);
    if (scenarios.length)
      console.error(
        'completed before the failure (not written):',
        JSON.stringify(scenarios.map((s) => ({ scenario: s.scenario, rps: s.rps, errors: s.errors }))),
      );
    return 1;
  } finally {
    await cleanup.run();
  }

  printReport(report);
  const file = writeReport(RESULTS_DIR, report);
  console.log(`\nwritten ${file}`);
  const chart = writeChart(RESULTS_DIR);
  if (chart) console.log(`chart   ${chart}`);
  return report.failed.length ? 1 : 0;
}

process.exitCode = await main();
