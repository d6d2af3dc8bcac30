import { expect } from 'chai';
import type { Browser, Page } from 'playwright-core';
import { startDemoApp, type DemoApp } from '../../src/dev/demo-app.js';
import { startTestApp, type TestApp } from '../helpers/app.js';
import { launchChromium } from '../helpers/browser.js';
import { expectProblem } from '../helpers/http-assert.js';
import { freePort } from '../helpers/redis-server.js';
import { startProvider, type TestProvider } from './support.js';

const CLIENT = { clientId: 'authctl-browser', clientSecret: 'browser-client-secret-0123456789' };

/**
 * The whole web sign-in in headless Chromium, as a user clicks through it: an app page on its own
 * origin ("Sign in with Google", PKCE made in the page with WebCrypto) → authctl's authorize → the
 * provider's login page → authctl's callback → the app page with `?code=` → POST /v1/auth/oidc/token
 * → GET /v1/me, shown on the page. The app page is the demo app `authctl dev` serves.
 */
describe('provider sign-in in a real browser', function () {
  this.timeout(90_000);
  let browser: Browser | undefined;
  let op: TestProvider;
  let app: TestApp;
  let demo: DemoApp;
  let page: Page;
  /** What the browser asked for, in order; anything off the three loopback origins is aborted. */
  let requests: string[];
  let refused: string[];
  let pageErrors: string[];

  before(async function () {
    const launched = await launchChromium();
    if (!launched.browser) this.skip();
    browser = launched.browser;
    op = await startProvider({ name: 'Google', accounts: [{ sub: 'g-1001', email: 'ada@example.test', email_verified: true, name: 'Ada Lovelace' }] });
    // The app's origin is in authctl's config (CORS, redirect_to), and authctl's URL in the app's page.
    const demoPort = await freePort();
    const appUrl = `http://localhost:${demoPort}/`;
    app = await startTestApp('oidc_browser', {
      overrides: (url) => {
        op.registerClient({ ...CLIENT, redirectUris: [`${url}/v1/auth/oidc/google/callback`] });
        return { publicUrl: url, http: { corsOrigins: [new URL(appUrl).origin] }, identity: op.config(CLIENT, [appUrl]) };
      },
    });
    demo = await startDemoApp({ apiUrl: app.url, provider: 'google', label: 'Sign in with Google', port: demoPort });
    expect(demo.url).to.equal(appUrl);
  });

  beforeEach(async function () {
    const context = await browser!.newContext();
    page = await context.newPage();
    requests = [];
    refused = [];
    pageErrors = [];
    const allowed = new Set([demo.origin, new URL(app.url).origin, new URL(op.url).origin]);
    await page.route('**/*', async (route) => {
      const url = route.request().url();
      if (allowed.has(new URL(url).origin)) await route.continue();
      else {
        refused.push(url);
        await route.abort('blockedbyclient');
      }
    });
    // Every request, redirects' hops included (a route sees only the first of a chain).
    page.on('request', (request) => requests.push(request.url()));
    page.on('pageerror', (error) => pageErrors.push(error.message));
  });

  afterEach(async function () {
    await page?.context().close();
  });

  after(async function () {
    await browser?.close();
    await demo?.close();
    await app?.close();
    await op?.close();
  });

  it('app page → Google login page → back with a one-time code → tokens → /v1/me on the page; the code is spent and gone from the address bar', async function () {
    await page.goto(demo.url);
    await page.getByRole('button', { name: 'Sign in with Google' }).click();
    // The provider's own login page, reached through authctl's authorize.
    await page.waitForURL((url) => url.origin === new URL(op.url).origin && url.pathname.startsWith('/interaction/'));
    await page.getByRole('button', { name: 'Sign in as Ada Lovelace' }).click();
    await page.waitForURL((url) => url.origin === demo.origin);
    await page.locator('#claims').waitFor({ state: 'visible' });

    const status = await page.locator('#status').textContent();
    expect(status).to.match(/^Signed in as /);
    const me = JSON.parse((await page.locator('#me').textContent())!) as { user: { id: string; email: string | null } };
    const claims = JSON.parse((await page.locator('#claims').textContent())!) as Record<string, unknown>;
    expect(claims.sub).to.equal(me.user.id);
    expect(claims.idp).to.equal('google');
    expect(claims.amr).to.be.an('array').that.includes('fed');
    expect(claims.iss).to.equal(app.container.config.tokens.issuer);
    // The identity is Ada's Google account, linked to the user the page shows.
    const identities = await app.container.identities.list(me.user.id);
    expect(identities.map((i) => [i.provider, i.subject])).to.deep.equal([['google', 'g-1001']]);

    // The page went through each hop in order, and only to the three origins.
    const hops = requests.map((u) => new URL(u)).filter((u) => !u.pathname.endsWith('.ico'));
    const index = (test: (u: URL) => boolean) => hops.findIndex(test);
    const authorize = index((u) => u.pathname === '/v1/auth/oidc/google/authorize');
    const callback = index((u) => u.pathname === '/v1/auth/oidc/google/callback');
    const back = index((u) => u.origin === demo.origin && u.searchParams.has('code'));
    const token = index((u) => u.pathname === '/v1/auth/oidc/token');
    expect(
      [authorize, callback, back, token].every((i) => i >= 0),
      requests.join('\n'),
    ).to.equal(true);
    expect(authorize < callback && callback < back && back < token).to.equal(true);
    expect(hops[authorize]!.searchParams.get('code_challenge')).to.match(/^[A-Za-z0-9_-]{43}$/);
    expect(refused).to.deep.equal([]);
    expect(pageErrors).to.deep.equal([]);
    // The code left the address bar (history.replaceState) and cannot be redeemed again.
    expect(new URL(page.url()).search).to.equal('');
    const code = hops[back]!.searchParams.get('code');
    const again = await app.request('/v1/auth/oidc/token', { method: 'POST', json: { code, codeVerifier: 'a'.repeat(43) } });
    await expectProblem(again, 400, 'invalid_oidc_code');
  });

  it('Cancel at the provider comes back to the app page as access_denied, and nobody is signed in', async function () {
    await page.goto(demo.url);
    await page.getByRole('button', { name: 'Sign in with Google' }).click();
    await page.waitForURL((url) => url.origin === new URL(op.url).origin && url.pathname.startsWith('/interaction/'));
    await page.getByRole('button', { name: 'Cancel' }).click();
    await page.waitForURL((url) => url.origin === demo.origin);
    await page.locator('#error').waitFor({ state: 'visible' });
    expect(await page.locator('#error').textContent()).to.match(/^access_denied: /);
    expect(await page.locator('#claims').isVisible()).to.equal(false);
    expect(requests.some((u) => new URL(u).pathname === '/v1/auth/oidc/token')).to.equal(false);
    expect(pageErrors).to.deep.equal([]);
  });
});
