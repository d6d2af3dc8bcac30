import type { ChildProcessWithoutNullStreams } from 'node:child_process';
import { chmodSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { spawnCli } from '../cli/run-cli.js';
import { waitUntil } from '../jobs/setup.js';

/** `authctl dev` spawned as a developer runs it, with what it printed so far. */
export interface DevProcess {
  child: ChildProcessWithoutNullStreams;
  /** Everything on stdout and stderr so far. */
  output(): string;
  dataDir: string;
}

/** A data folder for `authctl dev`: PostgreSQL runs as the postgres OS user when we are root, and must reach it. */
export function devDataDir(label: string): string {
  const dir = mkdtempSync(join(tmpdir(), `authctl-dev-${label}-`));
  chmodSync(dir, 0o711);
  return dir;
}

/** Spawns `authctl dev --port 0` on `dataDir` and waits until its banner has printed `ready`. */
export async function spawnDev(dataDir: string, ready: RegExp): Promise<DevProcess> {
  const child = spawnCli(['dev', '--port', '0', '--data-dir', dataDir], { env: { AUTHCTL_SECRET: undefined, AUTHCTL_LOG_LEVEL: 'warn' } });
  let output = '';
  child.stdout.setEncoding('utf8').on('data', (chunk: string) => (output += chunk));
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => (output += chunk));
  await waitUntil(() => ready.test(output) || child.exitCode !== null, `authctl dev to start:\n${output}`, 150_000);
  return { child, output: () => output, dataDir };
}

/** Stops a spawned process as Ctrl-C would; killed when it does not stop within 20 s. */
export async function stopProcess(child: ChildProcessWithoutNullStreams | undefined): Promise<void> {
  if (!child || child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((resolve) => child.once('exit', resolve));
  child.kill('SIGINT');
  await Promise.race([exited, new Promise((resolve) => setTimeout(resolve, 20_000))]);
  if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
}
