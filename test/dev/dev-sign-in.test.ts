import { rmSync } from 'node:fs';
import { expect } from 'chai';
import type { Browser } from 'playwright-core';
import { launchChromium } from '../helpers/browser.js';
import { devDataDir, spawnDev, stopProcess, type DevProcess } from './dev-process.js';

const BANNER = /Sign in with a provider: (http:\/\/127\.0\.0\.1:\d+\/) \(the demo app; the dev provider at (http:\/\/127\.0\.0\.1:\d+) /;

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
});
