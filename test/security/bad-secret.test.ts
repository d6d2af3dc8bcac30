import { once } from 'node:events';
import { expect } from 'chai';
import { buildContainer, type Container } from '../../src/container.js';
import type { ConfigInput } from '../../src/config/schema.js';
import { migrate, shutdown } from '../../src/runtime.js';
import { startTestApp, TEST_SECRET, testConfig, type TestApp } from '../helpers/app.js';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';
import { createAccount, expectProblem, login, uniquePassword } from '../helpers/http-assert.js';
import { assertNoSecrets, LogCapture } from '../helpers/log-capture.js';
import { describeRun, expectNoStackTrace, runCli, spawnCli } from '../cli/run-cli.js';

const WRONG = 'wrong-secret-0123456789-abcdefghijklmnopqrstuvwxyz';
const NEXT = 'next-secret-0123456789-abcdefghijklmnopqrstuvwxyz!';
const SECRETS = { region: TEST_SECRET, wrong: WRONG, next: NEXT };

/** A container of the region under `secret` (for writing keys the way another server would). */
async function withRegion<T>(url: string, overrides: ConfigInput, use: (c: Container) => Promise<T>): Promise<T> {
  const c = buildContainer(testConfig(url, overrides));
  try {
    return await use(c);
  } finally {
    await shutdown(c);
  }
}

interface Readiness {
  status: string;
  checks: Record<string, string>;
  failing?: string[];
  details?: Record<string, string>;
}

async function readiness(url: string): Promise<{ status: number; body: Readiness; text: string }> {
  const res = await fetch(`${url}/readyz`);
  const text = await res.text();
  return { status: res.status, body: JSON.parse(text) as Readiness, text };
}

