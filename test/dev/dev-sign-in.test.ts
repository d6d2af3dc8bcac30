import { rmSync } from 'node:fs';
import { expect } from 'chai';
import type { Browser } from 'playwright-core';
import { launchChromium } from '../helpers/browser.js';
import { PASSKEY_CHROMIUM_ARGS, PasskeyTab } from '../passkeys/support.js';
import { waitUntil } from '../jobs/setup.js';
import { devDataDir, spawnDev, stopProcess, type DevProcess } from './dev-process.js';

// The demo app is named localhost (browsers refuse WebAuthn on IP addresses); the API and the provider listen on 127.0.0.1.
const PASSKEYS = /Passkeys: on \(RP ID localhost\): [^\n]* on the demo app at (http:\/\/localhost:\d+\/)/;
const API = /authctl dev is running on (http:\/\/127\.0\.0\.1:\d+)/;
const BANNER = /Sign in with a provider: (http:\/\/localhost:\d+\/) \(the demo app; the dev provider at (http:\/\/127\.0\.0\.1:\d+) /;

/** `npm run dev` lets provider sign-in be tried with no configuration: the demo app, through the embedded provider. */
describe('authctl dev: provider sign-in with no configuration', function () {
  this.timeout(180_000);
  let dir: string;
  let dev: DevProcess | undefined;
  let browser: Browser | undefined;

  before(async function () {
    dir = devDataDir('oidc');
    dev = await spawnDev(dir, BANNER);
  });

  after(async function () {
    await browser?.close();
    await stopProcess(dev?.child);
    rmSync(dir, { recursive: true, force: true });
  });

  it('prints the demo app and the dev provider; the provider answers discovery; `providers list` is not needed to know it', async function () {
    const [, demoUrl, issuer] = BANNER.exec(dev!.output()) ?? [];
    expect(demoUrl, dev!.output()).to.be.a('string');
    const discovery = (await (await fetch(`${issuer}/.well-known/openid-configuration`)).json()) as { issuer: string };
    expect(discovery.issuer).to.equal(issuer);
    const page = await fetch(demoUrl!);
    expect(page.status).to.equal(200);
    expect(await page.text()).to.contain('Sign in with the dev provider');
  });

  it('in a browser: the demo app → the dev provider, any name → signed in as <name>@example.test, verified, with idp "dev"', async function () {
    const launched = await launchChromium();
    if (!launched.browser) this.skip();
    browser = launched.browser;
    const demoUrl = BANNER.exec(dev!.output())?.[1];
    const page = await browser.newPage();
    await page.goto(demoUrl!);
    await page.getByRole('button', { name: 'Sign in with the dev provider' }).click();
    await page.getByLabel('Name').fill('Grace Hopper');
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.locator('#claims:not([hidden]), #error:not([hidden])').first().waitFor({ timeout: 20_000 });
    expect(await page.locator('#error').textContent(), page.url()).to.equal('');
    expect(await page.locator('#error').isVisible()).to.equal(false);
    const me = JSON.parse((await page.locator('#me').textContent())!) as { user: { email: string | null; emailVerified: boolean } };
    const claims = JSON.parse((await page.locator('#claims').textContent())!) as { idp: string; amr: string[] };
    expect(claims.idp).to.equal('dev');
    expect(claims.amr).to.include('fed');
    expect(me.user).to.include({ email: 'grace-hopper@example.test', emailVerified: true });
    expect(await page.locator('#status').textContent()).to.equal('Signed in as grace-hopper@example.test');
  });

  it('passkeys are on with no configuration: the demo app serves @simplewebauthn/browser, offers the passkey sign-in, and the API lets its origin call it', async function () {
    await waitUntil(() => PASSKEYS.test(dev!.output()), `the passkeys line:\n${dev!.output()}`);
    const demoUrl = PASSKEYS.exec(dev!.output())![1]!;
    const apiUrl = API.exec(dev!.output())![1]!;
    const bundle = await fetch(new URL('/simplewebauthn-browser.js', demoUrl));
    expect(bundle.status).to.equal(200);
    expect(bundle.headers.get('content-type')).to.match(/^text\/javascript/);
    expect(await bundle.text()).to.contain('SimpleWebAuthnBrowser');
    const preflight = await fetch(`${apiUrl}/v1/auth/passkey/options`, {
      method: 'OPTIONS',
      headers: { origin: new URL(demoUrl).origin, 'access-control-request-method': 'POST', 'access-control-request-headers': 'content-type' },
    });
    expect(preflight.headers.get('access-control-allow-origin')).to.equal(new URL(demoUrl).origin);

    const launched = await launchChromium();
    if (!launched.browser) this.skip();
    const page = await launched.browser.newPage();
    const errors: string[] = [];
    page.on('console', (message) => {
      if (message.type() === 'error') errors.push(message.text());
    });
    page.on('pageerror', (error) => errors.push(error.message));
    try {
      await page.goto(demoUrl);
      // The bundle ran under the page's CSP and found WebAuthn (localhost is a secure context): the button is live.
      await page.getByRole('button', { name: 'Sign in with a passkey' }).and(page.locator(':enabled')).waitFor();
      expect(await page.evaluate('typeof window.SimpleWebAuthnBrowser.startAuthentication')).to.equal('function');
      expect(await page.locator('#passkey-note').isVisible()).to.equal(false);
      // Adding one needs a signed-in user.
      expect(await page.getByRole('button', { name: 'Add a passkey' }).isVisible()).to.equal(false);
      expect(errors).to.deep.equal([]);
    } finally {
      await launched.browser.close();
    }
  });
  it('in a browser, end to end: signed in with the dev provider, "Add a passkey", then after a reload "Sign in with a passkey" signs in as the same user', async function () {
    await waitUntil(() => PASSKEYS.test(dev!.output()), `the passkeys line:\n${dev!.output()}`);
    const demoUrl = PASSKEYS.exec(dev!.output())![1]!;
    const launched = await launchChromium(PASSKEY_CHROMIUM_ARGS);
    if (!launched.browser) this.skip();
    const tab = await PasskeyTab.open(launched.browser, new URL(demoUrl).origin);
    const { page } = tab;
    const shown = () => page.locator('#status:not([hidden]), #error:not([hidden])').first();
    try {
      await page.getByRole('button', { name: 'Sign in with the dev provider' }).click();
      await page.getByLabel('Name').fill('Ada Lovelace');
      await page.getByRole('button', { name: 'Sign in' }).click();
      await page.locator('#me:not([hidden]), #error:not([hidden])').first().waitFor({ timeout: 20_000 });
      expect(await page.locator('#error').textContent()).to.equal('');

      await page.getByRole('button', { name: 'Add a passkey' }).click();
      await page
        .locator('#error:not([hidden])')
        .or(page.getByText(/^Passkey added/))
        .first()
        .waitFor({ timeout: 20_000 });
      expect(await page.locator('#error').textContent()).to.equal('');
      expect(await tab.credentials()).to.have.length(1);

      // A reload forgets the access token: signed out.
      await page.reload();
      await page.getByRole('button', { name: 'Sign in with a passkey' }).and(page.locator(':enabled')).waitFor();
      expect(await page.locator('#me').isVisible()).to.equal(false);
      await page.getByRole('button', { name: 'Sign in with a passkey' }).click();
      await page.locator('#me:not([hidden]), #error:not([hidden])').first().waitFor({ timeout: 20_000 });
      expect(await page.locator('#error').textContent()).to.equal('');
      const me = JSON.parse((await page.locator('#me').textContent())!) as { user: { email: string | null } };
      const claims = JSON.parse((await page.locator('#claims').textContent())!) as { amr: string[] };
      expect(me.user.email).to.equal('ada-lovelace@example.test');
      expect(claims.amr).to.include('hwk');
      expect(await shown().textContent()).to.equal('Signed in as ada-lovelace@example.test');
    } finally {
      await tab.close();
      await launched.browser.close();
    }
  });
});
