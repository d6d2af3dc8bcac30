import Router from '@koa/router';
import type { Container } from '../../container.js';

type Check = 'ok' | 'down' | 'loading' | 'stale';

/** Process and dependency health, the JWKS and Prometheus metrics (no /v1 prefix). */
export function systemRoutes(c: Container): Router {
  const router = new Router();

  router.get('/.well-known/jwks.json', function jwks(ctx) {
    // Verifiers may cache for a few minutes: rotation publishes keys before they sign.
    ctx.set('Cache-Control', 'public, max-age=300');
    ctx.body = c.keys.jwks();
  });

  router.get('/healthz', function healthz(ctx) {
    ctx.body = { status: 'ok' };
  });

  router.get('/readyz', async function readyz(ctx) {
    const checks: Record<string, Check> = {
      database: await c.db.ping().then(
        () => 'ok' as const,
        () => 'down' as const,
      ),
      signingKeys: c.keys.ready ? 'ok' : 'loading',
      revocationFeed: !c.revocations.ready ? 'loading' : c.revocations.healthy ? 'ok' : 'stale',
    };
    const failing = Object.entries(checks).filter(([, state]) => state !== 'ok').map(([name]) => name);
    ctx.status = failing.length === 0 ? 200 : 503;
    ctx.set('Cache-Control', 'no-store');
    ctx.body = { status: failing.length === 0 ? 'ok' : 'unavailable', checks, ...(failing.length ? { failing } : {}) };
  });

  router.get('/metrics', async function metrics(ctx) {
    ctx.type = c.metrics.contentType;
    ctx.body = await c.metrics.metrics();
  });

  return router;
}
