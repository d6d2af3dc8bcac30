import Router from '@koa/router';
import type { Context } from 'koa';
import type { Container } from '../../container.js';
import { AppError } from '../../platform/errors.js';
import { DOCS_CSP, docsAssets, type DocsAsset } from '../docs-page.js';

/** A client that takes gzip (and has not refused it with `q=0`). */
function acceptsGzip(ctx: Context): boolean {
  return /(^|,)\s*gzip\s*(;\s*q=(?!0(\.0*)?\s*(,|$))[0-9.]+\s*)?(,|$)/i.test(ctx.get('accept-encoding'));
}

/** Sends one static file: its ETag, a 304 when the client has it, gzip when it takes it. */
function send(ctx: Context, file: DocsAsset, cacheControl: string): void {
  const gzip = file.gzip && acceptsGzip(ctx);
  ctx.set('Cache-Control', cacheControl);
  if (file.gzip) ctx.vary('Accept-Encoding');
  ctx.set('ETag', gzip ? file.gzipEtag! : file.etag);
  ctx.type = file.type;
  ctx.status = 200; // ctx.fresh compares validators only on a 2xx
  if (ctx.fresh) {
    ctx.status = 304;
    return;
  }
  if (gzip) ctx.set('Content-Encoding', 'gzip');
  ctx.body = gzip ? file.gzip : file.body;
}

/**
 * GET /docs: the interactive API reference, its assets served from this server (`http.docs`).
 * Off, the routes do not exist (404 like any unknown path).
 */
export function docsRoutes(c: Container): Router {
  const router = new Router({ strict: true });
  if (!c.config.http.docs) return router;

  router.get('/docs', function docsPage(ctx) {
    const { page } = docsAssets();
    // The page names its assets by content hash: revalidating it (no-cache) is what picks up a new version.
    send(ctx, page, 'no-cache');
    ctx.set('Content-Security-Policy', DOCS_CSP);
  });

  // The page's relative URLs resolve from `/docs`; from `/docs/` they would miss. Relative, so a
  // proxy's path prefix is kept.
  router.get('/docs/', function docsSlash(ctx) {
    ctx.status = 301;
    ctx.redirect('../docs');
  });

  router.get('/docs/assets/:version/:file', function docsAsset(ctx) {
    const assets = docsAssets();
    // Only the listed files of the current version: the name is a map key, never part of a path.
    const file = ctx.params.version === assets.version ? assets.files.get(ctx.params.file ?? '') : undefined;
    if (!file) throw new AppError('not_found', 'no such resource');
    send(ctx, file, 'public, max-age=31536000, immutable');
  });

  return router;
}
