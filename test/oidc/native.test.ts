import { createHash, randomBytes } from 'node:crypto';
import { expect } from 'chai';
import { decodeJwt, exportJWK, generateKeyPair, type JWTPayload } from 'jose';
import { startTestApp, type TestApp } from '../helpers/app.js';
import { NATIVE_REDIRECT_URI, nativeIdToken, providerConfig, startProvider, type TestProvider } from './support.js';

const CLIENT = { clientId: 'authctl-web', clientSecret: 'web-client-secret-0123456789' };
const APP = 'https://app.example.com/auth/done';

describe('provider sign-in: native apps hand over an ID token', function () {
  this.timeout(60_000);
  let op: TestProvider;
  let app: TestApp;
  let n = 0;

  before(async () => {
    op = await startProvider({ accounts: [{ sub: 'g-nat', email: 'nat@example.com', email_verified: true, name: 'Nat' }] });
    app = await startTestApp('oidc_native', { overrides: (url) => providerConfig(op, url, CLIENT, [APP]) });
    op.registerClient({ ...CLIENT, redirectUris: [`${app.url}/v1/auth/oidc/google/callback`, NATIVE_REDIRECT_URI] });
  });

  after(async () => {
    await app?.close();
    await op?.close();
  });

  const signIn = (idToken: string, nonce: string) => app.request('/v1/auth/oidc/google/id-token', { method: 'POST', json: { idToken, nonce } });

  async function expectRefused(res: Response, code = 'invalid_id_token'): Promise<string> {
    const text = await res.text();
    expect(res.status, text).to.equal(code === 'invalid_id_token' ? 401 : 400);
    const problem = JSON.parse(text) as { code: string; detail: string };
    expect(problem.code).to.equal(code);
    return problem.detail;
  }

  /** Claims as the provider would sign them for this client, for a fresh account. */
  function claims(nonce: string, overrides: JWTPayload = {}): JWTPayload {
    const now = Math.floor(Date.now() / 1000);
    const sub = `g-minted-${++n}`;
    return { iss: op.url, aud: CLIENT.clientId, sub, email: `${sub}@example.com`, email_verified: true, nonce, iat: now, exp: now + 600, ...overrides };
  }

  const users = async () => Number((await app.container.db.writer('users').count<[{ count: string }]>('* as count'))[0]!.count);

  it('signs in with the ID token the provider gave the app: tokens with idp and amr fed; the token is single-use', async () => {
    const nonce = randomBytes(16).toString('base64url');
    const idToken = await nativeIdToken(op, CLIENT, 'g-nat', nonce);
    const res = await signIn(idToken, nonce);
    expect(res.status, await res.clone().text()).to.equal(200);
    const body = (await res.json()) as { accessToken: string; user: { email: string } };
    expect(body.user.email).to.equal('nat@example.com');
    const access = decodeJwt(body.accessToken);
    expect(access).to.include({ idp: 'google' });
    expect(access.amr).to.deep.equal(['fed']);
    expect(await expectRefused(await signIn(idToken, nonce))).to.match(/used already/);
  });

  it('accepts a token carrying the SHA-256 (hex) of the nonce the app holds', async () => {
    const nonce = randomBytes(16).toString('base64url');
    const hashed = createHash('sha256').update(nonce).digest('hex');
    const res = await signIn(await op.mintIdToken(claims(hashed)), nonce);
    expect(res.status, await res.clone().text()).to.equal(200);
  });

  it('refuses a forged signature, another audience or issuer, an expired token and a wrong nonce — and creates no user', async () => {
    const before = await users();
    const nonce = 'the-nonce-0123456789';
    const { privateKey } = await generateKeyPair('RS256', { extractable: true });
    const foreign = { ...(await exportJWK(privateKey)), alg: 'RS256' };
    const old = Math.floor(Date.now() / 1000) - 7200;
    const refused: Array<[string, Promise<string>, RegExp]> = [
      ['a key of our own under the provider kid', op.mintIdToken(claims(nonce), foreign), /signature/],
      ['another audience', op.mintIdToken(claims(nonce, { aud: 'another-client' })), /"aud"/],
      ['several audiences, azp another client', op.mintIdToken(claims(nonce, { aud: [CLIENT.clientId, 'x'], azp: 'x' })), /azp/],
      ['another issuer', op.mintIdToken(claims(nonce, { iss: 'https://accounts.google.com' })), /"iss"/],
      ['expired', op.mintIdToken(claims(nonce, { iat: old, exp: old + 3600 })), /expired/],
      ['another nonce', op.mintIdToken(claims('another-nonce')), /nonce/],
    ];
    for (const [what, token, detail] of refused) expect(await expectRefused(await signIn(await token, nonce)), what).to.match(detail);
    await expectRefused(await signIn('not-a-jwt', nonce));
    await expectRefused(
      await app.request('/v1/auth/oidc/google/id-token', { method: 'POST', json: { idToken: await op.mintIdToken(claims(nonce)) } }),
      'invalid_request',
    );
    expect(await users()).to.equal(before);
  });

  it('answers 404 for an unknown provider', async () => {
    const res = await app.request('/v1/auth/oidc/nobody/id-token', { method: 'POST', json: { idToken: 'x', nonce: 'y' } });
    expect(res.status).to.equal(404);
  });
});
