import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect } from 'chai';
import pg from 'pg';
import { liveChecks } from '../../src/cli/connections.js';
import { runInit, type InitResult } from '../../src/cli/init.js';
import { buildConfigFile } from '../../src/cli/init-wizard.js';
import { loadConfig } from '../../src/config/load.js';
import { AppError } from '../../src/platform/errors.js';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';
import { describeRun, expectJson, expectJsonError, expectNoStackTrace, runCli } from './run-cli.js';
import { TestTerminal } from './terminal.js';

const REDIS_URL = process.env.AUTHCTL_TEST_REDIS_URL ?? 'redis://127.0.0.1:6379';
const INIT_ANSWERS = {
  region: 'eu',
  publicUrl: 'https://auth.eu.example.com',
  databaseUrl: 'postgres://postgres@127.0.0.1:5432/authctl',
  redisUrl: '',
  accessTtl: 900,
  refreshTtl: 86_400,
  peers: [],
};
const PEER_SECRET = 'a-peer-secret-entered-by-the-admin-0123456789';

async function tableExists(url: string, table: string): Promise<boolean> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    return (await client.query<{ t: string | null }>('select to_regclass($1) as t', [table])).rows[0]!.t !== null;
  } finally {
    await client.end();
  }
}

describe('authctl init', function () {
  this.timeout(90_000);
  let dir: string;
  const databases: TestDatabase[] = [];

  /** A database name that does not exist yet (created, then dropped at once); dropped again after the tests. */
  async function missingDatabase(): Promise<TestDatabase> {
    const db = await createTestDatabase('init');
    await db.drop();
    databases.push(db);
    return db;
  }

  beforeEach(function () {
    dir = mkdtempSync(join(tmpdir(), 'authctl-init-'));
  });

  afterEach(function () {
    rmSync(dir, { recursive: true, force: true });
  });

  after(async function () {
    for (const db of databases) await db.drop();
  });

  describe('the file it writes', function () {
    it('moves URLs with a password to the environment, and generates distinct strong secrets', function () {
      const { values, secrets, entered } = buildConfigFile({
        region: 'eu',
        publicUrl: 'https://auth.eu.example.com',
        databaseUrl: 'postgres://authctl:db-pass-123@db:5432/authctl',
        redisUrl: 'redis://:redis-pass-456@cache:6379',
        accessTtl: 900,
        refreshTtl: 86_400,
        peers: [{ name: 'us', url: 'https://auth.us.example.com' }],
      });
      const text = JSON.stringify(values);
      expect(text).not.to.contain('db-pass-123');
      expect(text).not.to.contain('redis-pass-456');
      expect(values.database).to.deep.equal({ url: 'env:AUTHCTL_DATABASE_URL' });
      expect(values.cache).to.deep.equal({ redisUrl: 'env:AUTHCTL_REDIS_URL' });
      expect(secrets.AUTHCTL_DATABASE_URL).to.equal('postgres://authctl:db-pass-123@db:5432/authctl');
      expect(entered).to.have.members(['AUTHCTL_DATABASE_URL', 'AUTHCTL_REDIS_URL']);
      expect(secrets.AUTHCTL_SECRET).to.match(/^[A-Za-z0-9_-]{64}$/);
      expect(secrets.AUTHCTL_PEER_US_SECRET).to.match(/^[A-Za-z0-9_-]{64}$/);
      expect(secrets.AUTHCTL_PEER_US_SECRET).not.to.equal(secrets.AUTHCTL_SECRET);
      expect(buildConfigFile({ ...INIT_ANSWERS, peers: [] }).secrets.AUTHCTL_SECRET).not.to.equal(secrets.AUTHCTL_SECRET);
      // What it writes is a valid config once the environment has the secrets.
      const file = join(dir, 'eu.json');
      writeFileSync(file, JSON.stringify(values));
      const config = loadConfig({ file, env: secrets });
      expect(config.database.url).to.equal(secrets.AUTHCTL_DATABASE_URL);
      expect(config.tokens).to.include({ issuer: 'https://auth.eu.example.com', refreshTtl: 86_400 });
    });
  });

  describe('the wizard, driven through its prompts', function () {
    it('re-asks failed connections, creates the missing database, adds a peer, writes the file and migrates', async function () {
      const db = await missingDatabase();
      const terminal = new TestTerminal();
      const done = runInit(
        { interactive: true, given: {}, force: false, check: true, checks: liveChecks, cwd: dir },
        { input: terminal.input, output: terminal.output },
      );
      const failed = done.then(
        () => undefined,
        (err: unknown) => err,
      );

      // An invalid name is explained and can be corrected in place (Ctrl-U clears the line).
      await terminal.answer(/Region name/, 'EU Test');
      await terminal.waitFor(/must be 1–32 lowercase letters, digits or "-"/);
      await terminal.answer(/Region name/, '\u0015eu-test');
      await terminal.answer(/Public URL/, 'https://auth.eu-test.example.com');
      // Nothing listens on port 1: refused, and asked again.
      await terminal.answer(/PostgreSQL URL/, 'postgres://postgres@127.0.0.1:1/authctl');
      await terminal.waitFor(/✖ connection refused[^\n]*Try again/);
      await terminal.answer(/PostgreSQL URL/, db.url);
      await terminal.answer(new RegExp(`Database ${db.name} does not exist\\. Create it\\?`), 'y');
      await terminal.waitFor(/✔ connected \(PostgreSQL/);
      await terminal.answer(/Redis URL/, 'redis://127.0.0.1:1');
      await terminal.waitFor(/✖ connection refused[^\n]*Try again/);
      await terminal.answer(/Redis URL/, REDIS_URL);
      await terminal.waitFor(/✔ connected \(Redis/);
      await terminal.answer(/SMTP URL/, '');
      await terminal.answer(/Enable "Sign in with Google"/, 'n');
      await terminal.answer(/Turn on passkeys\?/, '');
      await terminal.answer(/Access token lifetime/, '600');
      await terminal.answer(/Session \(refresh token\) lifetime/, '');
      await terminal.answer(/Add a peer region/, 'y');
      await terminal.answer(/Peer region name/, 'us-test');
      await terminal.answer(/us-test's public URL/, 'https://auth.us-test.example.com');
      await terminal.answer(/Generate a new shared secret for us-test\?/, 'n');
      await terminal.answer(/Shared secret of us-test/, PEER_SECRET);
      await terminal.answer(/Add another peer region\?/, 'n');
      await terminal.answer(/Run the database migrations now\?/, 'y');

      const error = await failed;
      expect(error, terminal.screen).to.equal(undefined);
      const result: InitResult = await done;

      // The typed secret was masked on screen.
      expect(terminal.screen).not.to.contain(PEER_SECRET);
      expect(result.file).to.equal(join(dir, 'config/eu-test.json'));
      const written = JSON.parse(readFileSync(result.file, 'utf8')) as Record<string, unknown>;
      expect(written).to.deep.include({ region: 'eu-test', publicUrl: 'https://auth.eu-test.example.com', secret: 'env:AUTHCTL_SECRET' });
      expect(written.database).to.deep.equal({ url: db.url });
      expect(written.cache).to.deep.equal({ redisUrl: REDIS_URL });
      expect(written.tokens).to.deep.include({ issuer: 'https://auth.eu-test.example.com', accessTtl: 600, refreshTtl: 1_209_600 });
      expect(written.regions).to.deep.equal({
        peers: [{ name: 'us-test', url: 'https://auth.us-test.example.com', secret: 'env:AUTHCTL_PEER_US_TEST_SECRET' }],
      });

      // No secret in the file; the generated one is returned once, the entered one is not repeated.
      const text = readFileSync(result.file, 'utf8');
      expect(result.secrets.AUTHCTL_SECRET).to.match(/^[A-Za-z0-9_-]{64}$/);
      expect(text).not.to.contain(result.secrets.AUTHCTL_SECRET);
      expect(text).not.to.contain(PEER_SECRET);
      expect(result.secrets).not.to.have.property('AUTHCTL_PEER_US_TEST_SECRET');
      expect(result.entered).to.deep.equal(['AUTHCTL_PEER_US_TEST_SECRET']);

      // The file loads with the secrets in the environment, and the database was migrated.
      const config = loadConfig({ file: result.file, env: { AUTHCTL_SECRET: result.secrets.AUTHCTL_SECRET, AUTHCTL_PEER_US_TEST_SECRET: PEER_SECRET } });
      expect(config.regions.peers[0]!.secret).to.equal(PEER_SECRET);
      expect(config.secret).to.equal(result.secrets.AUTHCTL_SECRET);
      expect(result.migrated).to.equal(true);
      expect(await tableExists(db.url, 'users')).to.equal(true);
    });

    it('refuses an existing --output before asking anything (conflict, exit 4)', async function () {
      const file = join(dir, 'existing.json');
      writeFileSync(file, '{"region":"keep"}\n');
      const terminal = new TestTerminal();
      let caught: unknown;
      try {
        await runInit(
          { interactive: true, given: {}, output: file, force: false, check: true, checks: liveChecks, cwd: dir },
          { input: terminal.input, output: terminal.output },
        );
      } catch (err) {
        caught = err;
      }
      expect(caught).to.be.instanceOf(AppError);
      expect((caught as AppError).code).to.equal('conflict');
      expect((caught as AppError).exitCode).to.equal(4);
      expect(terminal.screen).to.equal('');
      expect(readFileSync(file, 'utf8')).to.equal('{"region":"keep"}\n');
    });
    it('refuses config/<region>.json that exists right after the region is named, before any other question', async function () {
      mkdirSync(join(dir, 'config'));
      writeFileSync(join(dir, 'config/taken.json'), '{}\n');
      const terminal = new TestTerminal();
      const done = runInit(
        { interactive: true, given: {}, force: false, check: true, checks: liveChecks, cwd: dir },
        { input: terminal.input, output: terminal.output },
      );
      const outcome = done.then(
        () => undefined,
        (err: unknown) => err,
      );
      await terminal.answer(/Region name/, 'taken');
      const caught = await outcome;
      expect(caught, terminal.screen).to.be.instanceOf(AppError);
      expect((caught as AppError).code).to.equal('conflict');
      expect((caught as AppError).detail).to.match(/config\/taken\.json already exists: pass --force/);
      expect(terminal.screen).not.to.contain('Public URL');
      expect(readFileSync(join(dir, 'config/taken.json'), 'utf8')).to.equal('{}\n');
    });
  });

  describe('non-interactive (spawned as CI runs it)', function () {
    const run = (args: string[], env: Record<string, string | undefined> = {}) => runCli(args, { env: { AUTHCTL_SECRET: undefined, ...env } });

    it('--yes writes the file from flags, creates the database, migrates it (not the one the shell names), and puts the secrets in --secrets-file only', async function () {
      const db = await missingDatabase();
      // Another region's database in the shell's environment must not be the one migrated.
      const decoy = await createTestDatabase('init_decoy');
      databases.push(decoy);
      const output = join(dir, 'eu.json');
      const secretsFile = join(dir, 'eu.secrets');
      const result = await run(
        [
          'init',
          '--yes',
          '--region',
          'eu-ci',
          '--public-url',
          'https://auth.eu-ci.example.com',
          '--database-url',
          db.url,
          '--redis-url',
          REDIS_URL,
          '--peer',
          'us-ci=https://auth.us-ci.example.com',
          '--output',
          output,
          '--secrets-file',
          secretsFile,
          '--migrate',
          '--json',
        ],
        { AUTHCTL_DATABASE_URL: decoy.url },
      );
      const body = expectJson<InitResult>(result, 0);
      expect(body).to.include({ region: 'eu-ci', file: output, secretsFile, migrated: true });
      expect(await tableExists(db.url, 'users')).to.equal(true);
      expect(await tableExists(decoy.url, 'users')).to.equal(false);
      // Written to the file, so not printed as well (not even with --json).
      expect(body.secrets).to.deep.equal({});
      expect([...body.secretNames].sort()).to.deep.equal(['AUTHCTL_PEER_US_CI_SECRET', 'AUTHCTL_SECRET']);
      const secretsOf = (file: string) => Object.fromEntries([...readFileSync(file, 'utf8').matchAll(/^export (\w+)='([^']*)'$/gm)].map((m) => [m[1]!, m[2]!]));
      const secrets = secretsOf(secretsFile);
      expect(Object.keys(secrets).sort()).to.deep.equal(['AUTHCTL_PEER_US_CI_SECRET', 'AUTHCTL_SECRET']);
      expect(result.stdout).not.to.contain(secrets.AUTHCTL_SECRET);
      const text = readFileSync(output, 'utf8');
      for (const secret of Object.values(secrets)) expect(text).not.to.contain(secret);
      expect(JSON.parse(text)).to.deep.include({ region: 'eu-ci', secret: 'env:AUTHCTL_SECRET' });
      // Readable by its owner only.
      expect(statSync(secretsFile).mode & 0o777).to.equal(0o600);

      // The written file works for the next command, with the secret from the environment.
      const status = await runCli(['migrate', 'status', '--config', output, '--json'], {
        env: { AUTHCTL_SECRET: secrets.AUTHCTL_SECRET, AUTHCTL_PEER_US_CI_SECRET: secrets.AUTHCTL_PEER_US_CI_SECRET },
      });
      expect(status.code, describeRun(status)).to.equal(0);

      // Never overwritten without --force; the file is untouched.
      const again = await run(['init', '--yes', '--region', 'eu-ci', '--output', output, '--no-check', '--json']);
      expect(expectJsonError(again, 4, 'conflict').message).to.match(/--force/);
      expect(readFileSync(output, 'utf8')).to.equal(text);
      // --force over a secrets file someone made world-readable: the new one is 600 again.
      chmodSync(secretsFile, 0o644);
      const forced = await run(['init', '--yes', '--region', 'eu-ci', '--output', output, '--secrets-file', secretsFile, '--no-check', '--force', '--json']);
      expectJson<InitResult>(forced, 0);
      expect(secretsOf(secretsFile).AUTHCTL_SECRET).not.to.equal(secrets.AUTHCTL_SECRET);
      expect(statSync(secretsFile).mode & 0o777).to.equal(0o600);
      expect(readFileSync(output, 'utf8')).not.to.equal(text);
    });

    it('human output shows the secret exactly once, with its export line, and the next steps', async function () {
      const result = await run(['init', '--yes', '--region', 'eu-human', '--no-check', '--output', join(dir, 'h.json')]);
      expect(result.code, describeRun(result)).to.equal(0);
      const lines = result.stdout.split('\n').filter((line) => line.includes('AUTHCTL_SECRET='));
      expect(lines).to.have.length(1);
      const secret = /export AUTHCTL_SECRET='([^']+)'/.exec(lines[0]!)?.[1];
      expect(secret).to.match(/^[A-Za-z0-9_-]{64}$/);
      expect(result.stdout.split(secret!).length - 1).to.equal(1);
      expect(result.stderr).not.to.contain(secret!);
      expect(result.stdout).to.contain('export AUTHCTL_CONFIG=');
      expect(result.stdout).to.contain('authctl migrate');
    });

    it('without --yes and without a terminal: exit 2, nothing written', async function () {
      const result = await runCli(['init', '--output', join(dir, 'x.json')]);
      expect(result.code, describeRun(result)).to.equal(2);
      expect(result.stderr).to.contain('--yes');
      expect(existsSync(join(dir, 'x.json'))).to.equal(false);
    });

    it('a bad flag value is exit 2 naming the flag; nothing written', async function () {
      const [region, url, ttl, peer] = await Promise.all([
        run(['init', '--yes', '--no-check', '--region', 'EU West', '--output', join(dir, 'a.json'), '--json']),
        run(['init', '--yes', '--no-check', '--database-url', 'mysql://db/x', '--output', join(dir, 'b.json'), '--json']),
        run(['init', '--yes', '--no-check', '--access-ttl', '5', '--output', join(dir, 'c.json'), '--json']),
        run(['init', '--yes', '--no-check', '--peer', 'nourl', '--output', join(dir, 'd.json'), '--json']),
      ]);
      expect(expectJsonError(region, 2, 'invalid_request').message).to.match(/^--region: /);
      expect(expectJsonError(url, 2, 'invalid_request').message).to.match(/^--database-url: .*postgres/);
      expect(expectJsonError(ttl, 2, 'invalid_request').message).to.match(/^--access-ttl: /);
      expect(expectJsonError(peer, 2, 'invalid_request').message).to.match(/--peer nourl: expected name=url/);
      for (const name of ['a', 'b', 'c', 'd']) expect(existsSync(join(dir, `${name}.json`))).to.equal(false);
    });

    it('an unreachable database is exit 69 (unless --no-check); nothing written', async function () {
      const output = join(dir, 'down.json');
      const result = await run(['init', '--yes', '--database-url', 'postgres://postgres@127.0.0.1:1/authctl', '--output', output]);
      expect(result.code, describeRun(result)).to.equal(69);
      expect(result.stderr).to.match(/connection refused/);
      expect(result.stderr).to.contain('--no-check');
      expectNoStackTrace(result.stderr);
      expect(existsSync(output)).to.equal(false);
    });
  });
});
