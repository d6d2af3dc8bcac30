import { expect } from 'chai';
import type { Browser } from 'playwright-core';
import { startDemoApp, type DemoApp } from '../../src/dev/demo-app.js';
import { startTestApp, type TestApp } from '../helpers/app.js';
import { launchChromium } from '../helpers/browser.js';
import { freePort } from '../helpers/redis-server.js';

/**
 * The demo app's passkey buttons against a server without passkeys (identity.webauthn off: the
 * routes are not there): the page says so in words, and breaks nothing else.
 */
describe('the demo app’s passkeys, where the server has none', function () {
  this.timeout(60_000);
  let app: TestApp;
  let demo: DemoApp;
  let browser: Browser | undefined;

  before(async function () {
    // The demo's origin is in the API's CORS list, as authctl dev has it.
    const port = await freePort();
    app = await startTestApp('demo_passkeys', { overrides: { http: { corsOrigins: [`http://localhost:${port}`] } } });
    demo = await startDemoApp({ apiUrl: app.url, provider: 'dev', label: 'Sign in with the dev provider', passkeys: true, port });
    expect(demo.origin).to.equal(`http://localhost:${port}`);
  });

  after(async function () {
    await browser?.close();
    await demo?.close();
    await app?.close();
  });

  it('is named localhost (WebAuthn refuses IP addresses) and serves the bundle only with passkeys', async function () {
    expect(demo.origin).to.match(/^http:\/\/localhost:\d+$/);
    const html = await (await fetch(demo.url)).text();
    expect(html).to.match(/<script nonce="[^"]+" src="\/simplewebauthn-browser\.js"><\/script>/);
    const plain = await startDemoApp({ apiUrl: app.url, provider: 'dev', label: 'Sign in' });
    try {
      const plainHtml = await (await fetch(plain.url)).text();
      expect(plainHtml).not.to.contain('src="/simplewebauthn-browser.js"');
      expect(plainHtml).to.contain('"passkeys":false');
      expect((await fetch(new URL('/simplewebauthn-browser.js', plain.url))).status).to.equal(404);
    } finally {
      await plain.close();
    }
  });

  it('"Sign in with a passkey" says the server has no passkeys (its 404), in text', async function () {
    const launched = await launchChromium();
    if (!launched.browser) this.skip();
    browser = launched.browser;
    const page = await browser.newPage();
    const pageErrors: string[] = [];
    page.on('pageerror', (error) => pageErrors.push(error.message));
    await page.goto(demo.url);
    await page.getByRole('button', { name: 'Sign in with a passkey' }).click();
    await page.locator('#error:not([hidden])').waitFor();
    expect(await page.locator('#error').textContent()).to.equal(
      'passkeys are not available on this server: POST /v1/auth/passkey/options answered 404 (is identity.webauthn on?)',
    );
    expect(pageErrors).to.deep.equal([]);
  });
});