async function waitForReadiness(url: string, status: number, timeoutMs = 8_000): Promise<Readiness> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const answer = await readiness(url);
    if (answer.status === status) return answer.body;
    if (Date.now() > deadline) expect.fail(`/readyz stayed ${answer.status}, expected ${status}: ${answer.text}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

/**
 * A server secret that cannot unseal the region's signing key is a start-up error (exit 78) and a
 * reason not to be ready, never a login that checks the password and then answers 500.
 */
describe('a server secret that cannot unseal the signing keys', function () {
  this.timeout(60_000);
  let db: TestDatabase;
  let signingKid: string;

  before(async function () {
    db = await createTestDatabase('sec_bad_secret');
    signingKid = await withRegion(db.url, {}, async (c) => {
      await migrate(c);
      await c.keys.ensureSigningKey();
      return c.keys.signingKey().kid;
    });
  });

  after(async function () {
    await db?.drop();
  });

  describe('authctl serve and worker, as processes', function () {
    it('serve with a wrong AUTHCTL_SECRET says why and exits 78 before it listens', async function () {
      const result = await runCli(['serve', '--port', '0'], { databaseUrl: db.url, env: { AUTHCTL_SECRET: WRONG } });
      expect(result.code, describeRun(result)).to.equal(78);
      expect(result.stderr).to.include(`the signing key ${signingKid} of region local cannot be unsealed with this server's secret`);
      expect(result.stderr).to.include('AUTHCTL_PREVIOUS_SECRET');
      expect(result.stderr).not.to.include('authctl serving');
      expectNoStackTrace(result.stderr);
      assertNoSecrets(result.stdout + result.stderr, SECRETS);
    });

    it('worker with a wrong secret exits 78 (the codes and links it would mail would not verify)', async function () {
      const result = await runCli(['worker'], { databaseUrl: db.url, env: { AUTHCTL_SECRET: WRONG } });
      expect(result.code, describeRun(result)).to.equal(78);
      expect(result.stderr).to.include(`the signing key ${signingKid} of region local cannot be unsealed`);
      assertNoSecrets(result.stdout + result.stderr, SECRETS);
    });

    it("serve during a secret rotation (new AUTHCTL_SECRET, the region's old one as AUTHCTL_PREVIOUS_SECRET) starts and is ready", async function () {
      const server = spawnCli(['serve', '--port', '0'], { databaseUrl: db.url, env: { AUTHCTL_SECRET: NEXT, AUTHCTL_PREVIOUS_SECRET: TEST_SECRET } });
      let stderr = '';
      server.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
      server.stdout.resume();
      try {
        const deadline = Date.now() + 15_000;
        let url: string | undefined;
        while (!(url = /serving region local on (http:\/\/\S+)/.exec(stderr)?.[1])) {
          if (server.exitCode !== null || Date.now() > deadline) expect.fail(`serve did not start (exit ${server.exitCode}): ${stderr}`);
          await new Promise((resolve) => setTimeout(resolve, 50));
        }
        const ready = await waitForReadiness(url, 200);
        expect(ready.checks.signingKeys).to.equal('ok');
      } finally {
        if (server.exitCode === null) {
          server.kill('SIGTERM');
          await once(server, 'close');
        }
      }
      expect(server.exitCode, stderr).to.equal(0);
    });
  });

  describe('an in-process server whose secret cannot unseal the key (readiness decides)', function () {
    let app: TestApp;

    before(async function () {
      // Without serve's start-up check: as a server that loaded its keys after starting (PostgreSQL was down).
      app = await startTestApp('sec_bad_secret', { db, migrate: false, overrides: { secret: WRONG } });
    });
    after(async function () {
      await app?.close();
    });

    it('/readyz is 503 with signingKeys "unsealable" and why — never the secret', async function () {
      const { status, body, text } = await readiness(app.url);
      expect(status, text).to.equal(503);
      expect(body.checks.signingKeys).to.equal('unsealable');
      expect(body.failing).to.include('signingKeys');
      expect(body.details?.signingKeys).to.include(`the signing key ${signingKid} of region local cannot be unsealed`);
      assertNoSecrets(text, SECRETS);
    });

    it('a login gets 503 unavailable with Retry-After before any password is checked (a wrong one too)', async function () {
      const account = await createAccount(app, 'badsecret');
      for (const password of [account.password, uniquePassword()]) {
        const res = await app.request('/v1/auth/login', { method: 'POST', json: { username: account.username, password } });
        expect(res.headers.get('retry-after')).to.equal('2');
        const problem = await expectProblem(res, 503, 'unavailable');
        expect(problem.detail).to.match(/cannot sign tokens/);
      }
    });
  });

  describe('a mixed key ring (in process)', function () {
    let mixed: TestDatabase;
    let app: TestApp;
    let oldKid: string;
    const capture = new LogCapture();
    const fastReload: ConfigInput = { keys: { reloadInterval: 1 } };

    before(async function () {
      mixed = await createTestDatabase('sec_bad_secret_mixed');
      // The region's first key was sealed under a secret this server no longer has; its current
      // one (rotated in during a secret rotation) under the secret it has.
      oldKid = await withRegion(mixed.url, { secret: WRONG }, async (c) => {
        await migrate(c);
        await c.keys.ensureSigningKey();
        return c.keys.signingKey().kid;
      });
      await withRegion(mixed.url, { previousSecret: WRONG }, (c) => c.keys.rotate());
      app = await startTestApp('sec_bad_secret_mixed', { db: mixed, overrides: fastReload, log: capture.logger() });
    });
    after(async function () {
      await app?.close();
      await mixed?.drop();
    });

    it('an unsealable retiring key beside a usable active one: ready, logins work, one warning with the key id', async function () {
      const ready = await waitForReadiness(app.url, 200);
      expect(ready.checks.signingKeys).to.equal('ok');
      expect(app.container.keys.list().find((k) => k.kid === oldKid)?.state).to.equal('retiring');
      const account = await createAccount(app, 'mixed');
      await login(app, account.username, account.password);
      await app.container.keys.load();
      await capture.settle();
      const warnings = capture.events('keys.unsealable');
      expect(warnings, capture.text).to.have.length(1);
      expect(warnings[0]!.level).to.equal('warn');
      expect(warnings[0]!.kids).to.deep.equal([oldKid]);
      assertNoSecrets(capture.lines, SECRETS);
    });

    it('a key rotated in under another secret makes the running server unready at its next key reload, and a good rotation ready again', async function () {
      await withRegion(mixed.url, { secret: NEXT }, (c) => c.keys.rotate());
      const unready = await waitForReadiness(app.url, 503);
      expect(unready.checks.signingKeys).to.equal('unsealable');
      await capture.settle();
      expect(capture.events('keys.unsealable').some((e) => e.level === 'error')).to.equal(true);
      await withRegion(mixed.url, {}, (c) => c.keys.rotate());
      const ready = await waitForReadiness(app.url, 200);
      expect(ready.checks.signingKeys).to.equal('ok');
    });
  });
});
