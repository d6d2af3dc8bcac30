import { execFile } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import { appendFile, chown, mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import pg from 'pg';
import { freePort } from './redis-server.js';

const run = promisify(execFile);

/** Settings for a throw-away cluster: nothing here needs to survive a crash, so nothing is synced. */
const THROWAWAY_SETTINGS = [
  "listen_addresses = '127.0.0.1'",
  // TCP only: no socket file whose default directory may not exist or be writable.
  "unix_socket_directories = ''",
  'fsync = off',
  'full_page_writes = off',
  'shared_buffers = 16MB',
  'max_wal_senders = 4',
];

/**
 * The directory of PostgreSQL's server binaries (initdb, pg_ctl, pg_basebackup): `AUTHCTL_TEST_PG_BIN`,
 * else Debian's newest /usr/lib/postgresql/<version>/bin; `undefined` when there is none.
 */
export function findPostgresBin(): string | undefined {
  const fromEnv = process.env.AUTHCTL_TEST_PG_BIN;
  if (fromEnv) return existsSync(join(fromEnv, 'initdb')) ? fromEnv : undefined;
  const root = '/usr/lib/postgresql';
  if (!existsSync(root)) return undefined;
  const versions = readdirSync(root)
    .filter((v) => /^\d+$/.test(v) && existsSync(join(root, v, 'bin', 'pg_basebackup')))
    .sort((a, b) => Number(b) - Number(a));
  return versions[0] === undefined ? undefined : join(root, versions[0], 'bin');
}

/** How to run PostgreSQL's binaries: as is, or — PostgreSQL refuses to run as root — as the `postgres` OS user. */
interface Runner {
  bin: string;
  /** The OS user that owns the data directories, when we are root. */
  owner: { uid: number; gid: number } | undefined;
}

async function runner(bin: string): Promise<Runner> {
  if (process.getuid?.() !== 0) return { bin, owner: undefined };
  const id = async (flag: string) => Number((await run('id', [flag, 'postgres'])).stdout.trim());
  try {
    return { bin, owner: { uid: await id('-u'), gid: await id('-g') } };
  } catch {
    throw new Error('PostgreSQL refuses to run as root and there is no `postgres` OS user to run it as (apt-get install postgresql creates one)');
  }
}

async function exec(r: Runner, tool: string, args: string[]): Promise<void> {
  const file = r.owner ? 'runuser' : join(r.bin, tool);
  const argv = r.owner ? ['-u', 'postgres', '--', join(r.bin, tool), ...args] : args;
  try {
    await run(file, argv, { timeout: 60_000, env: { ...process.env, LC_ALL: 'C' } });
  } catch (err) {
    const e = err as { stderr?: string; message: string };
    throw new Error(`${tool} ${args.join(' ')} failed: ${e.stderr?.trim() || e.message}`, { cause: err });
  }
}

/** One PostgreSQL server of a {@link PgCluster}, started and stopped with pg_ctl. */
export class PgServer {
  constructor(
    private readonly r: Runner,
    readonly name: string,
    readonly dataDir: string,
    readonly port: number,
  ) {}

  /** The server's log, for failure messages. */
  get logFile(): string {
    return `${this.dataDir}.log`;
  }

  url(database = 'postgres'): string {
    return `postgres://postgres@127.0.0.1:${this.port}/${database}`;
  }

  /** Starts the server and waits until it accepts connections (a standby: read-only ones). */
  async start(): Promise<void> {
    try {
      await exec(this.r, 'pg_ctl', ['-D', this.dataDir, '-l', this.logFile, '-w', '-t', '30', 'start']);
    } catch (err) {
      const log = await readFile(this.logFile, 'utf8').catch(() => '');
      throw new Error(`${(err as Error).message}\n${this.name} log:\n${log.split('\n').slice(-20).join('\n')}`, { cause: err });
    }
  }

  /** Stops the server; `immediate` is a crash as far as its clients can tell (no goodbye on open connections). */
  async stop(mode: 'fast' | 'immediate' = 'immediate'): Promise<void> {
    await exec(this.r, 'pg_ctl', ['-D', this.dataDir, '-m', mode, '-w', 'stop']);
  }

  /** One statement on a connection of its own; the rows. */
  async query<R extends pg.QueryResultRow>(sql: string, params: unknown[] = [], database = 'postgres'): Promise<R[]> {
    const client = new pg.Client({ connectionString: this.url(database), connectionTimeoutMillis: 2_000 });
    await client.connect();
    try {
      return (await client.query<R>(sql, params)).rows;
    } finally {
      await client.end();
    }
  }
}

/**
 * A private PostgreSQL primary and, optionally, a streaming hot standby of it (`pg_basebackup -R
 * -X stream`), each on a free loopback port, in one temporary directory. For tests of the
 * production topology: the standby is a real replica, with real replication lag when its replay
 * is paused and real connection failures when it is stopped.
 */
export class PgCluster {
  private constructor(
    private readonly dir: string,
    readonly primary: PgServer,
    private readonly replica: PgServer | undefined,
  ) {}

  /** The standby (the cluster must have been started with `standby: true`). */
  get standby(): PgServer {
    if (!this.replica) throw new Error('this cluster has no standby');
    return this.replica;
  }

  static async start(options: { bin: string; standby?: boolean }): Promise<PgCluster> {
    const r = await runner(options.bin);
    const dir = await mkdtemp(join(tmpdir(), 'authctl-pg-'));
    if (r.owner) await chown(dir, r.owner.uid, r.owner.gid);
    const primary = new PgServer(r, 'primary', join(dir, 'primary'), await freePort());
    let standby: PgServer | undefined;
    const cluster = (): PgCluster => new PgCluster(dir, primary, standby);
    try {
      await exec(r, 'initdb', ['-D', primary.dataDir, '-U', 'postgres', '--auth=trust', '--no-sync', '--encoding=UTF8', '--locale=C']);
      await appendFile(primary.dataDir + '/postgresql.conf', [...THROWAWAY_SETTINGS, `port = ${primary.port}`, ''].join('\n'));
      // Loopback only, without a password: the standby connects for replication as postgres.
      await appendFile(primary.dataDir + '/pg_hba.conf', 'host replication postgres 127.0.0.1/32 trust\n');
      await primary.start();
      if (options.standby) {
        standby = new PgServer(r, 'standby', join(dir, 'standby'), await freePort());
        // -R writes primary_conninfo and standby.signal; --checkpoint=fast starts at once.
        await exec(r, 'pg_basebackup', [
          '-h',
          '127.0.0.1',
          '-p',
          String(primary.port),
          '-U',
          'postgres',
          '-D',
          standby.dataDir,
          '-R',
          '-X',
          'stream',
          '--checkpoint=fast',
          '--no-sync',
        ]);
        await appendFile(standby.dataDir + '/postgresql.conf', `port = ${standby.port}\n`);
        await standby.start();
        await cluster().waitForStreaming();
      }
      return cluster();
    } catch (err) {
      await cluster().stop();
      throw err;
    }
  }

  /** Polls `cond` every 50 ms until it holds; fails after `limitMs` with `what`. */
  static async until(what: string, cond: () => Promise<boolean>, limitMs = 10_000): Promise<void> {
    const started = Date.now();
    let last: unknown;
    while (Date.now() - started < limitMs) {
      try {
        if (await cond()) return;
      } catch (err) {
        last = err;
      }
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    throw new Error(`timed out after ${limitMs} ms waiting for ${what}${last ? `: ${(last as Error).message}` : ''}`);
  }

  /** Waits until the primary reports the standby streaming (pg_stat_replication). */
  waitForStreaming(limitMs = 10_000): Promise<void> {
    return PgCluster.until(
      'the standby to stream from the primary',
      async () => (await this.primary.query(`select 1 from pg_stat_replication where state = 'streaming'`)).length > 0,
      limitMs,
    );
  }

  /** Waits until the standby has replayed everything the primary had written when called. */
  async waitForReplay(limitMs = 10_000): Promise<void> {
    const [{ lsn }] = (await this.primary.query<{ lsn: string }>('select pg_current_wal_lsn()::text as lsn')) as [{ lsn: string }];
    await PgCluster.until(
      `the standby to replay up to ${lsn}`,
      async () => (await this.standby.query<{ done: boolean }>('select pg_last_wal_replay_lsn() >= $1::pg_lsn as done', [lsn]))[0]?.done === true,
      limitMs,
    );
  }

  /** Stops both servers (whatever state they are in) and removes the directory. */
  async stop(): Promise<void> {
    for (const server of [this.replica, this.primary]) {
      if (server && existsSync(join(server.dataDir, 'postmaster.pid'))) await server.stop().catch(() => undefined);
    }
    await rm(this.dir, { recursive: true, force: true });
  }
}
