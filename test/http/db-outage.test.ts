import { expect } from 'chai';
import { generateKeyPair } from 'jose';
import { migrateDatabase, startTestApp, type TestApp } from '../helpers/app.js';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';
import {
  createAccount,
  expectInvalidToken,
  expectProblem,
  expectTokenResponse,
  login,
  refresh,
  sleep,
  uniquePassword,
  type Account,
  type TokenResponse,
} from '../helpers/http-assert.js';
import { cryptoKeySigner, decodePart, forgeJwt } from '../helpers/http-jwt.js';
import { TcpProxy } from '../helpers/http-tcp-proxy.js';
import { LogCapture } from '../helpers/log-capture.js';

const CONNECT_TIMEOUT_MS = 500;
const STATEMENT_TIMEOUT_MS = 1_000;

// The server's error log: when a request gets a 500, the failure message shows the cause.
const serverErrors = new LogCapture();

/** 503 `unavailable` with a usable Retry-After (docs/api.md#error-catalog). */
async function expectUnavailable(res: Response): Promise<void> {
  if (res.status === 500) expect.fail(`500 instead of 503; server errors:\n${serverErrors.lines.join('\n')}`);
  await expectProblem(res, 503, 'unavailable');
  const retryAfter = res.headers.get('retry-after');
  expect(retryAfter, 'Retry-After').to.match(/^\d+$/);
  expect(Number(retryAfter)).to.be.within(1, 3600);
}

interface Readiness {
  status: string;
  checks: Record<string, string>;
  failing?: string[];
}

