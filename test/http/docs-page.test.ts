import { createServer, request as httpRequest, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { gunzipSync } from 'node:zlib';
import Router from '@koa/router';
import { expect } from 'chai';
import type { Browser, Locator, Page } from 'playwright-core';
import { createApp } from '../../src/http/app.js';
import { startTestApp, type TestApp } from '../helpers/app.js';
import { launchChromium, watchPage, type PageWatch } from '../helpers/browser.js';
import { createAccount, expectProblem, login } from '../helpers/http-assert.js';
import { rawRequest } from '../helpers/http-raw.js';

/** The page's CSP, spelled out here so that any loosening of it is a visible change to this test. */
const EXPECTED_CSP =
  "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";
const API_CSP = "default-src 'none'; frame-ancestors 'none'";

/**
 * Expectations on the real OpenAPI document (src/http/openapi.ts): operations it describes, which
 * the page must render. The stand-in below has the same ones.
 */
const EXPECTED_OPERATIONS = [
  { method: 'post', path: '/v1/auth/login' },
  { method: 'get', path: '/v1/me' },
  { method: 'get', path: '/healthz' },
] as const;

/**
 * A small OpenAPI 3.1 document with the expected operations, served only when the server has no
 * `/openapi.json` of its own (the page does not depend on how the document is made).
 */
const STAND_IN_DOCUMENT = {
  openapi: '3.1.0',
  info: { title: 'authctl (test stand-in)', version: '0.0.0' },
  servers: [{ url: '/' }],
  tags: [{ name: 'Auth' }, { name: 'Account' }, { name: 'System' }],
  paths: {
    '/v1/auth/login': {
      post: {
        operationId: 'login',
        tags: ['Auth'],
        summary: 'Log in with a password',
        requestBody: {
          required: true,
          content: {
            'application/json': {
              schema: { type: 'object', properties: { username: { type: 'string' }, password: { type: 'string' } }, required: ['password'] },
            },
          },
        },
        responses: { '200': { description: 'Tokens' } },
      },
    },
    '/v1/me': {
      get: {
        operationId: 'me',
        tags: ['Account'],
        summary: "The caller's profile",
        security: [{ bearerAuth: [] }],
        responses: { '200': { description: 'The profile' } },
      },
    },
    '/healthz': { get: { operationId: 'healthz', tags: ['System'], summary: 'Liveness', responses: { '200': { description: 'Alive' } } } },
  },
  components: { securitySchemes: { bearerAuth: { type: 'http', scheme: 'bearer', bearerFormat: 'JWT' } } },
};

function listen(handler: Parameters<typeof createServer>[1]): Promise<{ server: Server; url: string }> {
  const server = createServer(handler);
  return new Promise((resolve) => {
    server.listen(0, '127.0.0.1', () => resolve({ server, url: `http://127.0.0.1:${(server.address() as AddressInfo).port}` }));
  });
}

function close(server: Server | undefined): Promise<void> {
  if (!server) return Promise.resolve();
  return new Promise((resolve) => {
    server.close(() => resolve());
    server.closeAllConnections();
  });
}

/** The asset URLs the page links to (stylesheets, icon, scripts), as written in it. */
function assetLinks(html: string): string[] {
  return [...html.matchAll(/(?:href|src)="([^"]+)"/g)].map((m) => m[1]!).filter((link) => link.startsWith('docs/assets/'));
}

describe('GET /docs: the API reference page (Swagger UI, served offline)', function () {
  let app: TestApp;
  /** Where the page is tested: the app itself, or the app plus the stand-in document. */
  let base: string;
  let realDocument: boolean;
  let standIn: Server | undefined;
  let html: string;

  before(async function () {
    app = await startTestApp('http_docs_page', { overrides: { http: { docs: true } } });
    realDocument = (await app.request('/openapi.json')).status !== 404;
    base = app.url;
    if (!realDocument) {
      const koa = createApp(app.container);
      const extra = new Router();
      extra.get('/openapi.json', (ctx) => {
        ctx.body = STAND_IN_DOCUMENT;
      });
      koa.use(extra.routes());
      const handle = koa.callback();
      const started = await listen((req, res) => void handle(req, res));
      standIn = started.server;
      base = started.url;
    }
    html = await (await fetch(`${base}/docs`)).text();
  });
  after(async function () {
    await close(standIn);
    await app?.close();
  });

  describe('over HTTP', function () {
    it('serves the page with its own CSP, the API headers, and only relative, local URLs (no inline script)', async function () {
      const res = await fetch(`${base}/docs`);
      expect(res.status).to.equal(200);
      expect(res.headers.get('content-type')).to.equal('text/html; charset=utf-8');
      expect(res.headers.get('content-security-policy')).to.equal(EXPECTED_CSP);
      expect(res.headers.get('x-content-type-options')).to.equal('nosniff');
      expect(res.headers.get('x-frame-options')).to.equal('DENY');
      expect(res.headers.get('referrer-policy')).to.equal('no-referrer');
      expect(res.headers.get('cache-control')).to.equal('no-cache');
      expect(res.headers.get('etag')).to.match(/^"[A-Za-z0-9_-]+"$/);
      const body = await res.text();
      // Every <script> has a src (none inline), every link is relative: nothing from another host.
      expect(body.match(/<script\b[^>]*>/g)).to.have.length(2);
      expect(body.match(/<script\b[^>]*>/g)!.every((tag) => /\ssrc="docs\/assets\//.test(tag))).to.equal(true);
      expect(body).to.not.match(/(?:href|src)="(?:[a-z]+:|\/)/i);
      expect(assetLinks(body).map((link) => link.split('/').pop())).to.have.members([
        'swagger-ui.css',
        'index.css',
        'favicon-32x32.png',
        'swagger-ui-bundle.js',
        'docs-init.js',
      ]);
      // A revalidation with the ETag is a 304 (node:http: fetch adds `Cache-Control: no-cache` to a conditional request).
      const again = await rawRequest(base, { method: 'GET', path: '/docs', headers: { 'if-none-match': res.headers.get('etag')! } });
      expect(again.status).to.equal(304);
    });

    it('the init script turns off the validator badge and ?url= loading, and loads openapi.json next to the page', async function () {
      const link = assetLinks(html).find((l) => l.endsWith('/docs-init.js'))!;
      const script = await (await fetch(`${base}/${link}`)).text();
      expect(script).to.include('validatorUrl: null');
      expect(script).to.include('queryConfigEnabled: false');
      expect(script).to.include("new URL('openapi.json', document.baseURI)");
      expect(script).to.not.match(/https?:\/\//);
    });

    it('every other route keeps the strict API CSP, the assets included', async function () {
      for (const path of ['/healthz', '/v1/me', '/nope', '/.well-known/jwks.json', '/openapi.json', `/${assetLinks(html)[0]!}`]) {
        const res = await fetch(`${base}${path}`);
        expect(res.headers.get('content-security-policy'), path).to.equal(API_CSP);
      }
    });

    it('assets: right content type, immutable under a versioned URL, strong ETag and 304, gzip when asked', async function () {
      const types: Record<string, string> = {
        'swagger-ui.css': 'text/css; charset=utf-8',
        'index.css': 'text/css; charset=utf-8',
        'favicon-32x32.png': 'image/png',
        'swagger-ui-bundle.js': 'text/javascript; charset=utf-8',
        'docs-init.js': 'text/javascript; charset=utf-8',
      };
      for (const link of assetLinks(html)) {
        const name = link.split('/').pop()!;
        expect(link, 'the version is in the path').to.match(/^docs\/assets\/5\.\d+\.\d+-[0-9a-f]{12}\//);
        const res = await fetch(`${base}/${link}`, { headers: { 'accept-encoding': 'identity' } });
        expect(res.status, link).to.equal(200);
        expect(res.headers.get('content-type'), link).to.equal(types[name]);
        expect(res.headers.get('cache-control'), link).to.equal('public, max-age=31536000, immutable');
        expect(res.headers.get('x-content-type-options'), link).to.equal('nosniff');
        expect(res.headers.get('content-encoding'), link).to.equal(null);
        const etag = res.headers.get('etag');
        expect(etag, link).to.match(/^"[A-Za-z0-9_-]+"$/);
        const identity = Buffer.from(await res.arrayBuffer());
        const cached = await rawRequest(base, { method: 'GET', path: `/${link}`, headers: { 'accept-encoding': 'identity', 'if-none-match': etag! } });
        expect(cached.status, link).to.equal(304);
        expect(cached.body).to.equal('');

        if (name === 'swagger-ui-bundle.js' || name === 'swagger-ui.css') {
          // fetch decompresses by itself: read the raw bytes through node:http.
          const zipped = await new Promise<{ headers: Record<string, unknown>; body: Buffer }>((resolve, reject) => {
            httpRequest(`${base}/${link}`, { headers: { 'accept-encoding': 'gzip, br' } }, (r) => {
              const parts: Buffer[] = [];
              r.on('data', (c: Buffer) => parts.push(c));
              r.on('end', () => resolve({ headers: r.headers, body: Buffer.concat(parts) }));
            })
              .on('error', reject)
              .end();
          });
          expect(zipped.headers['content-encoding'], link).to.equal('gzip');
          expect(zipped.headers.vary, link).to.match(/accept-encoding/i);
          expect(zipped.headers.etag, 'another representation, another ETag').to.not.equal(etag);
          expect(zipped.body.length).to.be.below(identity.length / 2);
          expect(gunzipSync(zipped.body).equals(identity), `${link}: gzip is the same file`).to.equal(true);
          const refused = await rawRequest(base, { method: 'GET', path: `/${link}`, headers: { 'accept-encoding': 'gzip;q=0, identity' } });
          expect(refused.headers['content-encoding'], 'gzip;q=0 is a refusal').to.equal(undefined);
        }
      }
      const bundle = assetLinks(html).find((l) => l.endsWith('/swagger-ui-bundle.js'))!;
      expect((await fetch(`${base}/${bundle}`)).headers.get('content-length') ?? '', 'whole, not streamed').to.not.equal('');
    });

    it('no path traversal and nothing outside the list: every attempt is a 404 problem', async function () {
      const version = assetLinks(html)[0]!.split('/')[2]!;
      const attempts = [
        `/docs/assets/${version}/..%2f..%2fpackage.json`,
        `/docs/assets/${version}/..%2fpackage.json`,
        `/docs/assets/${version}/%2e%2e%2f%2e%2e%2fpackage.json`,
        `/docs/assets/${version}/..%5c..%5cpackage.json`,
        `/docs/assets/${version}/..%252f..%252fpackage.json`,
        `/docs/assets/${version}/../../../../package.json`,
        `/docs/assets/..%2f..%2f..%2f/package.json`,
        `/docs/assets/${version}/%2fetc%2fpasswd`,
        `/docs/assets/${version}/package.json`,
        `/docs/assets/${version}/swagger-ui.js`,
        `/docs/assets/${version}/swagger-ui-bundle.js.map`,
        `/docs/assets/${version}/index.html`,
        `/docs/assets/${version}/swagger-ui.css%00.js`,
        `/docs/assets/0.0.0-000000000000/swagger-ui.css`,
        `/docs/assets/swagger-ui.css`,
        '/docs/assets/',
      ];
      for (const path of attempts) {
        // node:http sends the path exactly as written (fetch would normalize the dot segments).
        const res = await rawRequest(base, { method: 'GET', path });
        expect(res.status, path).to.equal(404);
        expect(res.headers['content-type'], path).to.match(/^application\/problem\+json/);
        expect(JSON.parse(res.body), path).to.include({ code: 'not_found' });
        expect(res.body, path).to.not.include('swagger-ui-dist');
      }
    });

    it('/docs/ redirects to ../docs (relative: a proxy prefix is kept); the page takes only GET', async function () {
      const res = await fetch(`${base}/docs/`, { redirect: 'manual' });
      expect(res.status).to.equal(301);
      expect(res.headers.get('location')).to.equal('../docs');
      await expectProblem(await fetch(`${base}/docs`, { method: 'POST' }), 405, 'method_not_allowed');
    });

    it('with http.docs off (the default) there is no page and no asset: 404 like any unknown path', async function () {
      const off = await startTestApp('http_docs_page', { db: app.db, migrate: false });
      try {
        expect(off.container.config.http.docs).to.equal(false);
        await expectProblem(await off.request('/docs'), 404, 'not_found');
        await expectProblem(await off.request(`/${assetLinks(html)[0]!}`), 404, 'not_found');
        await expectProblem(await off.request('/docs/'), 404, 'not_found');
      } finally {
        await off.close();
      }
    });
  });

  describe('in headless Chromium', function () {
    // Swagger UI's 1.7 MB bundle is parsed on every page: slow when other test files share the cores.
    this.timeout(60_000);
    let browser: Browser | undefined;

    before(async function () {
      const launched = await launchChromium();
      if (!launched.browser) {
        // CI installs Chromium (.ci/run): there a missing browser is a broken setup, not a skip.
        if (process.env.CI) throw new Error(launched.reason);
        console.log(`      skipped: ${launched.reason}`);
        this.skip();
      }
      browser = launched.browser;
    });
    after(async function () {
      await browser?.close();
    });

    /** A fresh page on the docs, watched from its first request; resolves once the operations are drawn. */
    async function openDocs(url: string, origin = new URL(url).origin): Promise<{ page: Page; watch: PageWatch }> {
      const page = await browser!.newPage();
      // Below mocha's timeout, so that a failure names the element that never came.
      page.setDefaultTimeout(20_000);
      const watch = await watchPage(page, origin);
      await page.goto(url);
      await page.locator('.opblock').first().waitFor();
      return { page, watch };
    }

    function operation(page: Page, method: string, path: string): Locator {
      return page.locator(`.opblock.opblock-${method}`, { has: page.locator(`.opblock-summary-path[data-path="${path}"]`) });
    }

    function expectClean(watch: PageWatch): void {
      expect(watch.cspViolations, 'CSP violations').to.deep.equal([]);
      expect(watch.consoleErrors, 'console errors').to.deep.equal([]);
      expect(watch.pageErrors, 'uncaught exceptions').to.deep.equal([]);
      expect(watch.offOrigin, 'requests to another origin').to.deep.equal([]);
    }

    it(`renders the operations of the document with no CSP violation and no request off this origin`, async function () {
      const { page, watch } = await openDocs(`${base}/docs`);
      try {
        for (const { method, path } of EXPECTED_OPERATIONS) {
          await operation(page, method, path).waitFor();
          expect(await operation(page, method, path).locator('.opblock-summary-method').textContent(), path).to.equal(method.toUpperCase());
        }
        // Expanding an operation shows its body: parameters, responses.
        const loginOp = operation(page, 'post', '/v1/auth/login');
        await loginOp.locator('.opblock-summary').first().click();
        await loginOp.locator('.opblock-body').waitFor();
        expect(await loginOp.locator('.opblock-body .responses-wrapper').count()).to.equal(1);
        // The request body editor and a schema model: the views that draw styled markup.
        await loginOp.locator('.try-out__btn').click();
        await loginOp.locator('textarea.body-param__text').waitFor();
        await loginOp.locator('.opblock-section-request-body .tablinks[data-name="model"]').first().click();
        const schema = loginOp.locator('.opblock-section-request-body .model-box');
        await schema.locator('.json-schema-2020-12-property').first().waitFor();
        const accordion = schema.locator('.json-schema-2020-12-accordion').first();
        await accordion.click();
        await schema.locator('.json-schema-2020-12-accordion[aria-expanded="false"]').first().waitFor();
        await accordion.click();
        await schema.locator('.json-schema-2020-12-property').first().waitFor();
        // The page's own files and the document were all it fetched (data: images aside).
        const fetched = watch.requests.filter((url) => !url.startsWith('data:')).map((url) => new URL(url).pathname);
        expect(fetched).to.include('/openapi.json');
        expect(
          fetched.filter((p) => p !== '/docs' && p !== '/openapi.json').every((p) => p.startsWith('/docs/assets/')),
          fetched.join(' '),
        ).to.equal(true);
        expectClean(watch);
        console.log(`      ${realDocument ? 'the real' : 'the stand-in'} /openapi.json: ${await page.locator('.opblock').count()} operations rendered`);
      } finally {
        await page.close();
      }
    });

    it('deep links open an operation; "Try it out" of GET /healthz gets 200 from this origin (connect-src)', async function () {
      const first = await openDocs(`${base}/docs`);
      const anchor = await operation(first.page, 'get', '/healthz').getAttribute('id');
      await first.page.close();
      expect(anchor).to.match(/^operations-/);
      const [tag, operationId] = anchor!.replace(/^operations-/, '').split(/-(?=[^-]+$)/);
      const { page, watch } = await openDocs(`${base}/docs#/${tag}/${operationId}`);
      try {
        const health = operation(page, 'get', '/healthz');
        await health.locator('.opblock-body').waitFor();
        await health.locator('.try-out__btn').click();
        await health.locator('button.execute').click();
        const status = health.locator('.live-responses-table tr.response .response-col_status').first();
        await status.waitFor();
        expect((await status.textContent())?.trim()).to.equal('200');
        expect(await health.locator('.live-responses-table tr.response .response-col_description').first().textContent()).to.include('"status": "ok"');
        expectClean(watch);
      } finally {
        await page.close();
      }
    });

    it('Authorize with a Bearer token, then "Try it out" of GET /v1/me returns the caller', async function () {
      const account = await createAccount(app, 'docs');
      const { accessToken } = await login(app, account.username, account.password);
      const { page, watch } = await openDocs(`${base}/docs`);
      try {
        await page.locator('button.authorize').first().click();
        const modal = page.locator('.dialog-ux .modal-ux');
        await modal.locator('input').first().fill(accessToken);
        await modal.locator('button.authorize').first().click();
        await modal.locator('button.btn-done').first().click();
        const me = operation(page, 'get', '/v1/me');
        await me.locator('.opblock-summary').first().click();
        await me.locator('.try-out__btn').click();
        await me.locator('button.execute').click();
        const status = me.locator('.live-responses-table tr.response .response-col_status').first();
        await status.waitFor();
        expect((await status.textContent())?.trim()).to.equal('200');
        expect(await me.locator('.live-responses-table tr.response .response-col_description').first().textContent()).to.include(account.user.id);
        expectClean(watch);
      } finally {
        await page.close();
      }
    });

    it('behind a proxy that mounts the server under /auth/, the page loads its assets and the document under that prefix', async function () {
      const target = new URL(base);
      const proxy = await listen((req, res) => {
        if (!req.url?.startsWith('/auth/')) {
          res.writeHead(404).end();
          return;
        }
        const upstream = httpRequest(
          { host: target.hostname, port: target.port, method: req.method, path: req.url.slice('/auth'.length), headers: req.headers },
          (answer) => {
            res.writeHead(answer.statusCode ?? 502, answer.headers);
            answer.pipe(res);
          },
        );
        upstream.on('error', () => res.writeHead(502).end());
        req.pipe(upstream);
      });
      try {
        const { page, watch } = await openDocs(`${proxy.url}/auth/docs`);
        try {
          await operation(page, 'get', '/healthz').waitFor();
          const paths = watch.requests.filter((url) => !url.startsWith('data:')).map((url) => new URL(url).pathname);
          expect(paths).to.include('/auth/openapi.json');
          expect(
            paths.every((p) => p.startsWith('/auth/')),
            paths.join(' '),
          ).to.equal(true);
          expectClean(watch);
        } finally {
          await page.close();
        }
      } finally {
        await close(proxy.server);
      }
    });
  });
});
