import { expect } from 'chai';
import { createLocalJWKSet, decodeProtectedHeader, jwtVerify, type JWK } from 'jose';
import { startTestApp, type TestApp } from '../helpers/app.js';
import {
  createAccount,
  expectInvalidRequest,
  expectProblem,
  JSON_CONTENT_TYPE,
  login,
  PROBLEM_MEMBERS,
  uniquePassword,
  UUID_V4_RE,
  type Account,
  type TokenResponse,
} from '../helpers/http-assert.js';
import { rawRequest, toResponse } from '../helpers/http-raw.js';

const KIB = 1024;

describe('HTTP protocol: request ids, problems, bodies, headers, system routes', function () {
  let app: TestApp;
  let uma: Account;
  let tokens: TokenResponse;

  before(async function () {
    app = await startTestApp('http_protocol');
    uma = await createAccount(app, 'uma');
    tokens = await login(app, uma.username, uma.password);
  });
  after(async function () {
    await app?.close();
  });

  const post = (path: string, body: string, contentType = 'application/json') =>
    app.request(path, { method: 'POST', body, headers: { 'content-type': contentType } });

  describe('X-Request-Id', function () {
    for (const id of ['req-42', 'a.b:c_d-E9', 'x'.repeat(64), '0190b5a2-7c1e-7000-8000-000000000001']) {
      it(`echoes a sane client id (${id.slice(0, 20)}…) on success and in problems`, async function () {
        const ok = await app.request('/healthz', { headers: { 'x-request-id': id } });
        expect(ok.headers.get('x-request-id')).to.equal(id);
        const problem = await expectProblem(await app.request('/v1/me', { headers: { 'x-request-id': id } }), 401, 'invalid_token');
        expect(problem.requestId).to.equal(id);
      });
    }

    it('generates a UUID when the client sends none, a new one per request', async function () {
      const a = (await app.request('/healthz')).headers.get('x-request-id');
      const b = (await app.request('/healthz')).headers.get('x-request-id');
      expect(a).to.match(UUID_V4_RE);
      expect(b).to.match(UUID_V4_RE);
      expect(a).not.to.equal(b);
    });

    for (const [label, id] of [
      ['300 characters', 'a'.repeat(300)],
      ['spaces', 'has spaces in it'],
      ['markup', '<script>alert(1)</script>'],
      ['quotes and semicolons', `"x";drop table users`],
      ['an empty value', ''],
    ] as const) {
      it(`replaces an insane client id (${label}) with a generated UUID`, async function () {
        const res = await app.request('/v1/nope', { headers: { 'x-request-id': id } });
        const generated = res.headers.get('x-request-id');
        expect(generated).to.match(UUID_V4_RE);
        expect(generated).not.to.equal(id);
        const problem = await expectProblem(res, 404, 'not_found');
        expect(problem.requestId).to.equal(generated);
      });
    }
  });

  describe('RFC 9457 problem details', function () {
    const cases: Array<[string, () => Promise<Response>, number, string, string]> = [
      ['unknown /v1 route', () => app.request('/v1/does-not-exist'), 404, 'not_found', 'Not Found'],
      ['missing Bearer token', () => app.request('/v1/me'), 401, 'invalid_token', 'Unauthorized'],
      [
        'wrong credentials',
        () => app.request('/v1/auth/login', { method: 'POST', json: { username: uma.username, password: 'not the password' } }),
        401,
        'invalid_credentials',
        'Unauthorized',
      ],
      [
        'taken username',
        () => app.request('/v1/auth/register', { method: 'POST', json: { username: uma.username, password: uniquePassword() } }),
        409,
        'username_taken',
        'Conflict',
      ],
      [
        'forged refresh token',
        () => app.request('/v1/auth/refresh', { method: 'POST', json: { refreshToken: 'rt_local_nope' } }),
        401,
        'invalid_refresh_token',
        'Unauthorized',
      ],
      ['wrong method', () => app.request('/v1/auth/login'), 405, 'method_not_allowed', 'Method Not Allowed'],
      ['text body', () => post('/v1/auth/login', 'hello', 'text/plain'), 415, 'unsupported_media_type', 'Unsupported Media Type'],
      [
        'oversized body',
        () => app.request('/v1/auth/login', { method: 'POST', json: { username: 'u', password: 'p'.repeat(17 * KIB) } }),
        413,
        'payload_too_large',
        'Content Too Large',
      ],
    ];
    for (const [label, send, status, code, title] of cases) {
      it(`${label}: ${status} ${code} with exactly {type,title,status,code,detail,requestId}`, async function () {
        const res = await send();
        const problem = await expectProblem(res, status, code);
        expect(Object.keys(problem).sort()).to.deep.equal([...PROBLEM_MEMBERS].sort());
        expect(problem.title).to.equal(title);
        expect(problem.detail).not.to.match(/\n\s+at |node_modules|\.js:\d+|select |insert |update /i);
        expect(res.headers.get('x-request-id')).to.equal(problem.requestId);
      });
    }

    it('validation problems add errors[] with path and message', async function () {
      const problem = await expectInvalidRequest(await app.request('/v1/auth/login', { method: 'POST', json: { username: 1 } }), 'username', 'password');
      expect(Object.keys(problem).sort()).to.deep.equal([...PROBLEM_MEMBERS, 'errors'].sort());
    });
  });

  describe('routing', function () {
    for (const path of ['/v1/nope', '/v1/auth', '/v1/auth/login/extra', '/v1/sessions/x/y', '/nope', '/.well-known/webfinger']) {
      it(`GET ${path}: 404 not_found problem`, async function () {
        await expectProblem(await app.request(path), 404, 'not_found');
      });
    }

    for (const [method, path, allowed] of [
      ['GET', '/v1/auth/login', 'POST'],
      ['PUT', '/v1/auth/register', 'POST'],
      ['PUT', '/v1/me', 'GET'],
      ['POST', '/v1/sessions', 'GET'],
      ['POST', '/healthz', 'GET'],
    ] as const) {
      it(`${method} ${path}: 405 method_not_allowed with an Allow header naming ${allowed} (RFC 9110 §15.5.6)`, async function () {
        const res = await app.request(path, { method, token: tokens.accessToken });
        await expectProblem(res, 405, 'method_not_allowed');
        const allow = (res.headers.get('allow') ?? '').split(',').map((m) => m.trim());
        expect(allow, 'Allow').to.include(allowed);
        expect(allow).not.to.include(method);
      });
    }
  });

  describe('request bodies', function () {
    for (const [label, body] of [
      ['truncated JSON', '{"username":'],
      ['trailing garbage', '{"username":"a","password":"b"} x'],
      ['single quotes', "{'username':'a'}"],
      ['a bare word', 'undefined'],
    ] as const) {
      it(`malformed JSON (${label}): 400 invalid_request`, async function () {
        await expectInvalidRequest(await post('/v1/auth/login', body));
      });
    }

    it('JSON null: 400 invalid_request', async function () {
      await expectInvalidRequest(await post('/v1/auth/login', 'null'));
    });

    for (const contentType of [
      'text/plain',
      'application/x-www-form-urlencoded',
      'multipart/form-data; boundary=x',
      'application/xml',
      'application/json; charset=iso-8859-1',
    ]) {
      it(`Content-Type ${contentType}: 415 unsupported_media_type`, async function () {
        await expectProblem(
          await post('/v1/auth/login', JSON.stringify({ username: uma.username, password: uma.password }), contentType),
          415,
          'unsupported_media_type',
        );
      });
    }

    it('a body without any Content-Type: 415 unsupported_media_type', async function () {
      const body = JSON.stringify({ username: uma.username, password: uma.password });
      const raw = await rawRequest(app.url, {
        method: 'POST',
        path: '/v1/auth/login',
        headers: { 'content-length': String(Buffer.byteLength(body)) },
        chunks: [body],
      });
      await expectProblem(toResponse(raw), 415, 'unsupported_media_type');
    });

    it('Content-Type application/json; charset=utf-8 is accepted', async function () {
      const res = await post('/v1/auth/login', JSON.stringify({ username: uma.username, password: uma.password }), 'application/json; charset=utf-8');
      expect(res.status, await res.clone().text()).to.equal(200);
    });

    it('a body over 16 KiB with Content-Length: 413 payload_too_large', async function () {
      const body = JSON.stringify({ username: uma.username, password: 'p'.repeat(16 * KIB) });
      expect(Buffer.byteLength(body)).to.be.above(16 * KIB);
      await expectProblem(await post('/v1/auth/login', body), 413, 'payload_too_large');
    });

    it('a body over 16 KiB sent chunked (no Content-Length): 413 payload_too_large', async function () {
      const chunk = 'p'.repeat(4 * KIB);
      const raw = await rawRequest(app.url, {
        method: 'POST',
        path: '/v1/auth/login',
        headers: { 'content-type': 'application/json' },
        chunks: ['{"username":"x","password":"', chunk, chunk, chunk, chunk, chunk, '"}'],
      });
      expect(raw.headers['x-request-id']).to.be.a('string');
      await expectProblem(toResponse(raw), 413, 'payload_too_large');
    });

    it('a body just under 16 KiB is read (then refused by field validation, not by size)', async function () {
      const body = JSON.stringify({ username: uma.username, password: 'p'.repeat(16 * KIB - 100) });
      expect(Buffer.byteLength(body)).to.be.below(16 * KIB);
      await expectInvalidRequest(await post('/v1/auth/login', body), 'password');
    });

    it('a small chunked JSON body is read like any other', async function () {
      const raw = await rawRequest(app.url, {
        method: 'POST',
        path: '/v1/auth/login',
        headers: { 'content-type': 'application/json' },
        chunks: [`{"username":${JSON.stringify(uma.username)},`, `"password":${JSON.stringify(uma.password)}}`],
      });
      expect(raw.status, raw.body).to.equal(200);
      expect(raw.headers['transfer-encoding'] ?? raw.headers['content-length']).to.be.a('string');
    });
  });

  describe('response headers', function () {
    for (const [label, send] of [
      ['/healthz', () => app.request('/healthz')],
      ['a 404', () => app.request('/v1/nope')],
      ['a 401', () => app.request('/v1/me')],
      ['the JWKS', () => app.request('/.well-known/jwks.json')],
      ['/v1/me', () => app.request('/v1/me', { token: tokens.accessToken })],
    ] as const) {
      it(`X-Content-Type-Options: nosniff on ${label}`, async function () {
        const res = await send();
        expect(res.headers.get('x-content-type-options')).to.equal('nosniff');
      });
    }

    it('every /v1 response carries Cache-Control: no-store (success, problems, 204)', async function () {
      const own = await login(app, uma.username, uma.password);
      const requests: Array<[string, Promise<Response>]> = [
        ['login', app.request('/v1/auth/login', { method: 'POST', json: { username: uma.username, password: uma.password } })],
        ['register', app.request('/v1/auth/register', { method: 'POST', json: { username: 'cache-probe', password: uniquePassword() } })],
        ['refresh', app.request('/v1/auth/refresh', { method: 'POST', json: { refreshToken: own.refreshToken } })],
        ['me', app.request('/v1/me', { token: tokens.accessToken })],
        ['sessions', app.request('/v1/sessions', { token: tokens.accessToken })],
        ['verify', app.request('/v1/verify', { token: tokens.accessToken })],
        ['401', app.request('/v1/me')],
        ['404', app.request('/v1/nope')],
        ['405', app.request('/v1/auth/login')],
        ['400', post('/v1/auth/login', '{')],
        ['415', post('/v1/auth/login', '{}', 'text/plain')],
        ['413', post('/v1/auth/login', 'x'.repeat(17 * KIB))],
        ['invalid_credentials', app.request('/v1/auth/login', { method: 'POST', json: { username: uma.username, password: 'wrong password' } })],
      ];
      for (const [label, pending] of requests) {
        const res = await pending;
        expect(res.headers.get('cache-control'), `${label} (${res.status})`).to.equal('no-store');
      }
      const logout = await app.request('/v1/auth/logout', { method: 'POST', token: own.accessToken });
      expect(logout.status).to.equal(204);
      expect(logout.headers.get('cache-control'), 'logout').to.equal('no-store');
    });

    it('a login answer (body and every header) never contains the password, nor does a failed one', async function () {
      const password = uniquePassword();
      const account = await createAccount(app, 'vera');
      const ok = await app.request('/v1/auth/login', { method: 'POST', json: { username: account.username, password: account.password } });
      expect(ok.status).to.equal(200);
      const failed = await app.request('/v1/auth/login', { method: 'POST', json: { username: account.username, password } });
      expect(failed.status).to.equal(401);
      const tooLong = 'Secret-' + 'z'.repeat(1100);
      const invalid = await app.request('/v1/auth/login', { method: 'POST', json: { username: account.username, password: tooLong } });
      expect(invalid.status).to.equal(400);
      const weak = await app.request('/v1/auth/register', { method: 'POST', json: { username: 'weak-one', password: 'Baseball' } });
      expect(weak.status).to.equal(400);
      for (const [res, secret] of [
        [ok, account.password],
        [failed, password],
        [invalid, tooLong.slice(0, 40)],
        [weak, 'Baseball'],
      ] as const) {
        const text = await res.text();
        expect(text, 'body').not.to.include(secret);
        expect(text.toLowerCase(), 'body').not.to.include(secret.toLowerCase());
        for (const [name, value] of res.headers) expect(value, `header ${name}`).not.to.include(secret);
      }
    });
  });

  describe('system routes', function () {
    it('GET /healthz: 200 {status:"ok"}', async function () {
      const res = await app.request('/healthz');
      expect(res.status).to.equal(200);
      expect(res.headers.get('content-type')).to.match(JSON_CONTENT_TYPE);
      expect(await res.json()).to.deep.equal({ status: 'ok' });
    });

    it('GET /readyz: 200 with every check ok, database included', async function () {
      const res = await app.request('/readyz');
      const body = (await res.json()) as { status: string; checks: Record<string, string>; failing?: string[] };
      expect(res.status, JSON.stringify(body)).to.equal(200);
      expect(res.headers.get('cache-control')).to.equal('no-store');
      expect(body.status).to.equal('ok');
      expect(body.checks.database).to.equal('ok');
      expect(
        Object.values(body.checks).every((state) => state === 'ok'),
        JSON.stringify(body.checks),
      ).to.equal(true);
      expect(body.failing).to.equal(undefined);
    });

    it('GET /.well-known/jwks.json: the key of issued tokens, Ed25519/EdDSA/sig, public members only', async function () {
      const res = await app.request('/.well-known/jwks.json');
      expect(res.status).to.equal(200);
      expect(res.headers.get('content-type')).to.match(JSON_CONTENT_TYPE);
      const jwks = (await res.json()) as { keys: JWK[] };
      expect(jwks.keys).to.be.an('array').with.length.above(0);
      const kids = jwks.keys.map((k) => k.kid);
      expect(new Set(kids).size, 'kids are unique').to.equal(kids.length);
      for (const key of jwks.keys) {
        for (const secret of ['d', 'p', 'q', 'dp', 'dq', 'qi', 'k', 'oth']) expect(key, `private member ${secret}`).not.to.have.property(secret);
      }
      const { kid, alg, typ } = decodeProtectedHeader(tokens.accessToken);
      expect(alg).to.equal('EdDSA');
      expect(typ).to.equal('at+jwt');
      const key = jwks.keys.find((k) => k.kid === kid);
      expect(key, `kid ${kid} is published`).to.be.an('object');
      expect(key).to.include({ kty: 'OKP', crv: 'Ed25519', alg: 'EdDSA', use: 'sig' });
      expect(Buffer.from(key!.x!, 'base64url')).to.have.length(32);
    });

    it('a standard JWT library verifies an issued access token with the JWKS alone', async function () {
      const jwks = (await (await app.request('/.well-known/jwks.json')).json()) as { keys: JWK[] };
      const { payload } = await jwtVerify(tokens.accessToken, createLocalJWKSet(jwks), {
        issuer: app.container.config.tokens.issuer,
        audience: app.container.config.tokens.audience,
        typ: 'at+jwt',
        algorithms: ['EdDSA'],
      });
      expect(payload.sub).to.equal(uma.user.id);
      expect(payload.sid).to.equal(tokens.sessionId);
      expect(payload.region).to.equal(app.container.config.region);
      expect(payload.preferred_username).to.equal(uma.username);
      expect(payload.jti).to.be.a('string').with.length.above(0);
    });

    it('GET /metrics: Prometheus text with authctl_ metrics, every line well-formed', async function () {
      const res = await app.request('/metrics');
      expect(res.status).to.equal(200);
      expect(res.headers.get('content-type')).to.match(/^(text\/plain; version=0\.0\.4|application\/openmetrics-text)/);
      const text = await res.text();
      expect(text).to.match(/^# TYPE authctl_\w+ (counter|gauge|histogram|summary)$/m);
      expect(text).to.match(/^authctl_\w+(\{[^}]*\})? \S+$/m);
      const sample = /^[a-zA-Z_:][a-zA-Z0-9_:]*(\{([a-zA-Z_][a-zA-Z0-9_]*="([^"\\]|\\.)*",?)*\})? (\S+)( -?\d+)?$/;
      const bad = text.split('\n').filter((line) => line !== '' && !line.startsWith('#') && !sample.test(line));
      expect(bad, 'malformed sample lines').to.deep.equal([]);
      expect(text).not.to.include(tokens.refreshToken);
    });
  });
});
