import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { expect } from 'chai';
import { TEST_SECRET } from '../helpers/app.js';

/** The folder holding package.json and bin/run.js (this file runs from dist/test/cli). */
export const repoRoot = fileURLToPath(new URL('../../../', import.meta.url));

export const packageVersion = (JSON.parse(readFileSync(join(repoRoot, 'package.json'), 'utf8')) as { version: string }).version;

export interface CliResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

export interface CliOptions {
  /** The test database; becomes AUTHCTL_DATABASE_URL unless `env` overrides it. */
  databaseUrl?: string;
  /** Written to standard input, which is then closed. Without it, stdin is closed at once (no TTY). */
  input?: string;
  /** Extra variables; `undefined` removes one of the defaults (e.g. `{ AUTHCTL_SECRET: undefined }`). */
  env?: Record<string, string | undefined>;
  /** The Node.js binary to run the CLI with; the one running the tests unless set. */
  node?: string;
  timeoutMs?: number;
}

/**
 * The environment a user's shell would give the CLI: PATH and HOME from here, AUTHCTL_* only
 * what the test says — never inherited, so a developer's own settings cannot leak into a test.
 */
export function cliEnv(options: Pick<CliOptions, 'databaseUrl' | 'env'> = {}): NodeJS.ProcessEnv {
  const env: Record<string, string | undefined> = {
    PATH: process.env.PATH,
    HOME: process.env.HOME,
    AUTHCTL_SECRET: TEST_SECRET,
    AUTHCTL_LOG_LEVEL: 'warn',
    ...(options.databaseUrl ? { AUTHCTL_DATABASE_URL: options.databaseUrl } : {}),
    ...options.env,
  };
  return Object.fromEntries(Object.entries(env).filter((entry): entry is [string, string] => entry[1] !== undefined));
}

/** Starts `node bin/run.js …args` from the repository root, as a user would run `authctl`. */
export function spawnCli(args: string[], options: Pick<CliOptions, 'databaseUrl' | 'env' | 'node'> = {}): ChildProcessWithoutNullStreams {
  return spawn(options.node ?? process.execPath, ['bin/run.js', ...args], { cwd: repoRoot, env: cliEnv(options), stdio: 'pipe' });
}

/** Runs the CLI to completion and resolves its exit code and output. */
export function runCli(args: string[], options: CliOptions = {}): Promise<CliResult> {
  const child = spawnCli(args, options);
  const timeoutMs = options.timeoutMs ?? 30_000;
  return new Promise<CliResult>((resolve, reject) => {
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk));
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
    // The CLI may exit (e.g. on a usage error) before reading its input: ignore EPIPE then.
    child.stdin.on('error', () => undefined);
    child.stdin.end(options.input ?? '');
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`authctl ${args.join(' ')} did not exit within ${timeoutMs} ms\nstdout: ${stdout}\nstderr: ${stderr}`));
    }, timeoutMs);
    child.on('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderr });
    });
  });
}

/** A readable assertion message: the exit status and (the start of) the command's output. */
export function describeRun(result: CliResult): string {
  const clip = (text: string) => (text.length > 1500 ? `${text.slice(0, 1500)}… (${text.length} characters)` : text);
  return `exit ${result.code}${result.signal ? ` (${result.signal})` : ''}\n--- stdout ---\n${clip(result.stdout)}\n--- stderr ---\n${clip(result.stderr)}`;
}

/** Asserts the exit code and parses stdout as the one JSON document `--json` promises. */
export function expectJson<T = Record<string, unknown>>(result: CliResult, exitCode: number): T {
  expect(result.code, describeRun(result)).to.equal(exitCode);
  let parsed: unknown;
  try {
    parsed = JSON.parse(result.stdout) as unknown;
  } catch {
    expect.fail(`stdout is not one JSON document\n${describeRun(result)}`);
  }
  expect(parsed, describeRun(result)).to.be.an('object');
  return parsed as T;
}

export interface JsonError {
  error: { code: string; message: string; errors?: Array<{ path: string; message: string }> };
}

/** Asserts a `--json` failure: the exit code and `{"error":{"code","message"}}` on stdout. */
export function expectJsonError(result: CliResult, exitCode: number, code: string): JsonError['error'] {
  const body = expectJson<JsonError>(result, exitCode);
  expect(body.error, describeRun(result)).to.be.an('object');
  expect(body.error.code, describeRun(result)).to.equal(code);
  expect(body.error.message, describeRun(result)).to.be.a('string').and.not.be.empty;
  return body.error;
}

/** Error output is for admins: a message, never a stack trace. */
export function expectNoStackTrace(text: string): void {
  expect(text).not.to.match(/^\s+at .+[:(]\d+:\d+\)?$/m);
  expect(text).not.to.match(/\b(?:Error|TypeError):[^\n]*\n\s+at /);
}
