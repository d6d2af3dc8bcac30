import { sign } from 'node:crypto';
import { expect } from 'chai';
import fc from 'fast-check';
import { generateKeyPair } from 'jose';
import * as oidc from 'openid-client';
import { introspectionResponseSchema } from '../../src/http/routes/oauth.js';
import { ManualClock } from '../../src/platform/clock.js';
import { migrateDatabase, startTestApp, type TestApp } from '../helpers/app.js';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';
import { createAccount, expectProblem, expectTokenResponse, login, refresh, type Account, type TokenResponse } from '../helpers/http-assert.js';
import { cryptoKeySigner, decodePart, forgeJwt } from '../helpers/http-jwt.js';
import { TcpProxy } from '../helpers/http-tcp-proxy.js';
import { basic, expectOAuthError, postForm, startIssuerApp } from './support.js';

const RATE_LIMIT = 100;

describe('POST /oauth/introspect (RFC 7662)', function () {
  // Time moves only when a test says so: expiry and the one-second rate-limit window are exact.
  const clock = new ManualClock();
  let app: TestApp;
  let rita: Account;
  let gateway: { id: string; secret: string };
  let revoker: { id: string; secret: string };

  before(async function () {
    app = await startIssuerApp('oauth_introspect', { clock, overrides: () => ({ rateLimit: { introspectPerClient: RATE_LIMIT } }) });
    rita = await createAccount(app, 'rita');
    const issued = await app.container.clients.create('gateway', ['introspect']);
    gateway = { id: issued.client.id, secret: issued.secret };
    const other = await app.container.clients.create('revoker only', ['revoke']);
    revoker = { id: other.client.id, secret: other.secret };
  });
  after(async function () {
    await app?.close();
  });
  // A fresh rate-limit window for every test (the limit has its own test).
  beforeEach(function () {
    clock.advance(1);
  });

  const start = () => login(app, rita.username, rita.password);
  const introspect = (fields: Record<string, string>, headers: Record<string, string> = { authorization: basic(gateway.id, gateway.secret) }) =>
    postForm(app, '/oauth/introspect', fields, headers);

  async function expectIntrospection(res: Response): Promise<Record<string, unknown>> {
    const text = await res.text();
    expect(res.status, text).to.equal(200);
    expect(res.headers.get('content-type')).to.match(/^application\/json/);
    expect(res.headers.get('cache-control')).to.equal('no-store');
    const body = JSON.parse(text) as Record<string, unknown>;
    introspectionResponseSchema.strict().parse(body);
    return body;
  }

  async function expectInactive(res: Response): Promise<void> {
    expect(await expectIntrospection(res)).to.deep.equal({ active: false });
  }

  describe('access tokens', function () {
    it('a live token: active, with the claims of the token and nothing a user-facing session lacks', async function () {
      const tokens = await start();
      const claims = decodePart(tokens.accessToken, 1);
      const body = await expectIntrospection(await introspect({ token: tokens.accessToken }));
      expect(body).to.deep.equal({
        active: true,
        token_use: 'access_token',
        token_type: 'Bearer',
        sub: rita.user.id,
        sid: tokens.sessionId,
        iss: app.url,
        aud: 'authctl',
        exp: claims.exp,
        iat: claims.iat,
        jti: claims.jti,
        region: 'local',
        username: rita.username,
        auth_time: claims.auth_time,
        amr: ['pwd'],
        acr: 'aal1',
      });
    });

    it('client_secret_post works as Basic does; a hint is only a hint (a wrong or unknown one changes nothing)', async function () {
      const tokens = await start();
      const posted = await expectIntrospection(await introspect({ token: tokens.accessToken, client_id: gateway.id, client_secret: gateway.secret }, {}));
      expect(posted.active).to.equal(true);
      for (const token_type_hint of ['refresh_token', 'access_token', 'id_token']) {
        expect((await expectIntrospection(await introspect({ token: tokens.accessToken, token_type_hint }))).active, token_type_hint).to.equal(true);
      }
    });

    it('openid-client tokenIntrospection() with client_secret_basic and client_secret_post reads the answer', async function () {
      const tokens = await start();
      for (const auth of [oidc.ClientSecretBasic(gateway.secret), oidc.ClientSecretPost(gateway.secret)]) {
        const config = await oidc.discovery(new URL(app.url), gateway.id, undefined, auth, { execute: [oidc.allowInsecureRequests] });
        const answer = await oidc.tokenIntrospection(config, tokens.accessToken);
        expect(answer.active).to.equal(true);
        expect(answer.sub).to.equal(rita.user.id);
        expect(answer.token_type).to.equal('Bearer');
        expect((await oidc.tokenIntrospection(config, `${tokens.accessToken}x`)).active).to.equal(false);
      }
    });

    it('forged: flipped signature bytes, alg none, another key with the real kid, a re-signed payload, a respelling — each {active:false} alone', async function () {
      const tokens = await start();
      const [head, body, sig] = tokens.accessToken.split('.') as [string, string, string];
      const header = decodePart(tokens.accessToken, 0);
      const claims = decodePart(tokens.accessToken, 1);
      const bytes = Buffer.from(sig, 'base64url');
      bytes[0]! ^= 0xff;
      bytes[bytes.length - 1]! ^= 0x01;
      const { privateKey } = await generateKeyPair('EdDSA', { crv: 'Ed25519' });
      const forged = [
        `${head}.${body}.${bytes.toString('base64url')}`,
        await forgeJwt({ ...header, alg: 'none' }, claims),
        `${Buffer.from(JSON.stringify({ alg: 'none', typ: 'at+jwt' })).toString('base64url')}.${body}.`,
        await forgeJwt(header, claims, cryptoKeySigner(privateKey, 'EdDSA')),
        `${head}.${Buffer.from(JSON.stringify({ ...claims, sub: 'someone-else' })).toString('base64url')}.${sig}`,
        `${head}.${body}.${sig}==`,
        'not a token',
        'a'.repeat(5000),
      ];
      for (const token of forged) await expectInactive(await introspect({ token }));
    });

    it('signed by the real key but for another audience or issuer: inactive', async function () {
      const tokens = await start();
      const header = decodePart(tokens.accessToken, 0);
      const claims = decodePart(tokens.accessToken, 1);
      const { key } = app.container.keys.signingKey();
      const realKey = (input: Uint8Array) => sign(null, input, key);
      await expectInactive(await introspect({ token: await forgeJwt(header, { ...claims, aud: 'another-api' }, realKey) }));
      await expectInactive(await introspect({ token: await forgeJwt(header, { ...claims, iss: 'https://elsewhere.example' }, realKey) }));
      // The control: the same signer with the real claims is accepted (the forgeries fail on their claims).
      expect((await expectIntrospection(await introspect({ token: await forgeJwt(header, { ...claims, jti: 'fresh' }, realKey) }))).active).to.equal(true);
    });

    it('expired (past exp and the clock skew): inactive', async function () {
      const tokens = await start();
      const { accessTtl, clockSkew } = app.container.config.tokens;
      clock.advance(accessTtl + clockSkew - 5);
      expect((await expectIntrospection(await introspect({ token: tokens.accessToken }))).active).to.equal(true);
      clock.advance(10);
      await expectInactive(await introspect({ token: tokens.accessToken }));
    });

    it('revoked by logout: inactive at once, exactly when Bearer checks refuse it', async function () {
      const tokens = await start();
      expect((await expectIntrospection(await introspect({ token: tokens.accessToken }))).active).to.equal(true);
      const out = await app.request('/v1/auth/logout', { method: 'POST', token: tokens.accessToken });
      expect(out.status).to.equal(204);
      await expectInactive(await introspect({ token: tokens.accessToken }));
      expect((await app.request('/v1/verify', { token: tokens.accessToken })).status).to.equal(401);
    });

    it('of a user an admin disabled: inactive (access and refresh token)', async function () {
      const dora = await createAccount(app, 'dora');
      const tokens = await login(app, dora.username, dora.password);
      await app.container.users.setStatus(dora.user.id, 'disabled');
      await expectInactive(await introspect({ token: tokens.accessToken }));
      await expectInactive(await introspect({ token: tokens.refreshToken }));
    });
  });

  describe('refresh tokens', function () {
    it('the current token: active with the session, owner and lifetime; introspecting neither rotates nor spends it', async function () {
      const tokens = await start();
      const session = await app.container.sessions.findById(tokens.sessionId);
      for (let i = 0; i < 3; i++) {
        const body = await expectIntrospection(await introspect({ token: tokens.refreshToken, token_type_hint: 'refresh_token' }));
        expect(body).to.deep.equal({
          active: true,
          token_use: 'refresh_token',
          sub: rita.user.id,
          sid: tokens.sessionId,
          iss: app.url,
          exp: Math.floor(session!.expiresAt.getTime() / 1000),
          iat: Math.floor(session!.rotatedAt.getTime() / 1000),
          region: 'local',
          username: rita.username,
          // The session's authentication: what its access tokens say.
          auth_time: Math.floor(session!.authTime.getTime() / 1000),
          amr: ['pwd'],
          acr: 'aal1',
        });
      }
      expect((await app.container.sessions.findById(tokens.sessionId))!.counter, 'not rotated').to.equal(session!.counter);
      // Still the client's to spend: the refresh succeeds, and the session is not revoked as reused.
      const next = await expectTokenResponse(await refresh(app, tokens.refreshToken));
      expect((await expectIntrospection(await introspect({ token: next.refreshToken }))).active).to.equal(true);
      // The spent token is inactive; introspecting it (past the grace window) is no reuse.
      clock.advance(app.container.config.tokens.refreshGrace + 1);
      await expectInactive(await introspect({ token: tokens.refreshToken }));
      await expectInactive(await introspect({ token: tokens.refreshToken, token_type_hint: 'access_token' }));
      expect((await app.container.sessions.findById(tokens.sessionId))!.revokedAt, 'no reuse detection').to.equal(null);
      await expectTokenResponse(await refresh(app, next.refreshToken));
    });

    it('a forged MAC is inactive without touching the database; a logged-out session is inactive', async function () {
      const tokens = await start();
      const repo = app.container.repos.sessions;
      const original = repo.findWithOwner.bind(repo);
      let reads = 0;
      repo.findWithOwner = (id) => {
        reads++;
        return original(id);
      };
      try {
        const last = tokens.refreshToken.at(-1) === 'A' ? 'B' : 'A';
        await expectInactive(await introspect({ token: `${tokens.refreshToken.slice(0, -1)}${last}` }));
        await expectInactive(await introspect({ token: tokens.refreshToken.replace(/_(\d+)_/, (_m, n: string) => `_${Number(n) + 1}_`) }));
        expect(reads, 'database reads for forged tokens').to.equal(0);
        expect((await expectIntrospection(await introspect({ token: tokens.refreshToken }))).active).to.equal(true);
        expect(reads, 'the authentic token reads its session').to.equal(1);
      } finally {
        repo.findWithOwner = original;
      }
      await app.request('/v1/auth/logout', { method: 'POST', token: tokens.accessToken });
      await expectInactive(await introspect({ token: tokens.refreshToken }));
    });

    it('an expired session is inactive', async function () {
      const tokens = await start();
      clock.advance(app.container.config.tokens.refreshTtl + 1);
      await expectInactive(await introspect({ token: tokens.refreshToken }));
      await expectProblem(await refresh(app, tokens.refreshToken), 401, 'invalid_refresh_token');
    });
  });

  describe('client authentication and errors (RFC 6749 §5.2 format)', function () {
    let tokens: TokenResponse;
    before(async function () {
      tokens = await start();
    });

    it('a wrong secret, an unknown client, no credentials, another scheme: 401 invalid_client with WWW-Authenticate: Basic', async function () {
      await expectOAuthError(
        await introspect({ token: tokens.accessToken }, { authorization: basic(gateway.id, `${gateway.secret}x`) }),
        401,
        'invalid_client',
      );
      await expectOAuthError(
        await introspect({ token: tokens.accessToken }, { authorization: basic('svc_00000000000000000000000000000000', gateway.secret) }),
        401,
        'invalid_client',
      );
      await expectOAuthError(await introspect({ token: tokens.accessToken, client_id: gateway.id, client_secret: 'wrong' }, {}), 401, 'invalid_client');
      await expectOAuthError(await introspect({ token: tokens.accessToken }, {}), 401, 'invalid_client');
      await expectOAuthError(await introspect({ token: tokens.accessToken, client_id: gateway.id }, {}), 401, 'invalid_client');
      await expectOAuthError(await introspect({ token: tokens.accessToken }, { authorization: `Bearer ${tokens.accessToken}` }), 401, 'invalid_client');
      await expectOAuthError(await introspect({ token: tokens.accessToken }, { authorization: 'Basic !!!' }), 401, 'invalid_client');
      await expectOAuthError(
        await introspect({ token: tokens.accessToken }, { authorization: `Basic ${Buffer.from('no-colon').toString('base64')}` }),
        401,
        'invalid_client',
      );
      // Not form-urlencoded inside Basic: a lone "%" does not decode.
      const badEscape = `Basic ${Buffer.from(`${gateway.id}:%zz${gateway.secret}`).toString('base64')}`;
      await expectOAuthError(await introspect({ token: tokens.accessToken }, { authorization: badEscape }), 401, 'invalid_client');
    });

    it('Basic credentials are form-urlencoded (RFC 6749 §2.3.1): every character percent-encoded still authenticates', async function () {
      const every = (s: string) => [...Buffer.from(s)].map((b) => `%${b.toString(16).toUpperCase().padStart(2, '0')}`).join('');
      const header = `Basic ${Buffer.from(`${every(gateway.id)}:${every(gateway.secret)}`).toString('base64')}`;
      expect((await expectIntrospection(await introspect({ token: tokens.accessToken }, { authorization: header }))).active).to.equal(true);
      // And in any case of the scheme name.
      const lower = basic(gateway.id, gateway.secret).replace('Basic', 'bAsIc');
      expect((await expectIntrospection(await introspect({ token: tokens.accessToken }, { authorization: lower }))).active).to.equal(true);
    });

    it('both methods at once, or a client_id that differs from Basic: 400 invalid_request', async function () {
      await expectOAuthError(await introspect({ token: tokens.accessToken, client_id: gateway.id, client_secret: gateway.secret }), 400, 'invalid_request');
      await expectOAuthError(await introspect({ token: tokens.accessToken, client_id: revoker.id }), 400, 'invalid_request');
      // The same client_id beside Basic is tolerated.
      expect((await expectIntrospection(await introspect({ token: tokens.accessToken, client_id: gateway.id }))).active).to.equal(true);
    });

    it('a client without the introspect scope: 403 unauthorized_client', async function () {
      await expectOAuthError(await introspect({ token: tokens.accessToken }, { authorization: basic(revoker.id, revoker.secret) }), 403, 'unauthorized_client');
    });

    it('JSON, another type, a missing or repeated token, a compressed form: 400 invalid_request', async function () {
      const auth = { authorization: basic(gateway.id, gateway.secret) };
      const json = await app.request('/oauth/introspect', { method: 'POST', headers: auth, json: { token: tokens.accessToken } });
      expect((await expectOAuthError(json, 400, 'invalid_request')).error_description).to.match(/x-www-form-urlencoded/);
      await expectOAuthError(
        await app.request('/oauth/introspect', { method: 'POST', headers: { ...auth, 'content-type': 'text/plain' }, body: `token=${tokens.accessToken}` }),
        400,
        'invalid_request',
      );
      await expectOAuthError(await introspect({}), 400, 'invalid_request');
      await expectOAuthError(await introspect({ token: '' }), 400, 'invalid_request');
      await expectOAuthError(await app.request('/oauth/introspect', { method: 'POST', headers: auth }), 400, 'invalid_request');
      const twice = await app.request('/oauth/introspect', {
        method: 'POST',
        headers: { ...auth, 'content-type': 'application/x-www-form-urlencoded' },
        body: `token=${tokens.accessToken}&token=other`,
      });
      expect((await expectOAuthError(twice, 400, 'invalid_request')).error_description).to.match(/token.*more than once/);
      await expectOAuthError(
        await app.request('/oauth/introspect', {
          method: 'POST',
          headers: { ...auth, 'content-type': 'application/x-www-form-urlencoded; charset=iso-8859-1' },
          body: `token=${tokens.accessToken}`,
        }),
        400,
        'invalid_request',
      );
      await expectOAuthError(
        await app.request('/oauth/introspect', {
          method: 'POST',
          headers: { ...auth, 'content-type': 'application/x-www-form-urlencoded', 'content-encoding': 'gzip' },
          body: `token=${tokens.accessToken}`,
        }),
        400,
        'invalid_request',
      );
    });

    it('GET: 405 in the OAuth format with Allow; an unknown /oauth path: 404; a body over http.bodyLimit: 413', async function () {
      const get = await app.request('/oauth/introspect');
      expect(get.headers.get('allow')).to.match(/POST/);
      await expectOAuthError(get, 405, 'invalid_request');
      await expectOAuthError(await app.request('/oauth/token', { method: 'POST' }), 404, 'invalid_request');
      const big = await introspect({ token: 'x'.repeat(app.container.config.http.bodyLimit + 1) });
      expect((await expectOAuthError(big, 413, 'invalid_request')).error_description).to.match(/larger than/);
      // The rest of the API keeps RFC 9457 problems.
      await expectProblem(await app.request('/v1/nope'), 404, 'not_found');
    });

    it(`over rateLimit.introspectPerClient (${RATE_LIMIT}/s): 429 temporarily_unavailable with Retry-After, until the next second`, async function () {
      let limited: Response | undefined;
      let served = 0;
      for (let i = 0; i < RATE_LIMIT + 5 && !limited; i++) {
        const res = await introspect({ token: 'x' });
        if (res.status === 429) limited = res;
        else {
          await expectInactive(res);
          served++;
        }
      }
      expect(served).to.equal(RATE_LIMIT);
      expect(limited, 'a 429 after the limit').to.not.equal(undefined);
      expect(limited!.headers.get('retry-after')).to.equal('1');
      await expectOAuthError(limited!, 429, 'temporarily_unavailable');
      // Other clients have their own budget; wrong secrets are refused before they count.
      await expectOAuthError(await introspect({ token: 'x' }, { authorization: basic(revoker.id, revoker.secret) }), 403, 'unauthorized_client');
      clock.advance(1);
      await expectInactive(await introspect({ token: 'x' }));
    });

    it('a wrong secret costs the time a right one does (medians over interleaved calls)', async function () {
      const right = basic(gateway.id, gateway.secret);
      const wrong = basic(gateway.id, `${gateway.secret.slice(0, -1)}${gateway.secret.at(-1) === 'A' ? 'B' : 'A'}`);
      const unknown = basic('svc_0123456789abcdef0123456789abcdef', gateway.secret);
      const times: Record<'right' | 'wrong' | 'unknown', number[]> = { right: [], wrong: [], unknown: [] };
      for (let i = 0; i < 150; i++) {
        if (i % 50 === 0) clock.advance(1);
        for (const [name, header] of [
          ['right', right],
          ['wrong', wrong],
          ['unknown', unknown],
        ] as const) {
          const started = process.hrtime.bigint();
          const res = await introspect({ token: 'x' }, { authorization: header });
          await res.arrayBuffer();
          times[name].push(Number(process.hrtime.bigint() - started) / 1e6);
          expect(res.status).to.equal(name === 'right' ? 200 : 401);
        }
      }
      const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
      const m = { right: median(times.right), wrong: median(times.wrong), unknown: median(times.unknown) };
      // Generous: a shared 2-core machine. A timing oracle (a DB read, argon2, an early return
      // before hashing) shows as a factor far above this.
      for (const name of ['wrong', 'unknown'] as const) {
        expect(m[name] / m.right, JSON.stringify(m)).to.be.within(1 / 3, 3);
      }
    });

    it('no 500 for hostile bodies, headers and types (a list, then fast-check)', async function () {
      const auth = basic(gateway.id, gateway.secret);
      const hostile: Array<{ type?: string; body: string; authorization?: string }> = [
        { body: '%' },
        { body: 'token=%E0%A4%A' },
        { body: 'token=%FF%FE%00' },
        { body: '&&&&====&&' },
        { body: '__proto__=1&token=x&constructor=2' },
        { body: `token=${'%25'.repeat(3000)}` },
        { body: 'token[]=a&token[]=b' },
        { body: '\u0000\u0001token=x' },
        { type: 'application/x-www-form-urlencoded; charset=utf-16', body: 'token=x' },
        { type: 'multipart/form-data; boundary=x', body: '--x\r\nContent-Disposition: form-data; name="token"\r\n\r\nx\r\n--x--' },
        { type: 'application/json', body: '{"token":' },
        { type: '', body: 'token=x' },
        { body: 'token=x', authorization: 'Basic' },
        { body: 'token=x', authorization: `Basic ${'A'.repeat(5000)}` },
        { body: 'token=x', authorization: `Basic ${Buffer.from(':').toString('base64')}` },
        { body: 'token=x', authorization: `Basic ${Buffer.from('\u00ff\u0000:\u0000').toString('base64')}` },
        { body: 'token=x', authorization: 'Basic =====' },
      ];
      const send = (h: { type?: string; body: string; authorization?: string }) =>
        app.request('/oauth/introspect', {
          method: 'POST',
          headers: { authorization: h.authorization ?? auth, ...(h.type !== '' ? { 'content-type': h.type ?? 'application/x-www-form-urlencoded' } : {}) },
          body: h.body,
        });
      for (const h of hostile) {
        const res = await send(h);
        const text = await res.text();
        expect(res.status, `${JSON.stringify(h)} → ${text}`).to.be.oneOf([200, 400, 401, 413]);
        expect(() => JSON.parse(text) as unknown, text).to.not.throw();
      }
      await fc.assert(
        fc.asyncProperty(
          fc.string({ maxLength: 300 }),
          fc.constantFrom('application/x-www-form-urlencoded', 'text/plain', 'application/json'),
          fc.option(fc.string({ maxLength: 80 })),
          async (body, type, authorization) => {
            clock.advance(1);
            const headers: Record<string, string> = {
              'content-type': type,
              authorization: authorization === null ? auth : `Basic ${Buffer.from(authorization).toString('base64')}`,
            };
            const res = await app.request('/oauth/introspect', { method: 'POST', headers, body });
            const text = await res.text();
            expect(res.status, `${JSON.stringify({ body, type, authorization })} → ${text}`).to.be.oneOf([200, 400, 401]);
            const answer = JSON.parse(text) as Record<string, unknown>;
            expect(answer.active === false || typeof answer.error === 'string', text).to.equal(true);
          },
        ),
        { numRuns: 150 },
      );
    });
  });
});

