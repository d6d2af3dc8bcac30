import Router from '@koa/router';
import type { Container } from '../../container.js';

/** /.well-known/openid-configuration and /.well-known/oauth-authorization-server (RFC 8414). */
export function discoveryRoutes(_c: Container): Router {
  return new Router();
}
