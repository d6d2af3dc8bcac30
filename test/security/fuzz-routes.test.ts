import { expect } from 'chai';
import fc from 'fast-check';
import { startTestApp, type TestApp } from '../helpers/app.js';
import {
  createAccount,
  expectProblem,
  login,
  PROBLEM_CONTENT_TYPE,
  PROBLEM_MEMBERS,
  register,
  uniquePassword,
  type TokenResponse,
} from '../helpers/http-assert.js';

// Runs per property. Registration and login cost an argon2 hash each, so keep the total in reach
// of a shared 2-core machine; fast-check's seed is printed on failure for replay.
const RUNS = 150;

/** Anything < 500, and every error an RFC 9457 problem with the catalog's members. */
async function expectClean(res: Response, label: string): Promise<void> {
  const text = await res.text();
  expect(res.status, `${label}: ${text}`).to.be.below(500);
  if (res.status >= 400) {
    expect(res.headers.get('content-type'), `${label}: problem+json`).to.match(PROBLEM_CONTENT_TYPE);
    const body = JSON.parse(text) as Record<string, unknown>;
    for (const member of PROBLEM_MEMBERS) expect(body, `${label}: member ${member}`).to.have.property(member);
    expect(body.status).to.equal(res.status);
  }
}

// Hostile building blocks: control and format characters, bidi overrides, look-alikes.
const hostileChars = fc.constantFrom(
  '\u0000',
  '\u0007',
  '\u001b',
  '\u007f',
  '\u0085',
  '\u200b',
  '\u200d',
  '\u2028',
  '\u202e',
  '\u2066',
  '\ufeff',
  '\ud800',
  'а',
  'ο',
  'ｅ',
  'ﬁ',
  'Ⅸ',
  'İ',
  'ß',
  '\u0301',
  '𝐚',
  '℡',
  '%00',
  '../',
  '\\',
  '"',
  "'",
  '<script>',
  '${x}',
);
const hostileString = fc.oneof(
  fc.string({ maxLength: 80 }),
  fc.string({ unit: 'grapheme', maxLength: 40 }),
  fc.array(fc.oneof(hostileChars, fc.string({ maxLength: 4 })), { maxLength: 20 }).map((parts) => parts.join('')),
  fc.string({ minLength: 300, maxLength: 2000 }),
);
// Control characters other than HTAB: HTTP clients refuse to put them in a header (RFC 9110 §5.5).
const sendable = (value: string) => [...value].filter((c) => c === '\t' || (c >= ' ' && c !== '\u007f')).join('');
const hugeNumber = fc.constantFrom(1e308, -1e308, Number.MAX_SAFE_INTEGER + 2, 2 ** 64, -0, 0.1, 1e-320);
const pollutingKey = fc.constantFrom('__proto__', 'constructor', 'prototype');
const deep = fc.integer({ min: 17, max: 2000 }).map((depth) => '['.repeat(depth) + ']'.repeat(depth));

/** A JSON text: valid-shaped bodies with hostile values, and malformed or hostile JSON. */
function bodyText(fields: string[]): fc.Arbitrary<string> {
  const value = fc.oneof(hostileString, hugeNumber, fc.boolean(), fc.constant(null), fc.jsonValue({ maxDepth: 3 }));
  const shaped = fc.record(Object.fromEntries(fields.map((f) => [f, value])), { requiredKeys: [] }).map((o) => JSON.stringify(o));
  const polluted = fc
    .tuple(pollutingKey, fc.jsonValue({ maxDepth: 2 }), fc.constantFrom(...fields, 'x'))
    .map(([key, v, field]) => `{"${field}":"abc","${key}":${JSON.stringify(v)}}`);
  const nestedPollution = pollutingKey.map((key) => `{"a":{"b":{"${key}":{"isAdmin":true}}}}`);
  const hugeLiteral = fc.constantFrom('{"username":1e999999,"password":-1e999999}', `{"refreshToken":${'9'.repeat(5000)}}`);
  const malformed = fc.oneof(fc.string({ maxLength: 60 }), fc.constantFrom('{', '{"a":', '[1,]', '{"a":1}}', 'nul', '\ufeff{}', '{"a":"\\ud800"}'));
  return fc.oneof(
    shaped,
    polluted,
    nestedPollution,
    deep,
    hugeLiteral,
    malformed,
    fc.jsonValue().map((v) => JSON.stringify(v)),
  );
}

