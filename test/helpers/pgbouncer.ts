import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { chmod, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { PG_ADMIN_URL } from './db.js';
import { canConnect, freePort } from './redis-server.js';

/** Debian's pgbouncer (`apt-get install pgbouncer`); AUTHCTL_PGBOUNCER names another binary. */
export const PGBOUNCER_BIN = process.env.AUTHCTL_PGBOUNCER ?? '/usr/sbin/pgbouncer';

export function pgbouncerInstalled(): boolean {
  return existsSync(PGBOUNCER_BIN);
}

export interface PgBouncerOptions {
  /** The PostgreSQL to pool (its host, port and user are used), default the tests' one. */
  upstream?: string;
  /** Server connections per database and user (`default_pool_size`), default 3. */
  poolSize?: number;
  /** Startup parameters to drop instead of refusing the connection (`ignore_startup_parameters`). */
  ignoreStartupParameters?: string[];
  /**
   * Hand out idle server connections in turn (`server_round_robin`) instead of the most recently
   * used first: a client's next transaction then lands on another server connection, as it does
   * under production load.
   */
  serverRoundRobin?: boolean;
}

/** One row of an admin console `SHOW`. */
export type ShowRow = Record<string, string | number | null>;

/**
 * A private PgBouncer in transaction pooling mode on a free loopback port, in front of every
 * database of one PostgreSQL (`* = host=… port=…`), with its config in a temp dir and its log in
 * memory. Clients authenticate as the upstream URL's user without a password (`auth_type =
 * trust`), who is also the admin console's user. PgBouncer refuses to run as root: as root it
 * drops to `nobody` (`-u`).
 */
export class PgBouncer {
  private log = '';

  private constructor(
    private readonly child: ChildProcess,
    readonly port: number,
    readonly dir: string,
    private readonly user: string,
  ) {
    const keep = (chunk: Buffer) => {
      // The tail is what explains a failure; a long bench run would otherwise grow it for ever.
      this.log = (this.log + chunk.toString()).slice(-256 * 1024);
    };
    child.stdout?.on('data', keep);
    child.stderr?.on('data', keep);
  }

  static async start(options: PgBouncerOptions = {}): Promise<PgBouncer> {
    const upstream = new URL(options.upstream ?? PG_ADMIN_URL);
    const user = decodeURIComponent(upstream.username) || 'postgres';
    const port = await freePort();
    const dir = await mkdtemp(join(tmpdir(), 'authctl-pgbouncer-'));
    const ini = [
      '[databases]',
      `* = host=${upstream.hostname} port=${upstream.port || 5432}`,
      '',
      '[pgbouncer]',
      'listen_addr = 127.0.0.1',
      `listen_port = ${port}`,
      'unix_socket_dir =',
      'auth_type = trust',
      `auth_file = ${join(dir, 'userlist.txt')}`,
      `admin_users = ${user}`,
      'pool_mode = transaction',
      `default_pool_size = ${options.poolSize ?? 3}`,
      'max_client_conn = 500',
      ...(options.ignoreStartupParameters?.length ? [`ignore_startup_parameters = ${options.ignoreStartupParameters.join(',')}`] : []),
      ...(options.serverRoundRobin ? ['server_round_robin = 1'] : []),
      '',
    ].join('\n');
    await writeFile(join(dir, 'pgbouncer.ini'), ini);
    await writeFile(join(dir, 'userlist.txt'), `"${user}" ""\n`);
    const asRoot = process.getuid?.() === 0;
    // The unprivileged user must read the config.
    if (asRoot) await chmod(dir, 0o755);
    const child = spawn(PGBOUNCER_BIN, [...(asRoot ? ['-u', unprivilegedUser()] : []), join(dir, 'pgbouncer.ini')], {
      stdio: ['ignore', 'pipe', 'pipe'],
      detached: true,
    });
    const bouncer = new PgBouncer(child, port, dir, user);
    const deadline = Date.now() + 5_000;
    while (!(await canConnect(port))) {
      if (child.exitCode !== null || child.signalCode !== null || Date.now() > deadline) {
        await bouncer.stop();
        throw new Error(`pgbouncer did not start on port ${port}:\n${bouncer.output}`);
      }
      await new Promise((resolve) => setTimeout(resolve, 25));
    }
    return bouncer;
  }

  /** The pgbouncer process (for CPU accounting). */
  get pid(): number | undefined {
    return this.child.pid;
  }

  /** What PgBouncer logged so far (its tail). */
  get output(): string {
    return this.log;
  }

  /** `url` (of the upstream PostgreSQL) with this PgBouncer's host and port instead. */
  through(url: string): string {
    const routed = new URL(url);
    routed.hostname = '127.0.0.1';
    routed.port = String(this.port);
    return routed.toString();
  }

  /** `SHOW <what>` on the admin console (e.g. "SERVERS", "CLIENTS", "POOLS"). */
  async show(what: string): Promise<ShowRow[]> {
    if (!/^[A-Z_]+$/.test(what)) throw new Error(`not a SHOW command: ${what}`);
    // The admin console speaks the simple query protocol only: a query without parameters.
    const client = new pg.Client({ connectionString: `postgres://${encodeURIComponent(this.user)}@127.0.0.1:${this.port}/pgbouncer` });
    await client.connect();
    try {
      return (await client.query<ShowRow>(`SHOW ${what}`)).rows;
    } finally {
      await client.end();
    }
  }

  /** Stops the process group (SIGTERM, SIGKILL after 2 s) and removes the temp dir. */
  async stop(): Promise<void> {
    const child = this.child;
    if (child.exitCode === null && child.signalCode === null && child.pid !== undefined) {
      const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
      const signal = (name: NodeJS.Signals) => {
        try {
          process.kill(-child.pid!, name);
        } catch {
          // Already gone.
        }
      };
      signal('SIGTERM');
      const timer = setTimeout(() => signal('SIGKILL'), 2_000);
      await exited;
      clearTimeout(timer);
    }
    await rm(this.dir, { recursive: true, force: true });
  }
}

/** `nobody` where it exists, else the `postgres` account of a PostgreSQL install. */
function unprivilegedUser(): string {
  for (const name of ['nobody', 'postgres']) {
    try {
      execFileSync('id', ['-u', name], { stdio: 'ignore' });
      return name;
    } catch {
      // Try the next.
    }
  }
  throw new Error('pgbouncer refuses to run as root, and there is no user "nobody" or "postgres" to run it as');
}
