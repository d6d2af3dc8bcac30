import Router from '@koa/router';
import type { Container } from '../../container.js';

/** Sign-in through OpenID Connect providers (docs/api.md#sign-in-with-a-provider): /v1/auth/oidc/*. */
export function oidcRoutes(c: Container): Router {
  void c;
  const router = new Router({ prefix: '/v1/auth/oidc' });
  return router;
}
