import { randomBytes } from 'node:crypto';
import { expect } from 'chai';
import * as oidc from 'openid-client';
import { startTestApp, type TestApp } from '../helpers/app.js';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';
import { createAccount, expectProblem, expectTokenResponse, login, refresh, type Account, type TokenResponse } from '../helpers/http-assert.js';
import { decodePart, swapPayload } from '../helpers/http-jwt.js';
import { accessTokenSecrets, assertNoSecrets, LogCapture, refreshTokenSecrets } from '../helpers/log-capture.js';
import { eventually } from '../regions/support.js';
import { basic, expectOAuthError, postForm, startIssuerApp } from './support.js';

/** RFC 7009 §2.2: 200, no body, whatever became of the token. */
async function expectRevokeOk(res: Response): Promise<void> {
  const text = await res.text();
  expect(res.status, text).to.equal(200);
  expect(text).to.equal('');
  expect(res.headers.get('cache-control')).to.equal('no-store');
}

describe('POST /oauth/revoke (RFC 7009)', function () {
  let app: TestApp;
  let rita: Account;
  let revoker: { id: string; secret: string };
  let gateway: { id: string; secret: string };

  before(async function () {
    app = await startIssuerApp('oauth_revoke');
    rita = await createAccount(app, 'rita');
    const issued = await app.container.clients.create('revoker', ['revoke']);
    revoker = { id: issued.client.id, secret: issued.secret };
    const other = await app.container.clients.create('introspect only', ['introspect']);
    gateway = { id: other.client.id, secret: other.secret };
  });
  after(async function () {
    await app?.close();
  });

  const start = () => login(app, rita.username, rita.password);
  const revoke = (fields: Record<string, string>, headers: Record<string, string> = {}) => postForm(app, '/oauth/revoke', fields, headers);
  const asRevoker = { authorization: '' };
  before(function () {
    asRevoker.authorization = basic(revoker.id, revoker.secret);
  });

  /** The session is over: its refresh token and its access tokens are refused. */
  async function expectSessionRevoked(tokens: TokenResponse): Promise<void> {
    await expectProblem(await refresh(app, tokens.refreshToken), 401, 'invalid_refresh_token');
    expect((await app.request('/v1/verify', { token: tokens.accessToken })).status).to.equal(401);
  }

  async function expectSessionLive(tokens: TokenResponse): Promise<TokenResponse> {
    expect((await app.request('/v1/verify', { token: tokens.accessToken })).status).to.equal(200);
    return expectTokenResponse(await refresh(app, tokens.refreshToken));
  }

  it('a public client (no credentials) revokes its refresh token: 200, then refresh is invalid_refresh_token and the access token is refused', async function () {
    const tokens = await start();
    await expectRevokeOk(await revoke({ token: tokens.refreshToken, token_type_hint: 'refresh_token' }));
    await expectSessionRevoked(tokens);
    // Revoking again, or a revoked token: still 200.
    await expectRevokeOk(await revoke({ token: tokens.refreshToken }));
  });

  it('a public client with an access token: 401 invalid_client (only a refresh token proves itself)', async function () {
    const tokens = await start();
    await expectOAuthError(await revoke({ token: tokens.accessToken }), 401, 'invalid_client');
    await expectOAuthError(await revoke({ token: tokens.accessToken, client_id: 'my-spa' }), 401, 'invalid_client');
    await expectSessionLive(tokens);
  });

  it('a client with the revoke scope revokes the session of an access token or a refresh token (Basic and client_secret_post); a wrong hint changes nothing', async function () {
    const a = await start();
    await expectRevokeOk(await revoke({ token: a.accessToken, token_type_hint: 'refresh_token' }, asRevoker));
    await expectSessionRevoked(a);
    const b = await start();
    await expectRevokeOk(await revoke({ token: b.refreshToken, token_type_hint: 'access_token', client_id: revoker.id, client_secret: revoker.secret }));
    await expectSessionRevoked(b);
  });

  it('openid-client tokenRevocation() revokes', async function () {
    const tokens = await start();
    const config = await oidc.discovery(new URL(app.url), revoker.id, undefined, oidc.ClientSecretBasic(revoker.secret), {
      execute: [oidc.allowInsecureRequests],
    });
    await oidc.tokenRevocation(config, tokens.accessToken);
    await expectSessionRevoked(tokens);
  });

  it('forged, unknown and garbage tokens: 200 and nothing revoked', async function () {
    const tokens = await start();
    const claims = decodePart(tokens.accessToken, 1);
    const last = tokens.refreshToken.at(-1) === 'A' ? 'B' : 'A';
    const forged = [
      `${tokens.accessToken.slice(0, -2)}${tokens.accessToken.at(-2) === 'A' ? 'B' : 'A'}${tokens.accessToken.at(-1)}`,
      swapPayload(tokens.accessToken, { ...claims, sid: 'another-session' }),
      `${tokens.refreshToken.slice(0, -1)}${last}`,
      'garbage',
      'eyJhbGciOiJub25lIn0.eyJzaWQiOiJ4In0.',
    ];
    for (const token of forged) await expectRevokeOk(await revoke({ token }, asRevoker));
    // A forged refresh-shaped token needs no credentials and gets 200 too.
    await expectRevokeOk(await revoke({ token: `${tokens.refreshToken.slice(0, -1)}${last}` }));
    await expectSessionLive(tokens);
  });

  it('errors: a hint of another kind is 400 unsupported_token_type; wrong credentials 401; no revoke scope 403; no token 400; JSON 400; GET 405', async function () {
    const tokens = await start();
    await expectOAuthError(await revoke({ token: tokens.refreshToken, token_type_hint: 'id_token' }), 400, 'unsupported_token_type');
    await expectOAuthError(await revoke({ token: tokens.refreshToken }, { authorization: basic(revoker.id, 'cs_wrong') }), 401, 'invalid_client');
    await expectOAuthError(await revoke({ token: tokens.refreshToken }, { authorization: basic(gateway.id, gateway.secret) }), 403, 'unauthorized_client');
    await expectOAuthError(await revoke({}), 400, 'invalid_request');
    await expectOAuthError(await app.request('/oauth/revoke', { method: 'POST', json: { token: tokens.refreshToken } }), 400, 'invalid_request');
    await expectOAuthError(await app.request('/oauth/revoke', { method: 'DELETE' }), 405, 'invalid_request');
    // None of these revoked anything.
    await expectSessionLive(tokens);
  });
});

