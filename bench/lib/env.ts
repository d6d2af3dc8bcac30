/**
 * The environment one bench run owns: its own database on the given PostgreSQL, its own Redis
 * key prefix, and a real `authctl serve` child process on a free loopback port. Everything is
 * registered with a {@link Cleanup} so that it is torn down on success, failure and Ctrl-C.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { createServer } from 'node:net';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Redis } from 'ioredis';
import pg from 'pg';
import { loadConfig } from '../../src/config/load.js';
import type { Config } from '../../src/config/schema.js';
import { PgBouncer } from '../../test/helpers/pgbouncer.js';

/** The repository (this file is dist/bench/lib/env.js once built). */
export const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
export const DEFAULT_PG_URL = process.env.AUTHCTL_BENCH_PG_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';
export const DEFAULT_REDIS_URL = 'redis://127.0.0.1:6379';
/** The relying party the bench server's passkeys belong to (the `passkey` scenario's software authenticator signs for it). */
export const BENCH_WEBAUTHN = { rpId: 'localhost', origin: 'http://localhost:8080' } as const;

/** Async teardown steps, run last-registered first, each at most once, errors reported not thrown. */
/** Runs one statement on its own connection to `pgUrl` (create or drop a bench database). */
export async function adminQuery(pgUrl: string, sql: string): Promise<void> {
  const client = new pg.Client({ connectionString: pgUrl });
  await client.connect();
  try {
    await client.query(sql);
  } finally {
    await client.end();
  }
}

export class Cleanup {
  private readonly steps: Array<{ what: string; run: () => Promise<void> | void }> = [];
  private running: Promise<void> | undefined;

  add(what: string, run: () => Promise<void> | void): void {
    this.steps.push({ what, run });
  }

  run(): Promise<void> {
    this.running ??= (async () => {
      for (const step of this.steps.reverse()) {
        try {
          await step.run();
        } catch (err) {
          console.error(`cleanup: ${step.what} failed: ${(err as Error).message}`);
        }
      }
    })();
    return this.running;
  }

  /**
   * On SIGINT or SIGTERM: `interrupt` (stop the load: its keep-alive connections would hold the
   * server's graceful shutdown), the cleanup, exit 130. Returns what removes the handlers.
   */
  exitOnSignal(log: (line: string) => void, interrupt?: () => void): () => void {
    const onSignal = (signal: NodeJS.Signals) => {
      log(`${signal}: cleaning up`);
      interrupt?.();
      void this.run().finally(() => process.exit(130));
    };
    process.once('SIGINT', onSignal);
    process.once('SIGTERM', onSignal);
    return () => {
      process.off('SIGINT', onSignal);
      process.off('SIGTERM', onSignal);
    };
  }
}

/** Every key matching `pattern` (SCAN, so Redis is never blocked). */
export async function scanKeys(redis: Redis, pattern: string): Promise<string[]> {
  const keys: string[] = [];
  let cursor = '0';
  do {
    const [next, batch] = await redis.scan(cursor, 'MATCH', pattern, 'COUNT', 1000);
    keys.push(...batch);
    cursor = next;
  } while (cursor !== '0');
  return keys;
}

export interface EnvironmentOptions {
  /** Names the database (`authctl_<name>_…`) and the Redis key prefix (`<name>-…`); default `bench`. */
  name?: string;
  pgUrl: string;
  /** A redis:// URL, or 'none' for the server's in-process cache. */
  redis: string;
  /** Server settings over the bench's and the environment's (e.g. `AUTHCTL_HASH_MEMORY_COST`). */
  serverEnv?: Record<string, string>;
  /** Also run `authctl worker` (its own process, same settings) for the jobs the requests enqueue. */
  worker?: boolean;
  /**
   * 'pgbouncer': a PgBouncer of the run's own in transaction pooling mode in front of `pgUrl`
   * (POOLER_SERVER_CONNECTIONS server connections); the server, its migrations and its worker
   * reach the database through it, with `database.pooler: "transaction"`.
   */
  pooler?: 'none' | 'pgbouncer';
  cleanup: Cleanup;
  log: (line: string) => void;
}

export interface Environment {
  base: string;
  server: ChildProcess;
  serverPid: number;
  /** The `authctl worker` process, when asked for. */
  workerPid?: number;
  /** The bench database (dropped at cleanup), direct (the server's URL may go through `pooler`). */
  databaseUrl: string;
  /** The run's PgBouncer, when asked for. */
  pooler?: { kind: 'pgbouncer'; pid: number | undefined; poolMode: 'transaction'; serverConnections: number };
  databaseName: string;
  /** A connection to the database of `pgUrl` (not ours: its backend is not counted as our load), closed at cleanup. */
  admin: pg.Client;
  /** The configuration exactly as the server loads it (same env, same cwd). */
  config: Config;
  /** 'memory', or the Redis URL. */
  cacheTarget: string;
  /** The server's Redis key prefix (its keys are deleted at cleanup). */
  cachePrefix: string;
  /** The environment `authctl serve` runs with (for more `authctl` processes on the same region). */
  processEnv: NodeJS.ProcessEnv;
}