describe('PostgreSQL outages (a server that starts without its database and recovers by itself)', function () {
  let pgDb: TestDatabase;
  let db: TestDatabase;
  let proxy: TcpProxy;
  let app: TestApp;

  before(async function () {
    pgDb = await createTestDatabase('http_db_outage');
    proxy = new TcpProxy({ host: '127.0.0.1', port: Number(new URL(pgDb.url).port || 5432) });
    await proxy.start();
    const proxied = new URL(pgDb.url);
    proxied.port = String(proxy.port);
    db = { ...pgDb, url: proxied.toString() };
    await migrateDatabase(db.url);
    await proxy.stop();
    app = await startTestApp('db-outage', {
      db,
      migrate: false,
      logSink: serverErrors,
      overrides: { database: { connectTimeoutMs: CONNECT_TIMEOUT_MS, statementTimeoutMs: STATEMENT_TIMEOUT_MS }, log: { level: 'error' } },
    });
  });
  after(async function () {
    await app?.close();
    await proxy?.stop();
    await pgDb?.drop();
  });

  async function readiness(): Promise<{ status: number; body: Readiness }> {
    const res = await app.request('/readyz');
    return { status: res.status, body: (await res.json()) as Readiness };
  }

  /** Polls /readyz until 200, for at most `limitMs`; returns how long it took. */
  async function waitUntilReady(limitMs = 10_000): Promise<number> {
    const started = Date.now();
    let last: { status: number; body: Readiness } | undefined;
    while (Date.now() - started < limitMs) {
      last = await readiness();
      if (last.status === 200) return Date.now() - started;
      await sleep(100);
    }
    expect.fail(`not ready after ${limitMs} ms: ${JSON.stringify(last)}`);
  }

  describe('(a) the database is down when the server starts', function () {
    const lostName = 'wendy';

    it('the server is up: /healthz 200 {status:"ok"}', async function () {
      expect(proxy.listening).to.equal(false);
      const res = await app.request('/healthz');
      expect(res.status).to.equal(200);
      expect(await res.json()).to.deep.equal({ status: 'ok' });
    });

    it('/readyz: 503 naming "database" in failing', async function () {
      const { status, body } = await readiness();
      expect(status, JSON.stringify(body)).to.equal(503);
      expect(body.checks.database).to.equal('down');
      expect(body.failing).to.be.an('array').that.includes('database');
    });

    it('login and register: 503 unavailable with Retry-After, promptly', async function () {
      const started = Date.now();
      await expectUnavailable(await app.request('/v1/auth/login', { method: 'POST', json: { username: 'nobody', password: 'whatever-password' } }));
      await expectUnavailable(await app.request('/v1/auth/register', { method: 'POST', json: { username: lostName, password: uniquePassword() } }));
      expect(Date.now() - started, 'answered without hanging').to.be.below(5_000);
    });

    it('Bearer routes fail closed (no keys loaded yet): never 200, never 500', async function () {
      const res = await app.request('/v1/verify', { token: 'eyJhbGciOiJFZERTQSJ9.e30.AAAA' });
      expect(res.status).to.be.oneOf([401, 503]);
      expect(res.headers.get('x-auth-user-id')).to.equal(null);
    });

    it('recovers by itself once the database is back: /readyz 200 within 10 s, then register and login work', async function () {
      await proxy.start();
      await waitUntilReady();
      const { body } = await readiness();
      expect(body.checks.database).to.equal('ok');
      // The register refused during the outage left nothing behind: the name is free.
      const password = uniquePassword();
      const res = await app.request('/v1/auth/register', { method: 'POST', json: { username: lostName, password } });
      expect(res.status, await res.clone().text()).to.equal(201);
      const tokens = await login(app, lostName, password);
      const me = await app.request('/v1/me', { token: tokens.accessToken });
      expect(me.status, await me.clone().text()).to.equal(200);
      const verify = await app.request('/v1/verify', { token: tokens.accessToken });
      expect(verify.status).to.equal(200);
    });
  });

  describe('(b) the database goes away under traffic', function () {
    let xena: Account;
    let tokens: TokenResponse;

    before(async function () {
      if (!proxy.listening) await proxy.start();
      await waitUntilReady();
      xena = await createAccount(app, 'xena');
      tokens = await login(app, xena.username, xena.password);
    });

    it('requests in flight and after the cut: only their normal answers or 503 unavailable, never 500', async function () {
      const results: Array<{ route: string; status: number; code?: string; retryAfter: string | null; at: number }> = [];
      const started = Date.now();
      const routes: Array<[string, () => Promise<Response>]> = [
        ['/v1/me', () => app.request('/v1/me', { token: tokens.accessToken })],
        ['/v1/sessions', () => app.request('/v1/sessions', { token: tokens.accessToken })],
        ['/v1/verify', () => app.request('/v1/verify', { token: tokens.accessToken })],
        ['login (wrong password)', () => app.request('/v1/auth/login', { method: 'POST', json: { username: xena.username, password: 'not the password' } })],
      ];
      let cutAt = 0;
      const worker = async ([route, send]: [string, () => Promise<Response>]) => {
        while (Date.now() - started < 2_000) {
          const res = await send();
          const text = await res.text();
          const code = res.headers.get('content-type')?.startsWith('application/problem+json') ? (JSON.parse(text) as { code: string }).code : undefined;
          results.push({ route, status: res.status, code, retryAfter: res.headers.get('retry-after'), at: Date.now() - started });
        }
      };
      const cut = (async () => {
        await sleep(500);
        cutAt = Date.now() - started;
        await proxy.stop();
      })();
      await Promise.all([...routes.map(worker), cut]);

      const summary = JSON.stringify(results.map((r) => `${r.route}:${r.status}${r.code ? `/${r.code}` : ''}@${r.at}`));
      expect(
        results.filter((r) => r.status >= 500 && r.status !== 503),
        summary,
      ).to.deep.equal([]);
      for (const r of results) {
        if (r.status === 503) {
          expect(r.code, summary).to.equal('unavailable');
          expect(r.retryAfter, summary).to.match(/^\d+$/);
        }
        if (r.route === '/v1/verify') expect(r.status, `stateless verify: ${summary}`).to.equal(200);
        // 429 once login throttling notices the repeated failures.
        else if (r.route === 'login (wrong password)') expect(r.status, summary).to.be.oneOf([401, 429, 503]);
        else expect(r.status, summary).to.be.oneOf([200, 503]);
      }
      expect(
        results.some((r) => r.route === '/v1/sessions' && r.status === 200 && r.at < cutAt),
        `traffic before the cut: ${summary}`,
      ).to.equal(true);
      expect(
        results.some((r) => r.route === '/v1/sessions' && r.status === 503 && r.at > cutAt),
        `503 after the cut: ${summary}`,
      ).to.equal(true);
    });

    it('while down: DB-backed routes 503 unavailable; /v1/verify (stateless) and /v1/me (cached profile) still 200', async function () {
      expect(proxy.listening).to.equal(false);
      const me = await app.request('/v1/me', { token: tokens.accessToken });
      expect(me.status, await me.clone().text()).to.equal(200);
      expect(((await me.json()) as { user: { id: string } }).user.id).to.equal(xena.user.id);
      await expectUnavailable(await app.request('/v1/sessions', { token: tokens.accessToken }));
      await expectUnavailable(await app.request('/v1/auth/login', { method: 'POST', json: { username: xena.username, password: xena.password } }));
      // A DB outage is neither a bad token nor reuse: the client must be told to retry.
      await expectUnavailable(await refresh(app, tokens.refreshToken));
      await expectUnavailable(await app.request('/v1/auth/logout', { method: 'POST', token: tokens.accessToken }));

      const verify = await app.request('/v1/verify', { token: tokens.accessToken });
      expect(verify.status, await verify.clone().text()).to.equal(200);
      expect(verify.headers.get('x-auth-user-id')).to.equal(xena.user.id);
      expect(verify.headers.get('x-auth-session-id')).to.equal(tokens.sessionId);

      const health = await app.request('/healthz');
      expect(health.status).to.equal(200);
      const { status, body } = await readiness();
      expect(status).to.equal(503);
      expect(body.failing).to.include('database');
    });

    it('while down: a forged token naming an unknown kid is still 401 invalid_token (refusing needs no database)', async function () {
      expect(proxy.listening).to.equal(false);
      const { privateKey } = await generateKeyPair('EdDSA', { crv: 'Ed25519' });
      const forged = await forgeJwt(
        { alg: 'EdDSA', typ: 'at+jwt', kid: 'kid-nobody-published' },
        decodePart(tokens.accessToken, 1),
        cryptoKeySigner(privateKey, 'EdDSA'),
      );
      for (const path of ['/v1/verify', '/v1/verify', '/v1/me']) {
        const res = await app.request(path, { token: forged });
        await expectInvalidToken(res);
        expect(res.headers.get('x-auth-user-id')).to.equal(null);
      }
    });

    it('once restored: everything works again, and nothing was half-done during the outage', async function () {
      await proxy.start();
      await waitUntilReady();
      // The refresh refused during the outage did not consume the token; the logout did not revoke.
      const rotated = await expectTokenResponse(await refresh(app, tokens.refreshToken));
      expect(rotated.sessionId).to.equal(tokens.sessionId);
      const me = await app.request('/v1/me', { token: tokens.accessToken });
      expect(me.status, await me.clone().text()).to.equal(200);
      tokens = rotated;
      await login(app, xena.username, xena.password);
    });
  });

  describe('(c) the database stops answering (packets dropped, connections stay open)', function () {
    let yuri: Account;
    let tokens: TokenResponse;

    before(async function () {
      if (!proxy.listening) await proxy.start();
      proxy.heal();
      await waitUntilReady();
      yuri = await createAccount(app, 'yuri');
      tokens = await login(app, yuri.username, yuri.password);
      // Fill the pool with idle connections (concurrent requests, one connection each): the
      // queries under test then run on connections that were open before the fault, as they
      // would in production, rather than on new ones that time out while connecting.
      const warm = await Promise.all(Array.from({ length: 8 }, () => app.request('/v1/me', { token: tokens.accessToken })));
      expect(warm.map((res) => res.status)).to.deep.equal(Array.from({ length: 8 }, () => 200));
    });
    after(function () {
      proxy.heal();
    });

    it('DB-backed routes answer 503 unavailable within connect + statement timeout, instead of hanging', async function () {
      proxy.blackhole();
      const bound = CONNECT_TIMEOUT_MS + STATEMENT_TIMEOUT_MS + 2_000;
      for (const [label, send] of [
        ['/v1/sessions', () => app.request('/v1/sessions', { token: tokens.accessToken, signal: AbortSignal.timeout(bound + 1_000) })],
        [
          'login',
          () =>
            app.request('/v1/auth/login', {
              method: 'POST',
              json: { username: yuri.username, password: yuri.password },
              signal: AbortSignal.timeout(bound + 1_000),
            }),
        ],
      ] as const) {
        const started = Date.now();
        let res: Response;
        try {
          res = await send();
        } catch (err) {
          expect.fail(`${label} hung for ${Date.now() - started} ms with the database unresponsive (${(err as Error).name})`);
        }
        const elapsed = Date.now() - started;
        await expectUnavailable(res);
        expect(elapsed, `${label} answered after ${elapsed} ms`).to.be.below(bound);
      }
      const verify = await app.request('/v1/verify', { token: tokens.accessToken });
      expect(verify.status, 'stateless verify').to.equal(200);
    });

    it('/readyz answers 503 naming "database" within the same bound, instead of hanging', async function () {
      expect(proxy.blackholed, 'still blackholed by the previous test').to.equal(true);
      const bound = CONNECT_TIMEOUT_MS + STATEMENT_TIMEOUT_MS + 2_000;
      const started = Date.now();
      let res: Response;
      try {
        res = await app.request('/readyz', { signal: AbortSignal.timeout(bound + 1_000) });
      } catch (err) {
        expect.fail(`/readyz hung for ${Date.now() - started} ms with the database unresponsive (${(err as Error).name})`);
      }
      const body = (await res.json()) as Readiness;
      expect(res.status, JSON.stringify(body)).to.equal(503);
      expect(body.failing).to.include('database');
      expect(Date.now() - started).to.be.below(bound);
    });

    it('recovers once the database answers again', async function () {
      proxy.heal();
      await waitUntilReady();
      const me = await app.request('/v1/me', { token: tokens.accessToken });
      expect(me.status, await me.clone().text()).to.equal(200);
    });
  });
});
