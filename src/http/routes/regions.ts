import Router from '@koa/router';
import getRawBody from 'raw-body';
import type { Container } from '../../container.js';
import { AppError } from '../../platform/errors.js';

/** GET /v1/regions (where to go) and POST /internal/replication (peers only, HMAC-signed). */
export function regionRoutes(c: Container): Router {
  const router = new Router();

  router.get('/v1/regions', function listRegions(ctx) {
    ctx.body = { region: c.config.region, regions: c.replication.peers.regions() };
  });

  router.post('/internal/replication', async function replicate(ctx) {
    if (!ctx.is('application/json')) throw new AppError('unsupported_media_type', 'replication batches are JSON');
    c.replication.peers.admit(ctx.headers);
    let body: Buffer;
    try {
      // Raw bytes: the signature covers exactly what was sent.
      body = await getRawBody(ctx.req, { limit: c.replication.inbound.bodyLimit, length: ctx.request.length });
    } catch (err) {
      if ((err as { type?: string }).type === 'entity.too.large') throw new AppError('payload_too_large', 'the replication batch is too large', { cause: err });
      throw new AppError('invalid_request', 'the request body could not be read', { cause: err });
    }
    const result = await c.replication.inbound.receive(ctx.headers, body);
    ctx.set('Cache-Control', 'no-store');
    ctx.body = { applied: result.applied, duplicate: result.duplicate };
  });

  return router;
}
