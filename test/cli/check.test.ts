import { expect } from 'chai';
import pg from 'pg';
import { checkRegion, type RegionCheckReport } from '../../src/admin/check.js';
import { migrateDatabase, startTestApp, TEST_SECRET, type TestApp } from '../helpers/app.js';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';
import { register, uniquePassword, uniqueUsername } from '../helpers/http-assert.js';
import { assertNoSecrets } from '../helpers/log-capture.js';
import { describeRun, expectJson, runCli, type CliResult } from './run-cli.js';

const STEPS = ['healthz', 'readyz', 'jwks', 'register', 'login', 'token', 'refresh', 'logout', 'replication', 'delete'];
/** What testConfig's servers put in `iss` (the config default). */
const ISSUER = 'http://127.0.0.1:8080';
const WRONG_SECRET = 'wrong-secret-0123456789-abcdefghijklmnopqrstuvwxyz';

async function rowCount(url: string, sql: string): Promise<number> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    const { rows } = await client.query<{ n: string }>(`select count(*) as n from (${sql}) as counted`);
    return Number(rows[0]!.n);
  } finally {
    await client.end();
  }
}

const countUsers = (url: string, where = 'true') => rowCount(url, `select 1 from users where ${where}`);

/** No access token (a JWS starts `eyJ`), refresh token (`rt_…`) or secret in anything the command printed. */
function expectNothingSecret(result: CliResult): void {
  const text = result.stdout + result.stderr;
  expect(text).not.to.match(/eyJ[A-Za-z0-9_-]{10,}/);
  expect(text).not.to.match(/\brt_[a-z0-9-]+_/);
  assertNoSecrets(text, { secret: TEST_SECRET, wrong: WRONG_SECRET });
}

function row(report: RegionCheckReport, check: string) {
  const found = report.checks.find((c) => c.check === check);
  expect(found, `row ${check} in ${JSON.stringify(report.checks)}`).to.not.equal(undefined);
  return found!;
}

