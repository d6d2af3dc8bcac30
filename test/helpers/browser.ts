import { accessSync, constants } from 'node:fs';
import { chromium, type Browser, type Page } from 'playwright-core';

/**
 * Headless Chromium for the tests that need a real browser (the API reference page; passkeys
 * later). It is the system's Chromium (Debian's `chromium` package), never a browser that
 * playwright downloads: only playwright-core is installed, and this machine reaches no browser
 * download host anyway.
 */

/** Where to find Chromium: `AUTHCTL_CHROMIUM`, else Debian's path. */
export function chromiumPath(): string {
  return process.env.AUTHCTL_CHROMIUM || '/usr/bin/chromium';
}

/**
 * The flags this machine needs: no sandbox (the tests run as root), no GPU, and none of the
 * background traffic Chromium starts by itself (component updates, sync, QUIC probes, the first
 * run's checks), so the only requests are the page's.
 */
export const CHROMIUM_ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

export type ChromiumLaunch = { browser: Browser; reason?: undefined } | { browser: undefined; reason: string };

/**
 * Launches headless Chromium with a fresh temporary profile (playwright makes and removes it), or
 * says why it cannot: a test then skips with that reason. Close the browser in `after()`. `extraArgs`
 * add flags of a test's own (passkeys map `*.localhost` names to the loopback address).
 */
export async function launchChromium(extraArgs: string[] = []): Promise<ChromiumLaunch> {
  const executablePath = chromiumPath();
  try {
    accessSync(executablePath, constants.X_OK);
  } catch {
    return {
      browser: undefined,
      reason: `no Chromium at ${executablePath}: install it (\`apt-get install chromium\` on Debian) or set AUTHCTL_CHROMIUM to its path`,
    };
  }
  const browser = await chromium.launch({ executablePath, args: [...CHROMIUM_ARGS, ...extraArgs], timeout: 30_000 });
  return { browser };
}

/** What a page did: every request, and every sign that something was refused or broke. */
export interface PageWatch {
  /** Every URL the page requested (data: URLs included), in order. */
  requests: string[];
  /** Requests to another origin than `origin`: aborted, never sent. */
  offOrigin: string[];
  /** `securitypolicyviolation` events: `<directive> <blocked URI>`. */
  cspViolations: string[];
  /** Console messages of type `error` (CSP refusals, failed loads, exceptions logged). */
  consoleErrors: string[];
  /** Uncaught exceptions in the page. */
  pageErrors: string[];
}

/**
 * Watches `page` from before its first script runs: records every request and aborts any that
 * leaves `origin` (so a test can never reach the internet, and fails when the page tries), and
 * collects CSP violations (through a binding, which the page's CSP cannot block), console errors
 * and uncaught exceptions. Call before `page.goto`.
 */
export async function watchPage(page: Page, origin: string): Promise<PageWatch> {
  const watch: PageWatch = { requests: [], offOrigin: [], cspViolations: [], consoleErrors: [], pageErrors: [] };
  await page.route('**/*', async (route) => {
    const url = route.request().url();
    watch.requests.push(url);
    if (/^(data|blob):/.test(url) || new URL(url).origin === origin) await route.continue();
    else {
      watch.offOrigin.push(url);
      await route.abort('blockedbyclient');
    }
  });
  page.on('console', (message) => {
    if (message.type() === 'error') watch.consoleErrors.push(message.text());
  });
  page.on('pageerror', (error) => watch.pageErrors.push(error.message));
  await page.exposeFunction('__authctlCspViolation', (entry: string) => watch.cspViolations.push(entry));
  // A string, not a function: the test build has no DOM types, and this runs in the page.
  await page.addInitScript(`document.addEventListener('securitypolicyviolation', (e) => {
    window.__authctlCspViolation(e.effectiveDirective + ' ' + (e.blockedURI || '(inline)') + (e.sample ? ' ' + e.sample : ''));
  });`);
  return watch;
}
