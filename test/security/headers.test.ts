import { gzipSync } from 'node:zlib';
import { expect } from 'chai';
import { startTestApp, type TestApp } from '../helpers/app.js';
import { createAccount, expectProblem, expectTokenResponse, login, refresh, type Account } from '../helpers/http-assert.js';

const ALLOWED = 'https://app.example.com';

describe('response headers, CORS and content handling (OWASP REST, ASVS V14)', function () {
  let app: TestApp;
  let account: Account;

  before(async function () {
    app = await startTestApp('sec_headers', { overrides: { http: { corsOrigins: [`${ALLOWED}/`, 'http://localhost:3000'] } } });
    account = await createAccount(app, 'headers');
  });
  after(async () => app?.close());

  function expectHardened(res: Response, label: string): void {
    expect(res.headers.get('x-content-type-options'), `${label}: nosniff`).to.equal('nosniff');
    expect(res.headers.get('referrer-policy'), `${label}: Referrer-Policy`).to.equal('no-referrer');
    expect(res.headers.get('x-frame-options'), `${label}: X-Frame-Options`).to.equal('DENY');
    expect(res.headers.get('content-security-policy'), `${label}: CSP`).to.include("default-src 'none'");
    expect(res.headers.get('x-powered-by'), `${label}: no X-Powered-By`).to.equal(null);
    expect(res.headers.get('server'), `${label}: no Server banner`).to.equal(null);
  }

  it('every kind of response carries the hardening headers and no X-Powered-By', async function () {
    const tokens = await login(app, account.username, account.password);
    const responses: Array<[string, Response]> = [
      ['login', await app.request('/v1/auth/login', { method: 'POST', json: { username: account.username, password: account.password } })],
      ['401', await app.request('/v1/me')],
      ['404', await app.request('/nope')],
      ['me', await app.request('/v1/me', { token: tokens.accessToken })],
      ['jwks', await app.request('/.well-known/jwks.json')],
      ['healthz', await app.request('/healthz')],
    ];
    for (const [label, res] of responses) expectHardened(res, label);
  });

  it('Cache-Control: no-store on every token response (login, refresh) and on errors and user data', async function () {
    const tokens = await expectTokenResponse(
      await app.request('/v1/auth/login', { method: 'POST', json: { username: account.username, password: account.password } }),
    );
    const refreshed = await refresh(app, tokens.refreshToken);
    await expectTokenResponse(refreshed);
    for (const res of [
      await app.request('/v1/me', { token: tokens.accessToken }),
      await app.request('/v1/auth/login', { method: 'POST', json: { username: 'nobody', password: 'x' } }),
    ]) {
      expect(res.headers.get('cache-control')).to.equal('no-store');
    }
  });

  describe('CORS allow-list (@koa/cors)', function () {
    it('an allowed origin gets its own origin back (never "*"), and no credentials', async function () {
      const res = await app.request('/v1/auth/login', { method: 'POST', json: { username: 'x', password: 'y' }, headers: { origin: ALLOWED } });
      expect(res.headers.get('access-control-allow-origin')).to.equal(ALLOWED);
      expect(res.headers.get('access-control-allow-credentials')).to.equal(null);
      expect(res.headers.get('vary')).to.match(/origin/i);
      expect(res.headers.get('access-control-expose-headers')).to.include('X-Request-Id');
    });

    it('a preflight from an allowed origin is answered with the allowed methods and headers', async function () {
      const res = await app.request('/v1/auth/login', {
        method: 'OPTIONS',
        headers: { origin: 'http://localhost:3000', 'access-control-request-method': 'POST', 'access-control-request-headers': 'content-type' },
      });
      expect(res.status).to.equal(204);
      expect(res.headers.get('access-control-allow-origin')).to.equal('http://localhost:3000');
      expect(res.headers.get('access-control-allow-methods')?.split(',')).to.include.members(['GET', 'POST', 'PATCH', 'DELETE']);
      expect(res.headers.get('access-control-allow-headers')).to.match(/content-type/i);
    });

    for (const origin of ['https://evil.example', 'https://app.example.com.evil.example', 'null', 'http://app.example.com', 'https://APP.example.com:443x']) {
      it(`origin ${origin}: no CORS headers at all`, async function () {
        const res = await app.request('/v1/me', { headers: { origin } });
        expect(res.headers.get('access-control-allow-origin')).to.equal(null);
        const preflight = await app.request('/v1/auth/login', { method: 'OPTIONS', headers: { origin, 'access-control-request-method': 'POST' } });
        expect(preflight.headers.get('access-control-allow-origin')).to.equal(null);
        expect(preflight.headers.get('access-control-allow-methods')).to.equal(null);
      });
    }

    it('without corsOrigins configured, no origin gets CORS headers', async function () {
      const plain = await startTestApp('sec_headers_nocors');
      try {
        const res = await plain.request('/v1/me', { headers: { origin: ALLOWED } });
        expect(res.headers.get('access-control-allow-origin')).to.equal(null);
      } finally {
        await plain.close();
      }
    });
  });

  it('a token in the URL is never accepted (ASVS V3.1.1): only the Authorization header counts', async function () {
    const tokens = await login(app, account.username, account.password);
    for (const query of [`access_token=${tokens.accessToken}`, `token=${tokens.accessToken}`, `authorization=Bearer%20${tokens.accessToken}`]) {
      const res = await app.request(`/v1/me?${query}`);
      expect(res.status, query.split('=')[0]).to.equal(401);
    }
    const control = await app.request('/v1/me', { token: tokens.accessToken });
    expect(control.status).to.equal(200);
  });

  describe('strict content handling', function () {
    const body = JSON.stringify({ username: 'someone', password: 'whatever pw' });

    for (const type of [
      'text/plain',
      'application/x-www-form-urlencoded',
      'multipart/form-data; boundary=x',
      'application/xml',
      'application/json; charset=latin1',
    ]) {
      it(`Content-Type ${type}: 415`, async function () {
        const res = await app.request('/v1/auth/login', { method: 'POST', body, headers: { 'content-type': type } });
        await expectProblem(res, 415, 'unsupported_media_type');
      });
    }

    for (const encoding of ['gzip', 'deflate', 'br', 'identity, gzip']) {
      it(`Content-Encoding ${encoding}: 415, nothing decoded`, async function () {
        const res = await app.request('/v1/auth/login', {
          method: 'POST',
          body: gzipSync(body),
          headers: { 'content-type': 'application/json', 'content-encoding': encoding },
        });
        await expectProblem(res, 415, 'unsupported_media_type');
      });
    }

    it('Content-Encoding identity is plain JSON', async function () {
      const res = await app.request('/v1/auth/login', {
        method: 'POST',
        body,
        headers: { 'content-type': 'application/json', 'content-encoding': 'identity' },
      });
      await expectProblem(res, 401, 'invalid_credentials');
    });
  });
});
