import { randomUUID } from 'node:crypto';
import { expect } from 'chai';
import { createLogger } from '../../src/platform/logger.js';
import { startTestApp, type TestApp } from '../helpers/app.js';
import { expectTokenResponse, uniquePassword, uniqueUsername, type TokenResponse, type UserView } from '../helpers/http-assert.js';
import { LogCapture, type LogLine } from '../helpers/log-capture.js';

const REGION = 'obs-logs';
const LEVELS = ['error', 'warn', 'info', 'http', 'verbose', 'debug', 'silly'];
const UUID_IN = /[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}/i;

/** One request as the client saw it. */
interface Exchange {
  method: string;
  path: string;
  status: number;
  requestId: string;
  headers: Headers;
  text: string;
}

describe('structured logs (JSON lines, events, request ids through the core)', function () {
  const capture = new LogCapture();
  const exchanges: Exchange[] = [];
  let app: TestApp;
  let lines: LogLine[];

  // What the flows produced, for the assertions below.
  let alice: UserView;
  let dave: UserView;
  let registerAlice: Exchange;
  let loginOk: Exchange;
  let session: TokenResponse;
  let wrongPassword: Exchange;
  let unknownUser: Exchange;
  let disabledLogin: Exchange;
  let meMiss: Exchange;
  let meHit: Exchange;
  let rotated: Exchange;
  let grace: Exchange;
  let reuse: Exchange;
  let logoutSession: TokenResponse;
  let logout: Exchange;
  let deleteSession: Exchange;
  let deletedSessionId: string;
  let clientId: Exchange;
  let unmatched: Exchange;

  async function call(method: string, path: string, init: { json?: unknown; token?: string; headers?: Record<string, string> } = {}): Promise<Exchange> {
    const res = await app.request(path, { method, ...init });
    const text = await res.text();
    const requestId = res.headers.get('x-request-id');
    expect(requestId, `X-Request-Id of ${method} ${path}`).to.be.a('string').with.length.above(0);
    const exchange = { method, path, status: res.status, requestId: requestId!, headers: res.headers, text };
    exchanges.push(exchange);
    return exchange;
  }

  const tokenOf = (e: Exchange) => expectTokenResponse(new Response(e.text, { status: e.status, headers: e.headers }));
  const inRequest = (e: Exchange, event?: string) => lines.filter((l) => l.requestId === e.requestId && (event === undefined || l.event === event));
  const one = (e: Exchange, event: string): LogLine => {
    const found = inRequest(e, event);
    expect(found, `exactly one ${event} line in ${e.method} ${e.path} (${e.requestId})`).to.have.length(1);
    return found[0]!;
  };

  before(async function () {
    // The container's own logger (config level and region, its request context), writing here.
    app = await startTestApp('obs_logs', { logSink: capture, overrides: { region: REGION, log: { level: 'debug' } } });

    const password = uniquePassword();
    const aliceName = uniqueUsername('alice');
    registerAlice = await call('POST', '/v1/auth/register', { json: { username: aliceName, password } });
    expect(registerAlice.status, registerAlice.text).to.equal(201);
    alice = (JSON.parse(registerAlice.text) as { user: UserView }).user;

    const davePassword = uniquePassword();
    const daveName = uniqueUsername('dave');
    const registerDave = await call('POST', '/v1/auth/register', { json: { username: daveName, password: davePassword } });
    dave = (JSON.parse(registerDave.text) as { user: UserView }).user;
    await app.container.users.setStatus(dave.id, 'disabled');

    loginOk = await call('POST', '/v1/auth/login', { json: { username: aliceName, password } });
    session = await tokenOf(loginOk);
    wrongPassword = await call('POST', '/v1/auth/login', { json: { username: aliceName, password: uniquePassword() } });
    unknownUser = await call('POST', '/v1/auth/login', { json: { username: uniqueUsername('nobody'), password: uniquePassword() } });
    disabledLogin = await call('POST', '/v1/auth/login', { json: { username: daveName, password: davePassword } });

    meMiss = await call('GET', '/v1/me', { token: session.accessToken });
    meHit = await call('GET', '/v1/me', { token: session.accessToken });

    const rt0 = session.refreshToken;
    rotated = await call('POST', '/v1/auth/refresh', { json: { refreshToken: rt0 } });
    const rt1 = (await tokenOf(rotated)).refreshToken;
    grace = await call('POST', '/v1/auth/refresh', { json: { refreshToken: rt0 } });
    expect((await tokenOf(grace)).refreshToken, 'a grace retry answers with the same next token').to.equal(rt1);
    const third = await call('POST', '/v1/auth/refresh', { json: { refreshToken: rt1 } });
    expect(third.status, third.text).to.equal(200);
    reuse = await call('POST', '/v1/auth/refresh', { json: { refreshToken: rt0 } });
    expect(reuse.status, reuse.text).to.equal(401);

    logoutSession = await tokenOf(await call('POST', '/v1/auth/login', { json: { username: aliceName, password } }));
    logout = await call('POST', '/v1/auth/logout', { token: logoutSession.accessToken, json: {} });
    expect(logout.status, logout.text).to.equal(204);

    const keeper = await tokenOf(await call('POST', '/v1/auth/login', { json: { username: aliceName, password } }));
    const doomed = await tokenOf(await call('POST', '/v1/auth/login', { json: { username: aliceName, password } }));
    deletedSessionId = doomed.sessionId;
    deleteSession = await call('DELETE', `/v1/sessions/${doomed.sessionId}`, { token: keeper.accessToken });
    expect(deleteSession.status, deleteSession.text).to.equal(204);

    clientId = await call('GET', '/healthz', { headers: { 'x-request-id': 'client-chosen.id:42' } });
    unmatched = await call('GET', `/no/such/${randomUUID()}`);

    await capture.settle();
    lines = capture.entries();
  });

  after(async function () {
    await app?.close();
  });

  it('every line is a JSON object with timestamp (ISO 8601), level, message and region', function () {
    expect(capture.lines.length, 'lines captured').to.be.above(exchanges.length);
    for (const line of lines) {
      const shown = JSON.stringify(line);
      expect(line.timestamp, `timestamp of ${shown}`).to.be.a('string');
      expect(new Date(line.timestamp).toISOString(), `ISO timestamp of ${shown}`).to.equal(line.timestamp);
      expect(LEVELS, `level of ${shown}`).to.include(line.level);
      expect(line.message, `message of ${shown}`).to.be.a('string').with.length.above(0);
      expect(line.region, `region of ${shown}`).to.equal(REGION);
      if (line.event !== undefined) expect(line.event, `event of ${shown}`).to.match(/^[a-z_]+(\.[a-z_]+)+$/);
    }
  });

  it('user.registered names the new user, in the register request', function () {
    const line = one(registerAlice, 'user.registered');
    expect(line.userId).to.equal(alice.id);
    expect(line.level).to.equal('info');
  });

  it('login.succeeded names the user and the new session, with the request id of its http.request line (AsyncLocalStorage)', function () {
    const line = one(loginOk, 'login.succeeded');
    expect(line.userId).to.equal(alice.id);
    expect(line.sessionId).to.equal(session.sessionId);
    const access = one(loginOk, 'http.request');
    expect(line.requestId, 'written deep in the core, yet carries the request id').to.equal(access.requestId).and.equal(loginOk.requestId);
  });

  it('login.failed: unknown user and wrong password answer identically but log different reasons', function () {
    expect(wrongPassword.status).to.equal(401);
    expect(unknownUser.status).to.equal(401);
    const body = (e: Exchange) => {
      const { requestId: _requestId, ...rest } = JSON.parse(e.text) as Record<string, unknown>;
      return rest;
    };
    expect(body(unknownUser), 'the client cannot tell them apart').to.deep.equal(body(wrongPassword));

    const mismatch = one(wrongPassword, 'login.failed');
    expect(mismatch.reason).to.equal('mismatch');
    expect(mismatch.userId).to.equal(alice.id);
    const unknown = one(unknownUser, 'login.failed');
    expect(unknown.reason).to.equal('unknown_user');
    expect(unknown).not.to.have.property('userId');
    expect(unknown.sessionId).to.equal(undefined);

    expect(disabledLogin.status).to.equal(403);
    const disabled = one(disabledLogin, 'login.failed');
    expect(disabled.reason).to.equal('disabled');
    expect(disabled.userId).to.equal(dave.id);
    expect(
      lines.filter((l) => l.event === 'login.succeeded' && l.userId === dave.id),
      'no success for the disabled user',
    ).to.deep.equal([]);
  });

  it('GET /v1/me twice: cache.miss then cache.hit (kind user), at debug level, in their requests', function () {
    const miss = inRequest(meMiss).filter((l) => l.event?.startsWith('cache.'));
    const hit = inRequest(meHit).filter((l) => l.event?.startsWith('cache.'));
    expect(miss.map((l) => [l.event, l.kind, l.level])).to.deep.equal([['cache.miss', 'user', 'debug']]);
    expect(hit.map((l) => [l.event, l.kind, l.level])).to.deep.equal([['cache.hit', 'user', 'debug']]);
    for (const e of [meMiss, meHit]) {
      const access = one(e, 'http.request');
      expect(access.userId).to.equal(alice.id);
      expect(access.sessionId).to.equal(session.sessionId);
    }
  });

  it('token.refreshed: result rotated, then grace for the retry, with userId and sessionId', function () {
    for (const [e, result] of [
      [rotated, 'rotated'],
      [grace, 'grace'],
    ] as const) {
      const line = one(e, 'token.refreshed');
      expect(line.result).to.equal(result);
      expect(line.userId).to.equal(alice.id);
      expect(line.sessionId).to.equal(session.sessionId);
    }
  });

  it('reuse: token.reused (warn) and session.revoked with reason reuse, in the same request', function () {
    const reused = one(reuse, 'token.reused');
    expect(reused.level).to.equal('warn');
    expect(reused.userId).to.equal(alice.id);
    expect(reused.sessionId).to.equal(session.sessionId);
    const revoked = one(reuse, 'session.revoked');
    expect(revoked.reason).to.equal('reuse');
    expect(revoked.sessionId).to.equal(session.sessionId);
    expect(inRequest(reuse, 'token.refreshed'), 'a detected reuse is no refresh').to.deep.equal([]);
  });

  it('logout: session.revoked with reason logout and the caller session; DELETE /v1/sessions/:id likewise', function () {
    const line = one(logout, 'session.revoked');
    expect(line.reason).to.equal('logout');
    expect(line.sessionId).to.equal(logoutSession.sessionId);
    const access = one(logout, 'http.request');
    expect(access.userId).to.equal(alice.id);
    expect(access.sessionId).to.equal(logoutSession.sessionId);

    const deleted = one(deleteSession, 'session.revoked');
    expect(deleted.reason).to.equal('logout');
    expect(deleted.sessionId).to.equal(deletedSessionId);
  });

  it('one http.request line per request: method, route template, status, durationMs, requestId = X-Request-Id', function () {
    const accessLines = lines.filter((l) => l.event === 'http.request');
    expect(accessLines, 'one http.request line per request').to.have.length(exchanges.length);
    for (const e of exchanges) {
      const line = one(e, 'http.request');
      const shown = JSON.stringify(line);
      expect(line.method, shown).to.equal(e.method);
      expect(line.status, shown).to.equal(e.status);
      expect(line.durationMs, shown).to.be.a('number').and.at.least(0).and.below(60_000);
      expect(line.route, shown).to.be.a('string');
      const route = line.route as string;
      expect(route === 'unmatched' || route.startsWith('/'), `route of ${shown}`).to.be.true;
      expect(route, `route is a template, never a raw id: ${shown}`).not.to.match(UUID_IN);
      expect(line.level, shown).to.equal('info');
    }
    expect(one(deleteSession, 'http.request').route).to.equal('/v1/sessions/:id');
    expect(one(loginOk, 'http.request').route).to.equal('/v1/auth/login');
    expect(one(meHit, 'http.request').route).to.equal('/v1/me');
    expect(one(unmatched, 'http.request').route).to.equal('unmatched');
    expect(one(unmatched, 'http.request').status).to.equal(404);
    expect(clientId.requestId, 'a sane client id is echoed').to.equal('client-chosen.id:42');
    expect(one(clientId, 'http.request').route).to.equal('/healthz');
    expect(lines.filter((l) => JSON.stringify(l).includes(deletedSessionId) && l.event === 'http.request' && l.route !== '/v1/sessions/:id')).to.deep.equal([]);
  });

  it('every line written while serving a request names a request the client saw', function () {
    const ids = new Set(exchanges.map((e) => e.requestId));
    const domain = ['user.registered', 'login.succeeded', 'login.failed', 'token.refreshed', 'token.reused', 'session.revoked', 'cache.hit', 'cache.miss'];
    for (const line of lines.filter((l) => domain.includes(l.event ?? ''))) {
      expect(ids.has(line.requestId ?? ''), `requestId of ${JSON.stringify(line)}`).to.be.true;
    }
  });

  describe('redaction (createLogger with a sink)', function () {
    const jwt = 'eyJhbGciOiJFZERTQSIsImtpZCI6ImsxIn0.eyJzdWIiOiJ1c2VyLTEiLCJzaWQiOiJzLTEifQ.c2lnbmF0dXJlLXNpZ25hdHVyZS1zaWduYXR1cmU';
    const refreshToken = 'rt_eu-west_0190f0b6-8d1c-7a2b-9c3d-4e5f60718293_7_AbCdEfGhIjKlMnOpQr_-12';
    const argonHash = '$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$4v1Zr5gN8mJ6yYbq3oZ1r2Q9t3w7u8x0a2b4c6d8e0f';
    const clientSecret = 'cs_Qm9iIHNheXMgaGVsbG8gdG8gQWxpY2UgYW5kIEV2ZS4';
    const plain = 'correct horse battery staple 42';

    function capturedLine(write: (log: ReturnType<typeof createLogger>) => void): Promise<{ text: string; line: LogLine }> {
      const sink = new LogCapture();
      const log = createLogger({ level: 'debug', region: 'unit', sink });
      write(log);
      return sink.settle().then(() => {
        expect(sink.lines, 'one line written').to.have.length(1);
        return { text: sink.lines[0]!, line: sink.entries()[0]! };
      });
    }

    it('masks values under secret-looking keys, at the top level and nested in objects and arrays', async function () {
      const { text, line } = await capturedLine((log) =>
        log.info('credentials seen', {
          event: 'test.redaction',
          userId: 'user-1',
          passkeyId: 'passkey-1',
          password: plain,
          refreshToken: 'opaque-refresh-value-1',
          authorization: 'Bearer opaque-access-value-2',
          request: { headers: { Authorization: 'Bearer opaque-access-value-3', cookie: 'sid=opaque-cookie-4', accept: 'application/json' } },
          body: { username: 'alice', newPassword: 'opaque-new-password-5', items: [{ clientSecret: 'opaque-secret-6', kept: 'visible' }] },
          user: { passwordHash: 'opaque-hash-7' },
        }),
      );
      for (const secret of [
        plain,
        'opaque-refresh-value-1',
        'opaque-access-value-2',
        'opaque-access-value-3',
        'opaque-cookie-4',
        'opaque-new-password-5',
        'opaque-secret-6',
        'opaque-hash-7',
      ]) {
        expect(text, `"${secret}" leaked`).not.to.include(secret);
      }
      expect(line.password).to.equal('[redacted]');
      expect(line.refreshToken).to.equal('[redacted]');
      expect(line.authorization).to.equal('[redacted]');
      const request = line.request as { headers: Record<string, unknown> };
      expect(request.headers).to.deep.equal({ Authorization: '[redacted]', cookie: '[redacted]', accept: 'application/json' });
      const body = line.body as { username: string; newPassword: string; items: Array<Record<string, unknown>> };
      expect(body).to.deep.equal({ username: 'alice', newPassword: '[redacted]', items: [{ clientSecret: '[redacted]', kept: 'visible' }] });
      expect(line.user).to.deep.equal({ passwordHash: '[redacted]' });
      // Innocent members survive.
      expect(line.userId).to.equal('user-1');
      expect(line.passkeyId).to.equal('passkey-1');
      expect(line.event).to.equal('test.redaction');
      expect(line.message).to.equal('credentials seen');
    });

    it('masks JWT-, refresh-token- and argon2-shaped strings in messages, innocent keys, nested values and errors', async function () {
      const { text, line } = await capturedLine((log) =>
        log.warn(`presented ${jwt} and ${refreshToken}`, {
          event: 'test.redaction',
          detail: `stored ${argonHash} for user-1`,
          nested: { list: [`Bearer ${jwt}`, { note: refreshToken }, `basic ${clientSecret}`] },
          err: new Error(`could not verify ${argonHash} against ${refreshToken}`),
        }),
      );
      for (const secret of [jwt, refreshToken, argonHash, clientSecret, jwt.split('.')[2]!, refreshToken.slice(-22), '$argon2id$v=19']) {
        expect(text, `"${secret}" leaked`).not.to.include(secret);
      }
      expect(line.message).to.equal('presented [redacted] and [redacted]');
      expect(line.detail).to.equal('stored [redacted] for user-1');
      expect(line.nested).to.deep.equal({ list: ['Bearer [redacted]', { note: '[redacted]' }, 'basic [redacted]'] });
      expect((line.err as { message: string }).message).to.equal('could not verify [redacted] against [redacted]');
    });

    it('masks every stored hash format and the sealed tokens (mfaTokens, provider-flow states, one-time codes, passkey challenges) under innocent keys and in errors', async function () {
      const secrets = {
        bcrypt: '$2b$10$SALRJRwl5AKXUawpruScOOXCulrtzlhgSyN4C5dSeve0wQUYw5c7e',
        bcryptY: '$2y$12$abcdefghijklmnopqrstuuyvPXIbu7xe6/CED2DzX8z6Si09MlzlW',
        scrypt: '$scrypt$ln=14,r=8,p=1$c29tZXNhbHQ$4v1Zr5gN8mJ6yYbq3oZ1r2Q9t3w7u8x0a2b4c6d8e0f',
        pbkdf2: '$pbkdf2-sha256$i=27500$c29tZXNhbHQ$4v1Zr5gN8mJ6yYbq3oZ1r2Q9t3w7u8x0a2b4c6d8e0f',
        django: 'pbkdf2_sha256$870000$seasalt$4v1Zr5gN8mJ6yYbq3oZ1r2Q9t3w7u8x0a2b4c6d8e0f=',
        mfaToken: `mfa_${'Qm9iIHNheXMgaGVsbG8'.repeat(4)}`,
        state: `st_${'c3RhdGUtc3RhdGUtc3Rh'.repeat(6)}`,
        code: `oc_${'Y29kZS1jb2RlLWNvZGUt'.repeat(5)}`,
        passkeyChallenge: `pk_${'cGFzc2tleS1jaGFsbGVu'.repeat(8)}`,
        // …and as a WebAuthn response's clientDataJSON echoes it: base64url of that text.
        echoedChallenge: Buffer.from(`pk_${'cGFzc2tleS1jaGFsbGVu'.repeat(8)}`).toString('base64url'),
      };
      const all = Object.values(secrets);
      const { text, line } = await capturedLine((log) =>
        log.warn(`stored ${secrets.bcrypt}`, { event: 'test.redaction', detail: all.join(' '), err: new Error(`could not use ${secrets.code}`) }),
      );
      for (const secret of all) expect(text, `"${secret}" leaked`).not.to.include(secret);
      expect(line.detail).to.equal(all.map(() => '[redacted]').join(' '));
      expect(line.message).to.equal('stored [redacted]');
      // What only looks alike stays: an event name, a request id.
      const { line: innocent } = await capturedLine((log) => log.info('request_started', { event: 'oidc.failed', requestId: 'st_1', at: 'oc_short' }));
      expect([innocent.message, innocent.requestId, innocent.at]).to.deep.equal(['request_started', 'st_1', 'oc_short']);
    });

    it('masks secrets however deep they sit in an object', async function () {
      let deep: Record<string, unknown> = { password: 'opaque-deep-password-8', note: `token ${jwt}` };
      for (let i = 0; i < 7; i++) deep = { [`level${i}`]: deep };
      const { text } = await capturedLine((log) => log.info('deep', { event: 'test.redaction', context: deep }));
      expect(text, 'password under a secret key, 8 levels down').not.to.include('opaque-deep-password-8');
      expect(text, 'JWT, 8 levels down').not.to.include(jwt);
    });
  });
});