async function freePort(): Promise<number> {
  const probe = createServer();
  probe.listen(0, '127.0.0.1');
  await once(probe, 'listening');
  const { port } = probe.address() as { port: number };
  probe.close();
  await once(probe, 'close');
  return port;
}

async function exited(child: ChildProcess): Promise<number | null> {
  if (child.exitCode !== null || child.signalCode !== null) return child.exitCode;
  const [code] = (await once(child, 'exit')) as [number | null];
  return code;
}

/** Server connections of the bench's PgBouncer: half the server's own pool, so they are shared. */
export const POOLER_SERVER_CONNECTIONS = 5;

export async function startEnvironment(opts: EnvironmentOptions): Promise<Environment> {
  const name = opts.name ?? 'bench';
  const tag = `${Date.now()}_${process.pid}`;
  const dbName = `authctl_${name}_${tag}`;
  const admin = new pg.Client({ connectionString: opts.pgUrl });
  await admin.connect();
  opts.cleanup.add('closing the admin connection', () => admin.end());
  await admin.query(`create database ${dbName}`);
  opts.cleanup.add(`dropping database ${dbName}`, async () => {
    await admin.query(`drop database if exists ${dbName} with (force)`);
  });
  const dbUrl = new URL(opts.pgUrl);
  dbUrl.pathname = `/${dbName}`;

  let bouncer: PgBouncer | undefined;
  if (opts.pooler === 'pgbouncer') {
    bouncer = await PgBouncer.start({ upstream: opts.pgUrl, poolSize: POOLER_SERVER_CONNECTIONS });
    const started = bouncer;
    // Registered before the server: stopped after it.
    opts.cleanup.add('stopping pgbouncer', () => started.stop());
  }

  const port = await freePort();
  const prefix = `${name}-${tag}`;
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    AUTHCTL_DATABASE_URL: bouncer ? bouncer.through(dbUrl.toString()) : dbUrl.toString(),
    ...(bouncer ? { AUTHCTL_DATABASE_POOLER: 'transaction' } : {}),
    AUTHCTL_SECRET: 'bench-secret-0123456789abcdefghijklmnopqrstuvwxyz',
    AUTHCTL_HOST: '127.0.0.1',
    AUTHCTL_PORT: String(port),
    AUTHCTL_LOG_LEVEL: 'error',
    AUTHCTL_BENCH_ROUTES: 'true',
    AUTHCTL_CACHE_PREFIX: prefix,
    // All load comes from one address: per-address limits would measure the limiter's 429s.
    // Per-account throttling stays on (every login pays for its counters, as in production).
    AUTHCTL_RATE_LIMIT_REGISTER_PER_IP: '100000',
    AUTHCTL_RATE_LIMIT_IP_FAILURES: '100000',
    // One service client sends every introspection: its per-client limit would cap the figure.
    AUTHCTL_RATE_LIMIT_INTROSPECT_PER_CLIENT: '1000000',
    // Passkeys on, as the `passkey` scenario's software authenticator expects (bench/scenarios/passkey.ts).
    AUTHCTL_PASSKEYS: 'true',
    AUTHCTL_WEBAUTHN_RP_ID: BENCH_WEBAUTHN.rpId,
    AUTHCTL_WEBAUTHN_ORIGINS: BENCH_WEBAUTHN.origin,
    ...opts.serverEnv,
  };
  if (opts.redis === 'none') {
    delete env.AUTHCTL_REDIS_URL;
    env.AUTHCTL_CACHE = 'memory';
  } else {
    env.AUTHCTL_REDIS_URL = opts.redis;
    env.AUTHCTL_CACHE = 'redis';
    opts.cleanup.add(`deleting Redis keys ${prefix}:*`, async () => {
      const redis = new Redis(opts.redis, { lazyConnect: true, maxRetriesPerRequest: 1, connectTimeout: 2_000 });
      try {
        await redis.connect();
        const keys = await scanKeys(redis, `${prefix}:*`);
        for (let i = 0; i < keys.length; i += 1000) await redis.del(...keys.slice(i, i + 1000));
      } finally {
        redis.disconnect();
      }
    });
  }
  const config = loadConfig({ env, cwd: ROOT });

  const cli = (args: string[]) => spawnCli(env, args);
  const migrateCode = await exited(cli(['migrate']));
  if (migrateCode !== 0) throw new Error(`authctl migrate exited with ${migrateCode}`);

  let workerPid: number | undefined;
  if (opts.worker) workerPid = startWorker({ processEnv: env, cleanup: opts.cleanup }).pid;

  const server = cli(['serve']);
  const serverPid = server.pid;
  if (serverPid === undefined) throw new Error('authctl serve did not start');
  stopAtCleanup(server, 'authctl serve', opts.cleanup, 5_000);

  const base = `http://127.0.0.1:${port}`;
  const deadline = Date.now() + 30_000;
  for (;;) {
    if (server.exitCode !== null) throw new Error(`authctl serve exited with ${server.exitCode} before it was ready`);
    if (
      await fetch(`${base}/readyz`).then(
        (r) => r.ok,
        () => false,
      )
    )
      break;
    if (Date.now() > deadline) throw new Error('authctl serve was not ready after 30 s');
    await new Promise((r) => setTimeout(r, 100));
  }
  if (!(await fetch(`${base}/bench/baseline`)).ok) throw new Error('GET /bench/baseline is missing: does this build support http.benchRoutes?');
  opts.log(
    `server pid ${serverPid} on ${base}, database ${dbName}${bouncer ? ` through PgBouncer on port ${bouncer.port} (transaction pooling, ${POOLER_SERVER_CONNECTIONS} server connections)` : ''}, cache ${opts.redis === 'none' ? 'in-process' : `${opts.redis} (prefix ${prefix})`}`,
  );
  return {
    base,
    server,
    serverPid,
    ...(workerPid !== undefined ? { workerPid } : {}),
    databaseUrl: dbUrl.toString(),
    databaseName: dbName,
    ...(bouncer
      ? { pooler: { kind: 'pgbouncer' as const, pid: bouncer.pid, poolMode: 'transaction' as const, serverConnections: POOLER_SERVER_CONNECTIONS } }
      : {}),
    admin,
    config,
    cacheTarget: opts.redis === 'none' ? 'memory' : opts.redis,
    cachePrefix: prefix,
    processEnv: env,
  };
}

