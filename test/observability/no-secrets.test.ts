import { randomBytes, randomUUID } from 'node:crypto';
import { expect } from 'chai';
import pg from 'pg';
import { startTestApp, TEST_SECRET, type TestApp } from '../helpers/app.js';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';
import { expectProblem, expectTokenResponse, uniquePassword, uniqueUsername, type TokenResponse } from '../helpers/http-assert.js';
import { forgeJwt } from '../helpers/http-jwt.js';
import { TcpProxy } from '../helpers/http-tcp-proxy.js';
import { accessTokenSecrets, assertNoSecrets, LogCapture, refreshTokenSecrets } from '../helpers/log-capture.js';

/**
 * Runs every flow that handles a secret, with a production logger at debug level, then greps
 * everything written for every password, token, MAC, stored hash and the server secret.
 */
describe('no secret is ever logged (passwords, tokens, hashes, the server secret)', function () {
  const capture = new LogCapture();
  const secrets: Array<[string, string]> = [];
  let pgDb: TestDatabase;
  let proxy: TcpProxy;
  let app: TestApp;
  let hashes: string[] = [];

  const password = (name: string, value = uniquePassword()) => {
    secrets.push([`password ${name}`, value]);
    return value;
  };
  const keepTokens = (name: string, tokens: TokenResponse) => {
    secrets.push(...accessTokenSecrets(`${name} access token`, tokens.accessToken), ...refreshTokenSecrets(`${name} refresh token`, tokens.refreshToken));
    return tokens;
  };
  const post = (path: string, json: unknown, token?: string) => app.request(path, { method: 'POST', json, ...(token ? { token } : {}) });
  const loginAs = async (name: string, username: string, pw: string) =>
    keepTokens(name, await expectTokenResponse(await post('/v1/auth/login', { username, password: pw })));

  before(async function () {
    pgDb = await createTestDatabase('obs_no_secrets');
    proxy = new TcpProxy({ host: '127.0.0.1', port: Number(new URL(pgDb.url).port || 5432) });
    await proxy.start();
    const proxied = new URL(pgDb.url);
    proxied.port = String(proxy.port);
    app = await startTestApp('obs_no_secrets', {
      db: { ...pgDb, url: proxied.toString() },
      logSink: capture,
      overrides: { log: { level: 'debug' }, database: { connectTimeoutMs: 500, statementTimeoutMs: 1_000 } },
    });
    secrets.push(['server secret', TEST_SECRET]);

    // Register: a password with characters JSON escapes, and one the policy refuses.
    const alice = uniqueUsername('alice');
    const pw1 = password('initial', `pw "quoted\\slash" ünïcödé ${randomBytes(6).toString('hex')}`);
    const registered = await post('/v1/auth/register', { username: alice, password: pw1 });
    expect(registered.status, await registered.clone().text()).to.equal(201);
    const aliceId = ((await registered.json()) as { user: { id: string } }).user.id;
    await expectProblem(
      await post('/v1/auth/register', { username: uniqueUsername('w'), password: password('too long', uniquePassword().repeat(20)) }),
      400,
      'weak_password',
    );

    // Login: success, wrong password, unknown user, disabled account.
    const s1 = await loginAs('s1', alice, pw1);
    await expectProblem(await post('/v1/auth/login', { username: alice, password: password('wrong') }), 401, 'invalid_credentials');
    await expectProblem(await post('/v1/auth/login', { username: uniqueUsername('nobody'), password: password('unknown user') }), 401, 'invalid_credentials');
    const bob = uniqueUsername('bob');
    const pwBob = password('bob');
    expect((await post('/v1/auth/register', { username: bob, password: pwBob })).status).to.equal(201);
    await app.container.users.setStatus(bob, 'disabled');
    await expectProblem(await post('/v1/auth/login', { username: bob, password: pwBob }), 403, 'account_disabled');

    // Refresh: rotated, grace retry, reuse (revokes s1), forged.
    const r1 = keepTokens('r1', await expectTokenResponse(await post('/v1/auth/refresh', { refreshToken: s1.refreshToken })));
    keepTokens('grace', await expectTokenResponse(await post('/v1/auth/refresh', { refreshToken: s1.refreshToken })));
    keepTokens('r2', await expectTokenResponse(await post('/v1/auth/refresh', { refreshToken: r1.refreshToken })));
    await expectProblem(await post('/v1/auth/refresh', { refreshToken: s1.refreshToken }), 401, 'refresh_token_reused');
    const forgedRefresh = `rt_local_${randomUUID()}_0_${randomBytes(16).toString('base64url')}`;
    secrets.push(...refreshTokenSecrets('forged refresh token', forgedRefresh));
    await expectProblem(await post('/v1/auth/refresh', { refreshToken: forgedRefresh }), 401, 'invalid_refresh_token');

    // Logout, naming a second session by its refresh token.
    const s2 = await loginAs('s2', alice, pw1);
    const s3 = await loginAs('s3', alice, pw1);
    expect((await post('/v1/auth/logout', { refreshToken: s3.refreshToken }, s2.accessToken)).status).to.equal(204);

    // Password change: wrong current password, then right; then an admin reset.
    const s4 = await loginAs('s4', alice, pw1);
    await expectProblem(
      await post('/v1/auth/password', { currentPassword: password('wrong current'), newPassword: password('refused new') }, s4.accessToken),
      401,
      'invalid_credentials',
    );
    const pwNew = password('changed');
    expect((await post('/v1/auth/password', { currentPassword: pw1, newPassword: pwNew }, s4.accessToken)).status).to.equal(204);
    const pwAdmin = password('admin reset');
    await app.container.users.setPassword(aliceId, pwAdmin);

    // Bearer: a live token, forged JWTs, a refresh token where an access token belongs.
    const s5 = await loginAs('s5', alice, pwAdmin);
    expect((await app.request('/v1/me', { token: s5.accessToken })).status).to.equal(200);
    expect((await app.request('/v1/me', { token: s5.accessToken })).status).to.equal(200);
    const claims = { sub: aliceId, sid: s5.sessionId, iss: 'x', aud: 'y', exp: Math.floor(Date.now() / 1000) + 600 };
    const forged = await forgeJwt({ alg: 'EdDSA', kid: 'nope', typ: 'JWT' }, claims, () => randomBytes(64));
    const none = await forgeJwt({ alg: 'none', typ: 'JWT' }, { ...claims, pad: randomBytes(6).toString('hex') });
    secrets.push(...accessTokenSecrets('forged JWT', forged), ['alg:none JWT', none]);
    for (const token of [forged, none, s5.refreshToken]) expect((await app.request('/v1/me', { token })).status).to.equal(401);
    // A client that sends its refresh token as its request id (a sane id: echoed and logged).
    expect((await app.request('/healthz', { headers: { 'x-request-id': s5.refreshToken } })).status).to.equal(200);

    // Bodies the server cannot use, each carrying a password.
    const pwMalformed = password('in malformed JSON');
    await expectProblem(
      await app.request('/v1/auth/login', {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: `{"username":"${alice}","password":"${pwMalformed}"`,
      }),
      400,
      'invalid_request',
    );
    const pwBadJson = password('in bad JSON');
    await expectProblem(
      await app.request('/v1/auth/login', { method: 'POST', headers: { 'content-type': 'application/json' }, body: pwBadJson }),
      400,
      'invalid_request',
    );
    const pwWrongType = password('next to a wrong type');
    await expectProblem(await post('/v1/auth/login', { username: 42, password: pwWrongType }), 400, 'invalid_request');
    await expectProblem(await post('/v1/auth/login', { username: pwWrongType, password: 42 }), 400, 'invalid_request');
    const pwText = password('as text/plain');
    await expectProblem(
      await app.request('/v1/auth/login', { method: 'POST', headers: { 'content-type': 'text/plain' }, body: `password=${pwText}` }),
      415,
      'unsupported_media_type',
    );

    // A database outage while secrets are in flight (db.unavailable logs the cause).
    await proxy.stop();
    await expectProblem(await post('/v1/auth/register', { username: uniqueUsername('carol'), password: password('during outage') }), 503, 'unavailable');
    await expectProblem(await post('/v1/auth/login', { username: alice, password: pwAdmin }), 503, 'unavailable');
    await expectProblem(await post('/v1/auth/refresh', { refreshToken: s5.refreshToken }), 503, 'unavailable');
    await proxy.start();

    const client = new pg.Client({ connectionString: pgDb.url });
    await client.connect();
    try {
      hashes = (await client.query<{ password_hash: string }>('select password_hash from users')).rows.map((r) => r.password_hash);
    } finally {
      await client.end();
    }
    for (const [i, hash] of hashes.entries()) {
      const parts = hash.split('$');
      secrets.push([`stored hash ${i}`, hash], [`stored hash ${i} (salt)`, parts.at(-2)!], [`stored hash ${i} (digest)`, parts.at(-1)!]);
    }
    await capture.settle();
  });

  after(async function () {
    await app?.close();
    await proxy?.stop();
    await pgDb?.drop();
  });

  it('the flows ran and were logged (the grep below has something to search)', function () {
    expect(hashes, 'hashes read from users').to.have.length(2);
    for (const hash of hashes) expect(hash).to.match(/^\$argon2id\$/);
    const events = capture.entries().map((l) => l.event);
    for (const event of [
      'user.registered',
      'login.succeeded',
      'login.failed',
      'token.refreshed',
      'token.reused',
      'session.revoked',
      'user.password_changed',
      'cache.miss',
      'cache.hit',
      'db.unavailable',
      'http.request',
    ]) {
      expect(events, `a ${event} line`).to.include(event);
    }
    const statuses = new Set(
      capture
        .entries()
        .filter((l) => l.event === 'http.request')
        .map((l) => l.status),
    );
    for (const status of [200, 201, 204, 400, 401, 403, 415, 503]) expect([...statuses], `an http.request line with status ${status}`).to.include(status);
    expect(secrets.length).to.be.above(40);
  });

  it('no password, token, MAC, hash or server secret in any line', function () {
    assertNoSecrets(capture.lines, secrets);
  });

  it('the grep itself finds a secret when one is written (raw or JSON-escaped)', function () {
    const [name, value] = secrets.find(([n]) => n === 'password initial')!;
    const sink = new LogCapture();
    sink.write(`${JSON.stringify({ message: 'oops', leaked: value })}\n`);
    expect(() => assertNoSecrets(sink.lines, [[name, value]])).to.throw(/password initial in line 0/);
    expect(() => assertNoSecrets([`plain ${value}`], [[name, value]])).to.throw(/password initial/);
  });
});