/** `authctl check --url` against real servers, run as a user runs the CLI; and `migrate status --check`. */
describe('authctl check and migrate status --check', function () {
  this.timeout(60_000);
  let db: TestDatabase;
  let app: TestApp;

  before(async function () {
    db = await createTestDatabase('cli_check');
    app = await startTestApp('cli_check', { db });
  });
  after(async function () {
    await app?.close();
    await db?.drop();
  });

  it('a healthy region: every check passes, exit 0, the JSON report, and no user left behind', async function () {
    const before = await countUsers(db.url);
    const result = await runCli(['check', '--url', app.url, '--json'], { databaseUrl: db.url, env: { AUTHCTL_ISSUER: ISSUER } });
    const report = expectJson<RegionCheckReport>(result, 0);
    expect(report.passed).to.equal(true);
    expect(report.checks.map((c) => c.check)).to.deep.equal(STEPS);
    for (const c of report.checks) {
      expect(c.result, `${c.check}: ${c.detail}`).to.equal('pass');
      expect(c.ms).to.be.a('number');
      expect(c.detail).to.be.a('string').and.not.be.empty;
    }
    expect(report).to.include({ url: app.url, issuer: ISSUER, issuerSource: 'config' });
    expect(row(report, 'replication').detail).to.equal('no peers');
    expect(row(report, 'logout').detail).to.match(/access token refused after \d+ ms/);
    expect(report.user?.username).to.match(/^authctl-check-[0-9a-f]{12}$/);
    expect(report.user?.deleted).to.equal(true);
    expect(await countUsers(db.url)).to.equal(before);
    expect(await countUsers(db.url, `username like 'authctl-check-%'`)).to.equal(0);
    expectNothingSecret(result);
  });

  it('a wrong issuer (without --issuer or a config, iss must be the --url): the token row fails saying where the expectation came from, exit 1, and the user is deleted all the same; the table', async function () {
    const before = await countUsers(db.url);
    const result = await runCli(['check', '--url', app.url]);
    expect(result.code, describeRun(result)).to.equal(1);
    expect(result.stdout).to.include(`${app.url} (issuer "${app.url}", from --url)`);
    expect(result.stdout).to.match(/^CHECK\s+RESULT\s+MS\s+DETAIL$/m);
    for (const step of STEPS.filter((s) => s !== 'replication' && s !== 'token')) expect(result.stdout).to.match(new RegExp(`^${step}\\s+ok\\s+\\d+`, 'm'));
    expect(result.stdout).to.match(new RegExp(`^token\\s+FAILED\\s+\\d+\\s+iss is "${ISSUER}", expected "${app.url}" \\(from --url\\)$`, 'm'));
    expect(result.stdout).to.match(/^replication\s+skipped\s+-\s+skipped: no database access/m);
    expect(result.stdout).to.include('Some checks FAILED.');
    expect(await countUsers(db.url)).to.equal(before);
    expect(await countUsers(db.url, `username like 'authctl-check-%'`)).to.equal(0);
    expectNothingSecret(result);
  });

  describe('a region whose secret cannot unseal its signing key (readyz 503)', function () {
    let broken: TestApp;

    before(async function () {
      broken = await startTestApp('cli_check', { db, migrate: false, overrides: { secret: WRONG_SECRET } });
    });
    after(async function () {
      await broken?.close();
    });

    it('fails readyz (saying why) and login; the user it registered is deleted through the database', async function () {
      const before = await countUsers(db.url);
      const result = await runCli(['check', '--url', broken.url, '--issuer', ISSUER, '--json'], { databaseUrl: db.url });
      const report = expectJson<RegionCheckReport>(result, 1);
      expect(row(report, 'readyz').result).to.equal('fail');
      expect(row(report, 'readyz').detail).to.match(/^503: .*signingKeys unsealable.* — the signing key \S+ of region local cannot be unsealed/);
      expect(row(report, 'register').result).to.equal('pass');
      expect(row(report, 'login')).to.include({ result: 'fail' });
      expect(row(report, 'login').detail).to.match(/503 unavailable: this server cannot sign tokens/);
      expect(['token', 'refresh', 'logout'].map((s) => row(report, s).result)).to.deep.equal(['skip', 'skip', 'skip']);
      expect(row(report, 'delete').result).to.equal('pass');
      expect(row(report, 'delete').detail).to.match(/^deleted authctl-check-[0-9a-f]{12} \([0-9a-f-]{36}\) through the database \(login to delete: 503/);
      expect(report.user?.deleted).to.equal(true);
      expect(await countUsers(db.url)).to.equal(before);
      expectNothingSecret(result);
    });

    it('without database access the user cannot be deleted: said loudly, with its id and the command that deletes it', async function () {
      const result = await runCli(['check', '--url', broken.url, '--issuer', ISSUER, '--json']);
      const report = expectJson<RegionCheckReport>(result, 1);
      expect(report.user?.deleted).to.equal(false);
      const id = report.user!.id!;
      expect(row(report, 'delete').detail).to.include(`THE THROW-AWAY USER ${report.user!.username} (${id}) WAS NOT DELETED`);
      expect(result.stderr).to.include(`authctl user delete ${id} --yes`);
      expect(await countUsers(db.url, `id = '${id}'`)).to.equal(1);
      await broken.container.users.delete(id);
    });
  });

  describe('a rate-limited region', function () {
    let limitedDb: TestDatabase;
    let limited: TestApp;

    before(async function () {
      limitedDb = await createTestDatabase('cli_check_limited');
      limited = await startTestApp('cli_check_limited', { db: limitedDb, overrides: { rateLimit: { registerPerIp: 1, registerWindow: 2 } } });
    });
    after(async function () {
      await limited?.close();
      await limitedDb?.drop();
    });

    // In process (checkRegion, the command's core), so that no CLI start-up runs out the window.
    it('429 beyond --max-wait fails clearly and creates nothing; within it, Retry-After is waited out and the check passes', async function () {
      const options = {
        url: limited.url,
        issuer: { value: ISSUER, source: '--issuer' as const },
        maxLagSeconds: 30,
        timeoutMs: 5_000,
        revocationWaitMs: 5_000,
      };
      await register(limited, uniqueUsername('first'), uniquePassword());
      const refused = await checkRegion({ ...options, maxWaitMs: 0 });
      expect(refused.passed).to.equal(false);
      expect(row(refused, 'register').detail).to.match(
        /^POST \/v1\/auth\/register: 429 rate_limited, Retry-After [12] s is beyond what --max-wait leaves \(0 s waited\)$/,
      );
      expect(refused.user).to.equal(null);
      expect(refused.checks.map((c) => c.check)).not.to.include('delete');

      const waited = await checkRegion({ ...options, maxWaitMs: 10_000 });
      expect(waited.checks.filter((c) => c.result !== 'pass').map((c) => `${c.check}: ${c.detail}`)).to.deep.equal([
        'replication: skipped: no database access (give --config or AUTHCTL_DATABASE_URL)',
      ]);
      expect(row(waited, 'register').ms).to.be.at.least(900);
      expect(waited.user?.deleted).to.equal(true);
      expect(await countUsers(limitedDb.url)).to.equal(1);
    });
  });

  describe('a region that requires an e-mail address', function () {
    let emailDb: TestDatabase;
    let region: TestApp;

    before(async function () {
      emailDb = await createTestDatabase('cli_check_email');
      region = await startTestApp('cli_check_email', {
        db: emailDb,
        overrides: { identity: { email: 'required' }, mail: { transport: 'log', from: 'Example <no-reply@example.com>' } },
      });
    });
    after(async function () {
      await region?.close();
      await emailDb?.drop();
    });

    it('signs up with an address at the reserved domain check.invalid and passes; nothing is left (user, challenge)', async function () {
      const report = await checkRegion({
        url: region.url,
        issuer: { value: ISSUER, source: '--issuer' },
        maxLagSeconds: 30,
        timeoutMs: 5_000,
        maxWaitMs: 0,
        revocationWaitMs: 5_000,
      });
      expect(row(report, 'register').detail).to.match(/^201 authctl-check-[0-9a-f]{12} \(with an address at check\.invalid\)$/);
      expect(report.checks.filter((c) => c.result === 'fail')).to.deep.equal([]);
      expect(report.user?.deleted).to.equal(true);
      expect(await countUsers(emailDb.url)).to.equal(0);
      expect(await rowCount(emailDb.url, 'select 1 from email_challenges')).to.equal(0);
    });
  });

  describe('migrate status --check', function () {
    let fresh: TestDatabase;

    before(async function () {
      fresh = await createTestDatabase('cli_check_migrate');
    });
    after(async function () {
      await fresh?.drop();
    });

    it('exits 1 on a database with pending migrations, naming them; 0 (upToDate) once migrated', async function () {
      const pending = await runCli(['migrate', 'status', '--check'], { databaseUrl: fresh.url });
      expect(pending.code, describeRun(pending)).to.equal(1);
      expect(pending.stdout).to.match(/^Pending: 0001-\S+/m);
      expect(pending.stdout).to.include('Not up to date: run `authctl migrate`.');

      await migrateDatabase(fresh.url);
      const current = expectJson<{ upToDate: boolean; pending: string[] }>(
        await runCli(['migrate', 'status', '--check', '--json'], { databaseUrl: fresh.url }),
        0,
      );
      expect(current).to.deep.include({ upToDate: true, pending: [] });
    });

    it('a database that cannot be reached is 69, not the pending code', async function () {
      const result = await runCli(['migrate', 'status', '--check'], { databaseUrl: 'postgres://postgres@127.0.0.1:1/none' });
      expect(result.code, describeRun(result)).to.equal(69);
    });
  });
});
