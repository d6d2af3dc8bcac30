import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect } from 'chai';
import { liveChecks } from '../../src/cli/connections.js';
import { runInit, type InitOptions, type InitResult } from '../../src/cli/init.js';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';
import { TestTerminal } from './terminal.js';

/** Answers for building a config file directly (buildConfigFile), without the wizard. */
export const ANSWERS = {
  region: 'eu',
  publicUrl: 'https://auth.eu.example.test',
  databaseUrl: 'postgres://postgres@127.0.0.1:5432/authctl',
  redisUrl: '',
  accessTtl: 900,
  refreshTtl: 86_400,
  peers: [],
};

export interface RunningWizard {
  terminal: TestTerminal;
  done: Promise<InitResult>;
  /** Resolves undefined when init succeeds, or the error it failed with (never rejects). */
  outcome: Promise<unknown>;
}

/** `authctl init`'s wizard over a test terminal, with live connection checks. */
export function startWizard(options: Partial<InitOptions> & { cwd: string }): RunningWizard {
  const terminal = new TestTerminal();
  const done = runInit(
    { interactive: true, given: {}, force: false, check: true, checks: liveChecks, ...options },
    { input: terminal.input, output: terminal.output },
  );
  const outcome = done.then(
    () => undefined,
    (err: unknown) => err,
  );
  return { terminal, done, outcome };
}

/** The first answers: region, public URL, a database that works, no Redis. */
export async function answerRegion(terminal: TestTerminal, answers: { region: string; publicUrl: string; databaseUrl: string }): Promise<void> {
  await terminal.answer(/Region name/, answers.region);
  await terminal.answer(/Public URL/, answers.publicUrl);
  await terminal.answer(/PostgreSQL URL/, answers.databaseUrl);
  await terminal.waitFor(/✔ connected \(PostgreSQL/);
  await terminal.answer(/Redis URL/, '-');
}

/** The last answers, all defaults (token lifetimes, no peer, no migration); the result of a wizard that must succeed. */
export async function finishWizard({ terminal, done, outcome }: RunningWizard): Promise<InitResult> {
  await terminal.answer(/Access token lifetime/, '');
  await terminal.answer(/Session \(refresh token\) lifetime/, '');
  await terminal.answer(/Add a peer region/, 'n');
  await terminal.answer(/Run the database migrations now\?/, 'n');
  expect(await outcome, terminal.screen).to.equal(undefined);
  return done;
}

/**
 * Mocha hooks of an init test: a database for the whole suite (`authctl init` checks and migrates
 * it) and a fresh folder for each test to write its files in. Read `dir` and `db` inside tests.
 */
export function initFixture(label: string): { readonly dir: string; readonly db: TestDatabase } {
  let dir = '';
  let db: TestDatabase | undefined;
  before(async function () {
    db = await createTestDatabase(label);
  });
  after(async function () {
    await db?.drop();
  });
  beforeEach(function () {
    dir = mkdtempSync(join(tmpdir(), `authctl-${label.replace(/_/g, '-')}-`));
  });
  afterEach(function () {
    rmSync(dir, { recursive: true, force: true });
  });
  return {
    get dir() {
      return dir;
    },
    get db() {
      return db!;
    },
  };
}
