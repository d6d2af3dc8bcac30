import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { gzipSync } from 'node:zlib';

/**
 * The API reference page (`GET /docs`): Swagger UI over this server's `/openapi.json`, every byte
 * of it served by authctl from the `swagger-ui-dist` package — no CDN, nothing fetched from the
 * internet, so it works offline and leaks no visit to a third party.
 *
 * Every URL in the page is relative (`docs/assets/…`, `openapi.json`): behind a proxy that
 * mounts the server under a prefix (`https://example.com/auth/docs`) they resolve under that
 * prefix. The page is `/docs` without a trailing slash; `/docs/` redirects there.
 */

/**
 * The page's CSP: the API's `default-src 'none'` loosened by exactly what Swagger UI needs, as
 * measured by test/http/docs-page.test.ts in headless Chromium (it fails on any violation).
 * - `script-src 'self'`: the bundle and the init script, both files of ours; no inline script,
 *   no eval.
 * - `style-src 'self'`: the stylesheets are files; no 'unsafe-inline' is needed, since Swagger UI 5
 *   sets its inline styles through the DOM (React `style` props), which CSP does not govern, and
 *   writes no `style="…"` markup or `<style>` element (the test expands operations and schemas,
 *   runs requests and shows the highlighted responses, with no violation).
 * - `img-src 'self' data:`: swagger-ui.css draws its icons as `data:` SVG and PNG images; the
 *   favicon is ours.
 * - `connect-src 'self'`: fetching `openapi.json` and "Try it out" against this same origin only
 *   (a `?url=` pointing elsewhere could not load, should anything honour it).
 * - `base-uri 'none'`, `form-action 'none'`: the page needs neither a `<base>` nor a form that
 *   submits (Swagger UI's forms are handled in script); `frame-ancestors 'none'`: not framed.
 */
export const DOCS_CSP = [
  "default-src 'none'",
  "script-src 'self'",
  "style-src 'self'",
  "img-src 'self' data:",
  "connect-src 'self'",
  "base-uri 'none'",
  "form-action 'none'",
  "frame-ancestors 'none'",
].join('; ');

/**
 * Starts Swagger UI on the page. Served as a file so that `script-src` needs no 'unsafe-inline'.
 * - the document is `openapi.json` next to the page (see above: under the proxy's prefix too);
 * - `validatorUrl: null`: no badge that sends the document to an online validator;
 * - `queryConfigEnabled: false`: `?url=…` and `?configUrl=…` cannot load another document
 *   into the page (the classic Swagger UI injection);
 * - `BaseLayout` without the standalone preset: no top bar, its URL box and external links.
 */
const INIT_SCRIPT = `'use strict';
window.ui = SwaggerUIBundle({
  url: new URL('openapi.json', document.baseURI).href,
  dom_id: '#swagger-ui',
  deepLinking: true,
  validatorUrl: null,
  queryConfigEnabled: false,
  withCredentials: false,
  persistAuthorization: false,
  presets: [SwaggerUIBundle.presets.apis],
  plugins: [SwaggerUIBundle.plugins.DownloadUrl],
  layout: 'BaseLayout',
});
`;

export interface DocsAsset {
  type: string;
  body: Buffer;
  /** The body gzipped, for the large text files (the bundle is 1.7 MB, 0.5 MB gzipped). */
  gzip?: Buffer;
  /** Strong ETags, one per representation (RFC 9110 §8.8.3). */
  etag: string;
  gzipEtag?: string;
}

/** The files of `swagger-ui-dist` the page loads: the only ones served (no path is ever joined from a request). */
const PACKAGE_FILES: Record<string, string> = {
  'swagger-ui.css': 'text/css; charset=utf-8',
  'index.css': 'text/css; charset=utf-8',
  'swagger-ui-bundle.js': 'text/javascript; charset=utf-8',
  'favicon-32x32.png': 'image/png',
};

export interface DocsAssets {
  /** The path segment of the asset URLs: the Swagger UI version and a hash of every file, so a URL's content never changes. */
  version: string;
  files: ReadonlyMap<string, DocsAsset>;
  page: DocsAsset;
}

function asset(type: string, body: Buffer): DocsAsset {
  const digest = (data: Buffer) => createHash('sha256').update(data).digest('base64url').slice(0, 27);
  const compressible = !type.startsWith('image/') && body.length > 1024;
  const gzip = compressible ? gzipSync(body) : undefined;
  return { type, body, etag: `"${digest(body)}"`, ...(gzip ? { gzip, gzipEtag: `"${digest(body)}-gz"` } : {}) };
}

function page(version: string): string {
  const at = (file: string) => `docs/assets/${version}/${file}`;
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="robots" content="noindex">
<title>authctl API reference</title>
<link rel="stylesheet" href="${at('swagger-ui.css')}">
<link rel="stylesheet" href="${at('index.css')}">
<link rel="icon" type="image/png" href="${at('favicon-32x32.png')}">
</head>
<body>
<noscript><p>This page needs JavaScript. The API is described by the OpenAPI document at <a href="openapi.json">openapi.json</a>.</p></noscript>
<div id="swagger-ui"></div>
<script src="${at('swagger-ui-bundle.js')}"></script>
<script src="${at('docs-init.js')}"></script>
</body>
</html>
`;
}

let loaded: DocsAssets | undefined;

/**
 * Reads the page's files once (they are static), on the first request of the page or an asset.
 * The package folder is found by module resolution, wherever npm put it.
 */
export function docsAssets(): DocsAssets {
  if (loaded) return loaded;
  const require = createRequire(import.meta.url);
  const packageJson = require.resolve('swagger-ui-dist/package.json');
  const { version: swaggerVersion } = require('swagger-ui-dist/package.json') as { version: string };
  const root = dirname(packageJson);
  const files = new Map<string, DocsAsset>();
  for (const [name, type] of Object.entries(PACKAGE_FILES)) files.set(name, asset(type, readFileSync(join(root, name))));
  files.set('docs-init.js', asset('text/javascript; charset=utf-8', Buffer.from(INIT_SCRIPT)));
  const hash = createHash('sha256');
  for (const [name, file] of files) hash.update(`${name}\0${file.etag}\0`);
  const version = `${swaggerVersion}-${hash.digest('hex').slice(0, 12)}`;
  loaded = { version, files, page: asset('text/html; charset=utf-8', Buffer.from(page(version))) };
  return loaded;
}
