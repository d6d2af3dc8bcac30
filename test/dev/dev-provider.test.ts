import { createHash, randomBytes } from 'node:crypto';
import { expect } from 'chai';
import { createRemoteJWKSet, jwtVerify } from 'jose';
import { devAccount, startDevProvider, type DevProvider } from '../../src/dev/dev-provider.js';

const REDIRECT_URI = 'http://127.0.0.1:8080/v1/auth/oidc/dev/callback';

/** A browser's cookie jar for one host, enough for the provider's interaction cookies. */
class Jar {
  private readonly cookies = new Map<string, string>();
  take(response: Response): Response {
    for (const line of response.headers.getSetCookie()) {
      const [pair] = line.split(';');
      const at = pair!.indexOf('=');
      this.cookies.set(pair!.slice(0, at), pair!.slice(at + 1));
    }
    return response;
  }
  header(): string {
    return [...this.cookies].map(([k, v]) => `${k}=${v}`).join('; ');
  }
}

/** The login of `authctl dev`'s embedded OpenID Provider, driven over HTTP as a browser would. */
describe("authctl dev's OpenID Provider", function () {
  this.timeout(30_000);
  let op: DevProvider;

  before(async function () {
    const started = await startDevProvider({ redirectUris: [REDIRECT_URI] });
    if (!started) this.skip();
    op = started!;
  });

  after(async function () {
    await op?.close();
  });

  /** Follows redirects by hand (the jar needs every Set-Cookie) until the provider sends the browser back to the client. */
  async function follow(jar: Jar, url: string, init: RequestInit = {}): Promise<{ response: Response; url: string }> {
    let response = jar.take(await fetch(url, { ...init, redirect: 'manual', headers: { ...(init.headers as Record<string, string>), cookie: jar.header() } }));
    let at = url;
    while (response.status >= 300 && response.status < 400) {
      at = new URL(response.headers.get('location')!, at).href;
      if (at.startsWith(REDIRECT_URI)) break;
      response = jar.take(await fetch(at, { redirect: 'manual', headers: { cookie: jar.header() } }));
    }
    return { response, url: at };
  }

  function authorizeUrl(state: string, nonce: string, challenge: string): string {
    const url = new URL(`${op.issuer}/auth`);
    url.search = new URLSearchParams({
      client_id: op.clientId,
      response_type: 'code',
      redirect_uri: REDIRECT_URI,
      scope: 'openid email profile',
      state,
      nonce,
      code_challenge: challenge,
      code_challenge_method: 'S256',
    }).toString();
    return url.href;
  }

  it('turns a typed name into a stable subject with a verified example.test address; refuses an empty one', function () {
    expect(devAccount('  Alice  Smith ')).to.deep.equal({
      sub: 'alice-smith',
      email: 'alice-smith@example.test',
      email_verified: true,
      name: 'Alice Smith',
      preferred_username: 'alice-smith',
    });
    expect(devAccount('   ')).to.equal(undefined);
    expect(devAccount('<script>')?.sub).to.equal('script');
  });

  it('serves discovery for its loopback issuer', async function () {
    const response = await fetch(`${op.issuer}/.well-known/openid-configuration`);
    expect(response.status).to.equal(200);
    const document = (await response.json()) as Record<string, unknown>;
    expect(document.issuer).to.equal(op.issuer);
    expect(op.issuer).to.match(/^http:\/\/127\.0\.0\.1:\d+$/);
    expect(document).to.include.keys('authorization_endpoint', 'token_endpoint', 'jwks_uri', 'userinfo_endpoint');
    expect(document.code_challenge_methods_supported).to.include('S256');
  });

  it('logs a typed name in: login page → code → ID token signed by its JWKS with the verified address and the nonce', async function () {
    const jar = new Jar();
    const state = randomBytes(16).toString('base64url');
    const nonce = randomBytes(16).toString('base64url');
    const verifier = randomBytes(32).toString('base64url');
    const challenge = createHash('sha256').update(verifier).digest('base64url');

    const page = await follow(jar, authorizeUrl(state, nonce, challenge));
    expect(page.response.status).to.equal(200);
    const html = await page.response.text();
    expect(html).to.contain('authctl dev provider').and.contain('id="sign-in"');
    expect(page.response.headers.get('content-security-policy')).to.contain("default-src 'none'");
    const action = /<form method="post" action="([^"]+\/login)"/.exec(html)?.[1];
    expect(action).to.be.a('string');

    const back = await follow(jar, new URL(action!, op.issuer).href, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: 'name=Dev+Tester',
    });
    const callback = new URL(back.url);
    expect(`${callback.origin}${callback.pathname}`).to.equal(REDIRECT_URI);
    expect(callback.searchParams.get('state')).to.equal(state);
    const code = callback.searchParams.get('code');
    expect(code).to.be.a('string');

    const token = await fetch(`${op.issuer}/token`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({
        grant_type: 'authorization_code',
        code: code!,
        redirect_uri: REDIRECT_URI,
        code_verifier: verifier,
        client_id: op.clientId,
        client_secret: op.clientSecret,
      }),
    });
    expect(token.status, await token.clone().text()).to.equal(200);
    const { id_token: idToken } = (await token.json()) as { id_token: string };
    const { payload } = await jwtVerify(idToken, createRemoteJWKSet(new URL(`${op.issuer}/jwks`)), { issuer: op.issuer, audience: op.clientId });
    expect(payload).to.include({ sub: 'dev-tester', email: 'dev-tester@example.test', email_verified: true, name: 'Dev Tester', nonce });
  });

  it('Cancel sends the browser back with access_denied and the state', async function () {
    const jar = new Jar();
    const challenge = createHash('sha256').update(randomBytes(32).toString('base64url')).digest('base64url');
    const page = await follow(jar, authorizeUrl('state-1', 'nonce-1', challenge));
    const action = /<form method="post" action="([^"]+\/abort)"/.exec(await page.response.text())?.[1];
    const back = await follow(jar, new URL(action!, op.issuer).href, { method: 'POST' });
    const callback = new URL(back.url);
    expect(callback.searchParams.get('error')).to.equal('access_denied');
    expect(callback.searchParams.get('state')).to.equal('state-1');
    expect(callback.searchParams.has('code')).to.equal(false);
  });
});