describe("POST /oauth/revoke reaches the region's other servers like every revocation (Redis pub/sub)", function () {
  let db: TestDatabase;
  let a: TestApp;
  let b: TestApp;

  before(async function () {
    db = await createTestDatabase('oauth_revoke_pubsub');
    const cache = { redisUrl: 'redis://127.0.0.1:6379', keyPrefix: `t-oauth-revoke-${randomBytes(3).toString('hex')}` };
    // Polling far slower than the bound checked below: only pub/sub can deliver in time.
    const overrides = { cache, revocation: { pollIntervalMs: 60_000 } };
    a = await startTestApp('oauth_revoke_a', { db, overrides });
    b = await startTestApp('oauth_revoke_b', { db, migrate: false, overrides });
  });
  after(async function () {
    await b?.close();
    await a?.close();
    await db?.drop();
  });

  it('a refresh token revoked on one server: the other refuses its access token within a second', async function () {
    const account = await createAccount(a, 'paula');
    const tokens = await login(a, account.username, account.password);
    expect((await b.request('/v1/verify', { token: tokens.accessToken })).status).to.equal(200);
    await expectRevokeOk(await postForm(a, '/oauth/revoke', { token: tokens.refreshToken }));
    const started = Date.now();
    await eventually(
      'server b refuses the token',
      async () => ((await b.request('/v1/verify', { token: tokens.accessToken })).status === 401 ? true : undefined),
      5_000,
    );
    expect(Date.now() - started).to.be.below(1_000);
  });
});

describe('/oauth/* writes no secret to the logs', function () {
  const capture = new LogCapture();
  let app: TestApp;

  before(async function () {
    app = await startIssuerApp('oauth_logs', { logSink: capture, overrides: () => ({ log: { level: 'debug' } }) });
  });
  after(async function () {
    await app?.close();
  });

  it('client secrets, Basic headers, access and refresh tokens appear in no line, requests and failures included', async function () {
    const account = await createAccount(app, 'lena');
    const tokens = await login(app, account.username, account.password);
    const client = await app.container.clients.create('both', ['introspect', 'revoke']);
    const header = basic(client.client.id, client.secret);
    const wrongSecret = `${client.secret.slice(0, -4)}WXYZ`;
    await postForm(app, '/oauth/introspect', { token: tokens.accessToken }, { authorization: header });
    await postForm(app, '/oauth/introspect', { token: tokens.refreshToken, client_id: client.client.id, client_secret: client.secret });
    await postForm(app, '/oauth/introspect', { token: tokens.accessToken }, { authorization: basic(client.client.id, wrongSecret) });
    await postForm(app, '/oauth/introspect', { token: tokens.accessToken, client_id: client.client.id, client_secret: wrongSecret }, { authorization: header });
    await app.request('/oauth/introspect', {
      method: 'POST',
      headers: { authorization: header },
      json: { token: tokens.accessToken, client_secret: client.secret },
    });
    await postForm(app, '/oauth/revoke', { token: tokens.accessToken }, { authorization: header });
    await postForm(app, '/oauth/revoke', { token: tokens.refreshToken });
    await capture.settle();
    const requests = capture.events('http.request').filter((e) => String(e.route).startsWith('/oauth'));
    expect(requests.length, 'the requests are logged').to.be.at.least(7);
    assertNoSecrets(capture.lines, [
      ['client secret', client.secret],
      ['wrong client secret', wrongSecret],
      ['Basic credentials', header.slice('Basic '.length)],
      ...accessTokenSecrets('access token', tokens.accessToken),
      ...refreshTokenSecrets('refresh token', tokens.refreshToken),
    ]);
  });
});
