/**
 * Import and export bench (README "Performance", "Import and export"):
 *
 *   npm run bench:import -- [--users 1000000] [--replicate 100000] [--pg-url URL]
 *
 * 1. Generates an NDJSON file of `--users` users in authctl's own format (what `authctl user
 *    export` writes): usernames and addresses (half of them verified), every 50th disabled, every
 *    10th with a provider identity; they share ONE bcrypt hash (cost 10) but for every 100th user,
 *    who has one of three argon2id hashes — hashing a million passwords is not what is measured.
 * 2. `authctl user import <file> --format ndjson` into an empty, migrated database.
 * 3. `authctl user export --out <file>` of that database; its lines are counted.
 * 4. Replication: two regions (A shipping to B, bench/lib/regions.ts); `authctl user import` of
 *    the first `--replicate` users into A; the time from the import's end until B has every one
 *    of them is the time to drain.
 * Each command runs as its own child process, as an admin runs it, so users/s, total time and peak
 * RSS (the kernel's high-water mark, bench/lib/max-rss.ts) are those of that command alone.
 * Prints a table and writes bench/results/import-export-<ISO>.json. Exits 1 when a step fails or
 * loses users, 2 on bad arguments.
 */
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { createReadStream, createWriteStream, mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { parseArgs } from 'node:util';
import { hashSync as bcryptHash } from '@node-rs/bcrypt';
import argon2 from 'argon2';
import pg from 'pg';
import { v7 as uuidv7 } from 'uuid';
import type { PortableUser } from '../src/admin/portable-user.js';
import { OWASP_ARGON2_MINIMUM, standardPhc } from '../src/core/users/password-hasher.js';
import { machineCores } from './lib/cpu.js';
import { adminQuery, DEFAULT_PG_URL, ROOT } from './lib/env.js';
import { BENCH_REGION_SECRET, startRegions, stopRegions, type RegionNode } from './lib/regions.js';
import { resultPath, RESULTS_DIR, revision, writeJson } from './lib/results.js';

const TARGETS = { importPerSecond: 20_000, exportPerSecond: 50_000, peakRssMb: 300 };
const PASSWORD = 'import export bench password';

const USAGE = `usage: npm run bench:import -- [--users N] [--replicate N] [--pg-url URL]
  --users N      users generated, imported and exported (default 1000000)
  --replicate N  users imported into a region with a peer, timed until the peer has them (default 100000; 0: skip)
  --pg-url URL   PostgreSQL to create the bench databases on (default ${DEFAULT_PG_URL})`;

function options(): { users: number; replicate: number; pgUrl: string } {
  try {
    const { values } = parseArgs({
      options: {
        users: { type: 'string', default: '1000000' },
        replicate: { type: 'string', default: '100000' },
        'pg-url': { type: 'string', default: DEFAULT_PG_URL },
        help: { type: 'boolean', short: 'h', default: false },
      },
    });
    if (values.help) {
      console.log(USAGE);
      process.exit(0);
    }
    const users = Number(values.users);
    const replicate = Number(values.replicate);
    if (!Number.isInteger(users) || users < 1) throw new Error('--users must be a positive integer');
    if (!Number.isInteger(replicate) || replicate < 0 || replicate > users) throw new Error('--replicate must be an integer from 0 to --users');
    return { users, replicate, pgUrl: values['pg-url'] };
  } catch (err) {
    console.error(`${(err as Error).message}\n\n${USAGE}`);
    process.exit(2);
  }
}

/** Writes `count` users to `file` as NDJSON, with backpressure; returns the bytes written. */
async function generate(file: string, count: number): Promise<number> {
  const bcrypt = bcryptHash(PASSWORD, { cost: 10 });
  const argon = await Promise.all([0, 1, 2].map(async () => standardPhc(await argon2.hash(PASSWORD, { type: argon2.argon2id, ...OWASP_ARGON2_MINIMUM }))));
  const out = createWriteStream(file);
  const base = Date.parse('2024-01-01T00:00:00Z');
  let chunk = '';
  for (let i = 0; i < count; i += 1) {
    const verified = i % 2 === 0;
    const createdAt = new Date(base + i * 1000).toISOString();
    const user: PortableUser = {
      id: uuidv7({ msecs: base + i }),
      username: `bench-${i}`,
      email: `bench-${i}@example.com`,
      emailVerified: verified,
      emailVerifiedAt: verified ? createdAt : null,
      passwordHash: i % 100 === 0 ? argon[(i / 100) % 3]! : bcrypt,
      disabled: i % 50 === 0,
      createdAt,
      identities: i % 10 === 0 ? [{ provider: 'google', subject: `google-${i}`, email: `bench-${i}@gmail.example`, emailVerified: true }] : [],
    };
    chunk += `${JSON.stringify(user)}\n`;
    if (chunk.length > 1 << 20) {
      if (!out.write(chunk)) await once(out, 'drain');
      chunk = '';
    }
  }
  out.end(chunk);
  await once(out, 'close');
  return statSync(file).size;
}

interface Run {
  seconds: number;
  peakRssMb: number;
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs `authctl …args` as a child process, timed, with its peak RSS. */
async function authctl(args: string[], env: Record<string, string>, rssFile: string): Promise<Run> {
  const started = performance.now();
  const child = spawn(process.execPath, ['--import', join(ROOT, 'dist', 'bench', 'lib', 'max-rss.js'), 'bin/run.js', ...args], {
    cwd: ROOT,
    env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '', AUTHCTL_LOG_LEVEL: 'warn', AUTHCTL_BENCH_MAX_RSS_FILE: rssFile, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout.setEncoding('utf8').on('data', (s: string) => (stdout += s));
  child.stderr.setEncoding('utf8').on('data', (s: string) => (stderr += s));
  const [code] = (await once(child, 'close')) as [number | null];
  const seconds = (performance.now() - started) / 1000;
  const peakRssMb = Number(readFileSync(rssFile, 'utf8')) / 2 ** 20;
  return { seconds, peakRssMb, code, stdout, stderr };
}

function check(run: Run, what: string): Record<string, unknown> {
  if (run.code !== 0) throw new Error(`${what} exited ${run.code}\n${run.stdout.slice(0, 2000)}\n${run.stderr.slice(0, 2000)}`);
  return JSON.parse(run.stdout) as Record<string, unknown>;
}

async function countLines(file: string): Promise<number> {
  let lines = 0;
  for await (const line of createInterface({ input: createReadStream(file) })) if (line !== '') lines += 1;
  return lines;
}

async function countUsers(url: string): Promise<number> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    return Number((await client.query<{ n: string }>('select count(*) as n from users')).rows[0]!.n);
  } finally {
    await client.end();
  }
}

/** The first `count` lines of `from`, to `to`. */
async function head(from: string, to: string, count: number): Promise<void> {
  const out = createWriteStream(to);
  let taken = 0;
  for await (const line of createInterface({ input: createReadStream(from) })) {
    if (taken === count) break;
    taken += 1;
    if (!out.write(`${line}\n`)) await once(out, 'drain');
  }
  out.end();
  await once(out, 'close');
}

const env = (dbUrl: string, region: string) => ({
  AUTHCTL_DATABASE_URL: dbUrl,
  AUTHCTL_SECRET: BENCH_REGION_SECRET,
  AUTHCTL_REGION: region,
  AUTHCTL_IDENTITY_EMAIL: 'optional',
  // The users have addresses; nothing is mailed by an import or an export.
  AUTHCTL_MAIL_TRANSPORT: 'log',
  AUTHCTL_MAIL_FROM: 'no-reply@example.com',
});

interface Step {
  users: number;
  /** The child process from start to exit (Node, oclif and the container's start included). */
  seconds: number;
  usersPerSecond: number;
  /** The command's own `seconds` (its --json report): the import or export without the process start. */
  workSeconds: number;
  workUsersPerSecond: number;
  peakRssMb: number;
}

const round2 = (v: number) => Math.round(v * 100) / 100;

const step = (users: number, run: Run, report: Record<string, unknown>): Step => {
  const work = Number(report.seconds);
  return {
    users,
    seconds: round2(run.seconds),
    usersPerSecond: Math.round(users / run.seconds),
    workSeconds: round2(work),
    workUsersPerSecond: Math.round(users / work),
    peakRssMb: Math.round(run.peakRssMb),
  };
};

async function main(): Promise<void> {
  const { users, replicate, pgUrl } = options();
  const dir = mkdtempSync(join(tmpdir(), 'authctl-bench-import-'));
  const dbName = `authctl_bench_import_${Date.now()}_${process.pid}`;
  const dbUrl = new URL(pgUrl);
  dbUrl.pathname = `/${dbName}`;
  const at = new Date().toISOString();
  let regions: RegionNode[] = [];
  try {
    const source = join(dir, 'users.ndjson');
    console.log(`generating ${users.toLocaleString('en-US')} users…`);
    const bytes = await generate(source, users);

    await adminQuery(pgUrl, `create database "${dbName}"`);
    const regionEnv = env(dbUrl.toString(), 'bench');
    check(await authctl(['migrate', '--json'], regionEnv, join(dir, 'rss-migrate')), 'authctl migrate');

    console.log('authctl user import…');
    const importRun = await authctl(['user', 'import', source, '--format', 'ndjson', '--json'], regionEnv, join(dir, 'rss-import'));
    const importReport = check(importRun, 'authctl user import');
    const imported = await countUsers(dbUrl.toString());
    if (imported !== users) throw new Error(`imported ${imported} of ${users} users`);

    console.log('authctl user export…');
    const exported = join(dir, 'export.ndjson');
    const exportRun = await authctl(['user', 'export', '--out', exported, '--json'], regionEnv, join(dir, 'rss-export'));
    const exportReport = check(exportRun, 'authctl user export');
    const lines = await countLines(exported);
    if (lines !== users) throw new Error(`exported ${lines} of ${users} users`);

    let replication: (Step & { drainSeconds: number; backlogAtImportEnd: number; batchSize: number }) | undefined;
    if (replicate > 0) {
      console.log(`replication of a ${replicate.toLocaleString('en-US')}-user import to one peer…`);
      const part = join(dir, 'part.ndjson');
      await head(source, part, replicate);
      regions = await startRegions({
        pgUrl,
        names: ['ia', 'ib'],
        label: 'import',
        overrides: { identity: { email: 'optional' }, mail: { transport: 'log', from: 'no-reply@example.com' } },
      });
      const [a, b] = regions as [RegionNode, RegionNode];
      const run = await authctl(['user', 'import', part, '--format', 'ndjson', '--json'], env(a.dbUrl, a.name), join(dir, 'rss-replicate'));
      const report = check(run, 'authctl user import (replication)');
      const importEnd = performance.now();
      const backlogAtImportEnd = (await a.container.replication.backlog.status())[0]?.backlog ?? 0;
      while ((await countUsers(b.dbUrl)) < replicate) await new Promise((resolve) => setTimeout(resolve, 50));
      const drainSeconds = (performance.now() - importEnd) / 1000;
      replication = {
        ...step(replicate, run, report),
        drainSeconds: round2(drainSeconds),
        backlogAtImportEnd,
        batchSize: a.container.config.regions.batchSize,
      };
    }

    const result = {
      at,
      revision: revision(),
      machine: { cores: machineCores },
      users,
      fileMb: Math.round(bytes / 2 ** 20),
      targets: TARGETS,
      import: { ...step(users, importRun, importReport), report: importReport },
      export: { ...step(users, exportRun, exportReport), report: exportReport },
      replication,
    };
    print(result);
    console.log(`\n${writeJson(resultPath(RESULTS_DIR, 'import-export-', at), result)}`);
  } finally {
    await stopRegions(pgUrl, regions);
    await adminQuery(pgUrl, `drop database if exists "${dbName}" with (force)`);
    rmSync(dir, { recursive: true, force: true });
  }
}

function print(r: { users: number; import: Step; export: Step; replication?: (Step & { drainSeconds: number }) | undefined }): void {
  const n = (v: number) => v.toLocaleString('en-US');
  const row = (cells: string[]) => console.log(cells.map((c, i) => (i === 0 ? c.padEnd(22) : c.padStart(11))).join(' '));
  const cells = (name: string, s: Step, target: string) => [
    name,
    n(s.users),
    String(s.seconds),
    n(s.usersPerSecond),
    String(s.workSeconds),
    n(s.workUsersPerSecond),
    n(s.peakRssMb),
    target,
  ];
  console.log('');
  row(['step', 'users', 'seconds', 'users/s', 'work s', 'work/s', 'peak RSS MB', 'target']);
  row(cells('authctl user import', r.import, `≥ ${n(TARGETS.importPerSecond)}/s`));
  row(cells('authctl user export', r.export, `≥ ${n(TARGETS.exportPerSecond)}/s`));
  if (r.replication) {
    const p = r.replication;
    row(cells('import with a peer', p, ''));
    row(['  drain to the peer', n(p.users), String(p.drainSeconds), n(Math.round(p.users / p.drainSeconds)), '', '', '', 'after import']);
  }
  console.log(`seconds: the child process, start to exit; work: the command's own report (no process start). Peak RSS target: < ${TARGETS.peakRssMb} MB`);
}

main().catch((err: unknown) => {
  console.error(err);
  process.exitCode = 1;
});
