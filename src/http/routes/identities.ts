import Router from '@koa/router';
import type { Container } from '../../container.js';

/** The caller's provider identities (docs/api.md#linked-identities): /v1/me/identities*. */
export function identityRoutes(c: Container): Router {
  void c;
  const router = new Router({ prefix: '/v1/me/identities' });
  return router;
}
