import Router from '@koa/router';
import type { Container } from '../../container.js';
import { openApiDocument } from '../openapi.js';

type Check = 'ok' | 'down' | 'loading' | 'stale' | 'degraded' | 'unsealable';

/** Process and dependency health, the JWKS, the OpenAPI document and Prometheus metrics (no /v1 prefix). */
export function systemRoutes(c: Container): Router {
  const router = new Router();

  router.get('/.well-known/jwks.json', function jwks(ctx) {
    // Verifiers may cache for a few minutes: rotation publishes keys before they sign.
    ctx.set('Cache-Control', 'public, max-age=300');
    ctx.body = c.keys.jwks();
  });

  // Built on first request (a few ms of schema rendering), then the same bytes every time.
  let document: string | undefined;
  router.get('/openapi.json', function openapi(ctx) {
    ctx.set('Cache-Control', 'public, max-age=300');
    ctx.type = 'application/json';
    ctx.body = document ??= JSON.stringify(openApiDocument(c.config));
  });

  router.get('/healthz', function healthz(ctx) {
    ctx.body = { status: 'ok' };
  });

  router.get('/readyz', async function readyz(ctx) {
    const [database, reader] = await Promise.all([
      c.db.ping().then(
        () => 'ok' as const,
        () => 'down' as const,
      ),
      c.db.readerHealth(),
    ]);
    const checks: Record<string, Check> = {
      database,
      signingKeys: c.keys.signingHealth(),
      revocationFeed: !c.revocations.ready ? 'loading' : c.revocations.healthy ? 'ok' : 'stale',
    };
    const failing = Object.entries(checks)
      .filter(([, state]) => state !== 'ok')
      .map(([name]) => name);
    // The cache and the read replica are reported but never fail readiness: without them the
    // region runs on the writer.
    checks.cache = c.cache.health() === 'ok' ? 'ok' : 'degraded';
    if (reader) checks['database-reader'] = reader;
    ctx.status = failing.length === 0 ? 200 : 503;
    ctx.set('Cache-Control', 'no-store');
    const status = failing.length > 0 ? 'unavailable' : checks.cache === 'ok' && reader !== 'degraded' ? 'ok' : 'degraded';
    // Why, when it is the configuration and not a dependency: a wrong server secret (never shown).
    const details = checks.signingKeys === 'unsealable' ? { details: { signingKeys: c.keys.unsealableDetail() } } : {};
    ctx.body = { status, checks, ...(failing.length ? { failing } : {}), ...details };
  });

  if (c.config.http.benchRoutes) {
    const baseline = {
      user: { id: '01a1fe87-ad04-7698-8650-85bba5447c48', username: 'baseline', homeRegion: c.config.region, createdAt: new Date(0).toISOString() },
    };
    router.get('/bench/baseline', function benchBaseline(ctx) {
      ctx.set('Cache-Control', 'no-store');
      ctx.body = baseline;
    });
  }

  if (c.config.http.metricsPort === undefined) {
    router.get('/metrics', async function metrics(ctx) {
      ctx.type = c.metrics.registry.contentType;
      ctx.body = await c.metrics.render();
    });
  }

  return router;
}