/** `authctl <args>` as the server was started: same environment, same directory. */
function spawnCli(env: NodeJS.ProcessEnv, args: string[], stdout: 'ignore' | 'pipe' = 'ignore'): ChildProcess {
  return spawn(process.execPath, [join(ROOT, 'bin/run.js'), ...args], { cwd: ROOT, env, stdio: ['ignore', stdout, 'inherit'] });
}

export interface WorkerOptions {
  processEnv: NodeJS.ProcessEnv;
  cleanup: Cleanup;
  /** Variables over `processEnv` (e.g. `AUTHCTL_CONFIG` for the job settings, `AUTHCTL_LOG_LEVEL`). */
  env?: Record<string, string>;
  /** Each line the worker writes on stdout (its JSON log); without it, stdout is ignored. */
  onLine?: (line: string) => void;
}

/** Starts `authctl worker` (its own process), stopped by the cleanup (SIGTERM, then SIGKILL after 10 s). */
export function startWorker(opts: WorkerOptions): ChildProcess & { pid: number } {
  const worker = spawnCli({ ...opts.processEnv, ...opts.env }, ['worker'], opts.onLine ? 'pipe' : 'ignore');
  if (worker.pid === undefined) throw new Error('authctl worker did not start');
  if (opts.onLine && worker.stdout) {
    const onLine = opts.onLine;
    let buffered = '';
    worker.stdout.setEncoding('utf8').on('data', (chunk: string) => {
      const lines = (buffered + chunk).split('\n');
      buffered = lines.pop() ?? '';
      for (const line of lines) onLine(line);
    });
  }
  stopAtCleanup(worker, 'authctl worker', opts.cleanup, 10_000);
  return worker as ChildProcess & { pid: number };
}

/** SIGTERM at cleanup, SIGKILL `graceMs` later; SIGKILL if this process exits without its cleanup. */
function stopAtCleanup(child: ChildProcess, what: string, cleanup: Cleanup, graceMs: number): void {
  // Last resort if we die without running the cleanup (a synchronous kill is all `exit` allows).
  const killOnExit = () => child.kill('SIGKILL');
  process.once('exit', killOnExit);
  cleanup.add(`stopping ${what}`, async () => {
    process.removeListener('exit', killOnExit);
    if (child.exitCode !== null || child.signalCode !== null) return;
    child.kill('SIGTERM');
    const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
    await exited(child);
    clearTimeout(timer);
  });
}