describe('POST /oauth/introspect while PostgreSQL is down', function () {
  let pgDb: TestDatabase;
  let proxy: TcpProxy;
  let app: TestApp;
  let tokens: TokenResponse;
  let client: { id: string; secret: string };

  before(async function () {
    pgDb = await createTestDatabase('oauth_introspect_outage');
    proxy = new TcpProxy({ host: '127.0.0.1', port: Number(new URL(pgDb.url).port || 5432) });
    await proxy.start();
    const proxied = new URL(pgDb.url);
    proxied.port = String(proxy.port);
    const db = { ...pgDb, url: proxied.toString() };
    await migrateDatabase(db.url);
    app = await startTestApp('oauth_outage', { db, overrides: { database: { connectTimeoutMs: 500, statementTimeoutMs: 1_000 } } });
    const account = await createAccount(app, 'olga');
    tokens = await login(app, account.username, account.password);
    const issued = await app.container.clients.create('gateway', ['introspect']);
    client = { id: issued.client.id, secret: issued.secret };
    await proxy.stop();
  });
  after(async function () {
    await app?.close();
    await proxy?.stop();
    await pgDb?.drop();
  });

  it('an access token is still answered (no database read); a refresh token is 503 temporarily_unavailable with Retry-After', async function () {
    const authorization = basic(client.id, client.secret);
    const access = await postForm(app, '/oauth/introspect', { token: tokens.accessToken }, { authorization });
    expect(access.status, await access.clone().text()).to.equal(200);
    expect(((await access.json()) as { active: boolean }).active).to.equal(true);
    const res = await postForm(app, '/oauth/introspect', { token: tokens.refreshToken }, { authorization });
    expect(res.headers.get('retry-after')).to.match(/^\d+$/);
    await expectOAuthError(res, 503, 'temporarily_unavailable');
  });
});
