import type { ChildProcessWithoutNullStreams } from 'node:child_process';
import { expect } from 'chai';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';
import { describeRun, expectJson, runCli, spawnCli, type CliResult } from '../cli/run-cli.js';

/** Collects a child's output and resolves when a line of it matches. */
function watch(child: ChildProcessWithoutNullStreams) {
  const out = { stdout: '', stderr: '' };
  child.stdout.setEncoding('utf8').on('data', (chunk: string) => (out.stdout += chunk));
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => (out.stderr += chunk));
  const exited = new Promise<CliResult>((resolve) => child.on('close', (code, signal) => resolve({ code, signal, ...out })));
  return {
    out,
    exited,
    async waitFor(pattern: RegExp, stream: 'stdout' | 'stderr', timeoutMs = 20_000): Promise<void> {
      const deadline = Date.now() + timeoutMs;
      while (!pattern.test(out[stream])) {
        if (child.exitCode !== null || Date.now() > deadline) {
          child.kill('SIGKILL');
          throw new Error(`no ${pattern} on ${stream}\n${describeRun(await exited)}`);
        }
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
    },
    async exit(timeoutMs = 20_000): Promise<CliResult> {
      const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
      try {
        return await exited;
      } finally {
        clearTimeout(timer);
      }
    },
  };
}

function jsonLines(text: string): Array<Record<string, unknown>> {
  return text
    .split('\n')
    .filter((line) => line.startsWith('{'))
    .map((line) => JSON.parse(line) as Record<string, unknown>);
}

describe('authctl worker (and serve --with-workers) as processes', function () {
  let db: TestDatabase;

  before(async function () {
    db = await createTestDatabase('jobs_worker_cli');
  });

  after(async function () {
    await db?.drop();
  });

  it('refuses to start on a database without the job queue: exit 69, told to migrate', async function () {
    const result = await runCli(['worker'], { databaseUrl: db.url, env: { AUTHCTL_SECRET: undefined } });
    expect(result.code, describeRun(result)).to.equal(69);
    expect(result.stderr).to.match(/authctl migrate/);
  });

  it('migrate --json installs the job queue; migrate status reports its version', async function () {
    const body = expectJson<{ applied: string[]; jobs: { schema: string; version: number; queues: string[] } }>(
      await runCli(['migrate', '--json'], { databaseUrl: db.url }),
      0,
    );
    expect(body.applied).to.not.be.empty;
    expect(body.jobs.schema).to.equal('pgboss');
    expect(body.jobs.version).to.be.a('number');
    expect(body.jobs.queues).to.have.members(['cleanup', 'cache-sync', 'mail', 'email-request', 'dead-letter']);
    const status = expectJson<{ jobs: { installed: boolean; version: number; expected: number } }>(
      await runCli(['migrate', 'status', '--json'], { databaseUrl: db.url }),
      0,
    );
    expect(status.jobs).to.include({ installed: true, version: body.jobs.version, expected: body.jobs.version });
  });

  it('worker starts without a server secret, logs JSON on stdout, and exits 0 on SIGTERM after a graceful stop', async function () {
    const child = spawnCli(['worker'], { databaseUrl: db.url, env: { AUTHCTL_SECRET: undefined, AUTHCTL_LOG_LEVEL: 'info' } });
    const proc = watch(child);
    await proc.waitFor(/"event":"worker\.started"/, 'stdout');
    child.kill('SIGTERM');
    const result = await proc.exit();
    expect(result.code, describeRun(result)).to.equal(0);
    const events = jsonLines(result.stdout).map((e) => e.event);
    expect(events, describeRun(result)).to.include.members(['worker.started', 'worker.stopping', 'worker.stopped']);
    expect(events.indexOf('worker.stopped')).to.be.greaterThan(events.indexOf('worker.stopping'));
  });

  it('serve --with-workers runs the workers in the server process and stops both on SIGTERM', async function () {
    const child = spawnCli(['serve', '--with-workers', '--port', '0'], { databaseUrl: db.url, env: { AUTHCTL_LOG_LEVEL: 'info' } });
    const proc = watch(child);
    await proc.waitFor(/with workers/, 'stderr');
    child.kill('SIGTERM');
    const result = await proc.exit();
    expect(result.code, describeRun(result)).to.equal(0);
    // A server's logs are its output: JSON lines on stdout, like the worker's.
    const events = jsonLines(result.stdout).map((e) => e.event);
    expect(events, describeRun(result)).to.include.members(['worker.started', 'server.started', 'worker.stopped']);
  });
});