const contentType = fc.oneof(
  fc.constant('application/json'),
  fc.constantFrom(
    'application/json; charset=utf-8',
    'application/problem+json',
    'text/plain',
    'application/json; charset=utf-16',
    '',
    'application/json;;;',
    'x/y+json',
  ),
);

const ROUTES: Array<{ method: string; path: string; fields: string[]; auth: boolean }> = [
  { method: 'POST', path: '/v1/auth/register', fields: ['username', 'password'], auth: false },
  { method: 'POST', path: '/v1/auth/login', fields: ['username', 'password'], auth: false },
  { method: 'POST', path: '/v1/auth/refresh', fields: ['refreshToken'], auth: false },
  { method: 'POST', path: '/v1/auth/logout', fields: ['refreshToken'], auth: true },
  { method: 'POST', path: '/v1/auth/password', fields: ['currentPassword', 'newPassword'], auth: true },
  { method: 'POST', path: '/v1/auth/logout-all', fields: [], auth: true },
];

describe('hostile input on every route (property-based, fast-check)', function () {
  this.timeout(300_000);
  let app: TestApp;
  let fresh: () => Promise<TokenResponse>;

  before(async function () {
    // Throttling has its own tests; here every request should reach validation and the core.
    app = await startTestApp('sec_fuzz', { overrides: { rateLimit: { enabled: false } } });
    const account = await createAccount(app, 'fuzz');
    // Logout, logout-all and password change end sessions: each Bearer request gets a live one.
    fresh = () => login(app, account.username, account.password);
  });
  after(async () => app?.close());

  for (const route of ROUTES) {
    it(`${route.method} ${route.path}: any body, any Content-Type → < 500 and an RFC 9457 problem`, async function () {
      await fc.assert(
        fc.asyncProperty(bodyText(route.fields), contentType, async (body, type) => {
          const headers: Record<string, string> = type ? { 'content-type': type } : {};
          if (route.auth) headers.authorization = `Bearer ${(await fresh()).accessToken}`;
          const res = await app.request(route.path, { method: route.method, body, headers });
          await expectClean(res, `${route.path} ${type} ${body.slice(0, 200)}`);
        }),
        { numRuns: RUNS },
      );
    });
  }

  it('GET and DELETE routes: any path parameter, query and Authorization header → < 500 and a problem', async function () {
    const token = (await fresh()).accessToken;
    const authorization = fc.oneof(
      fc.constant(`Bearer ${token}`),
      // Header values travel as bytes: the UTF-8 of the string as is, minus the control characters
      // HTTP clients refuse to send (RFC 9110 §5.5).
      hostileString.map((s) => `Bearer ${sendable(Buffer.from(s, 'utf8').toString('latin1')).trim()}`),
      fc.constantFrom('Bearer', 'Basic YTpi', `bearer   ${token}`, `Bearer ${token}.x`, `Bearer ${token}==`, 'Bearer a.b.c'),
    );
    // Every UTF-8 byte percent-encoded, plus malformed escapes that a careless decodeURIComponent throws on.
    const segment = fc.oneof(
      hostileString.map((s) =>
        [...Buffer.from(s, 'utf8')]
          .map((b) => `%${b.toString(16).padStart(2, '0')}`)
          .join('')
          .slice(0, 1500),
      ),
      fc.constantFrom('%', '%zz', '%E0%A4%A', '%C0%AF', '%ED%A0%80', '..%2F..%2Fetc%2Fpasswd', '%00'),
    );
    const request = fc.oneof(
      fc.tuple(fc.constantFrom('/v1/me', '/v1/sessions', '/v1/verify'), fc.constant('GET'), fc.constant('')),
      fc.tuple(fc.constant('/v1/sessions/'), fc.constant('DELETE'), segment),
      fc.tuple(fc.constantFrom('/v1/', '/v1/auth/', '/.well-known/'), fc.constantFrom('GET', 'POST', 'PUT', 'PATCH', 'DELETE'), segment),
    );
    await fc.assert(
      fc.asyncProperty(request, authorization, fc.string({ maxLength: 50 }), async ([path, method, param], auth, query) => {
        const res = await app.request(`${path}${param}?q=${encodeURIComponent(query.replace(/[\ud800-\udfff]/g, ''))}`, {
          method,
          headers: { authorization: auth },
        });
        await expectClean(res, `${method} ${path}${param} ${auth.slice(0, 60)}`);
      }),
      { numRuns: RUNS * 2 },
    );
  });

  it('a polluting key never reaches Object.prototype', async function () {
    const res = await app.request('/v1/auth/login', {
      method: 'POST',
      body: '{"username":"a","password":"b","__proto__":{"polluted":true}}',
      headers: { 'content-type': 'application/json' },
    });
    const problem = await expectProblem(res, 400, 'invalid_request');
    expect(problem.errors?.[0]?.path).to.equal('__proto__');
    expect(({} as Record<string, unknown>).polluted).to.equal(undefined);
  });

  it('nesting deeper than 16 levels is a clean 400 naming the limit', async function () {
    const res = await app.request('/v1/auth/login', {
      method: 'POST',
      body: '['.repeat(5000) + ']'.repeat(5000),
      headers: { 'content-type': 'application/json' },
    });
    const problem = await expectProblem(res, 400, 'invalid_request');
    expect(problem.detail).to.include('16');
  });

  describe('usernames', function () {
    it('control, format and bidi characters are refused at registration (400 on "username")', async function () {
      for (const bad of ['ali\u0000ce', 'ali\u202ece', 'ali\u200bce', 'alice\u2066', 'ali\u0007ce', 'ali ce', 'ali\tce']) {
        const res = await app.request('/v1/auth/register', { method: 'POST', json: { username: bad, password: uniquePassword() } });
        const problem = await expectProblem(res, 400, 'invalid_request');
        expect(problem.errors?.map((e) => e.path)).to.include('username');
      }
    });

    it('compatibility look-alikes fold onto the real name after NFKC and collide with it (409)', async function () {
      await register(app, 'admin', uniquePassword());
      for (const lookalike of ['ＡＤＭＩＮ', 'ａｄｍｉｎ', 'ADMIN', 'ᵃdmin', 'admᵢn']) {
        const res = await app.request('/v1/auth/register', { method: 'POST', json: { username: lookalike, password: uniquePassword() } });
        await expectProblem(res, 409, 'username_taken');
      }
    });

    it('cross-script homoglyphs that NFKC leaves alone are refused (mixed scripts, UTS #39)', async function () {
      for (const spoof of ['аdmin', 'pаypal', 'gοogle', 'αdmin1']) {
        const res = await app.request('/v1/auth/register', { method: 'POST', json: { username: spoof, password: uniquePassword() } });
        const problem = await expectProblem(res, 400, 'invalid_request');
        expect(problem.detail).to.include('scripts');
      }
    });

    it('single-script names in other scripts, and Latin with Japanese, are still welcome', async function () {
      for (const name of ['иван', 'δημήτρης', 'たなか太郎', 'yamada太郎', 'नमस्ते']) {
        const res = await app.request('/v1/auth/register', { method: 'POST', json: { username: name, password: uniquePassword() } });
        expect(res.status, name).to.equal(201);
      }
    });
  });
});
