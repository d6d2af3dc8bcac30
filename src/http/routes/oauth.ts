import Router from '@koa/router';
import type { Container } from '../../container.js';

/** POST /oauth/introspect (RFC 7662) and POST /oauth/revoke (RFC 7009), with OAuth's error format. */
export function oauthRoutes(_c: Container): Router {
  return new Router();
}
