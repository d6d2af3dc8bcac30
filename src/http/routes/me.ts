import Router from '@koa/router';
import { validate as isUuid } from 'uuid';
import type { Principal } from '../../core/auth/auth-service.js';
import type { Container } from '../../container.js';
import { z } from 'zod';
import { AppError } from '../../platform/errors.js';
import { requireBearer } from '../middleware/bearer.js';
import { jsonBody } from '../middleware/json-body.js';
import { parseBody } from '../validate.js';
import { principalName } from './auth.js';

export const deleteAccountBodySchema = z.object({ currentPassword: z.string().min(1).max(1024) }).meta({ id: 'AccountDeletion' });

/** Bearer-authenticated routes of the caller's own account: /v1/me, /v1/sessions, /v1/verify. */
export function meRoutes(c: Container): Router {
  const router = new Router({ prefix: '/v1' });
  const bearer = requireBearer(c.auth);

  router.get('/me', bearer, async function me(ctx) {
    const principal = ctx.state.principal as Principal;
    const user = c.auth.me(principal);
    ctx.body = { user: user instanceof Promise ? await user : user };
  });

  router.delete('/me', bearer, jsonBody(c.config.http.bodyLimit), async function deleteAccount(ctx) {
    const { currentPassword } = parseBody(deleteAccountBodySchema, ctx.state.body);
    const principal = ctx.state.principal as Principal;
    // The password check runs under the login limits: a stolen access token is no way to guess it.
    await c.throttle.guard(principalName(principal), ctx.ip, () => c.auth.deleteAccount(principal, currentPassword));
    ctx.status = 204;
  });

  router.get('/sessions', bearer, async function listSessions(ctx) {
    ctx.body = { sessions: await c.auth.listSessions(ctx.state.principal as Principal) };
  });

  router.delete('/sessions/:id', bearer, async function revokeSession(ctx) {
    const id = ctx.params.id ?? '';
    if (!isUuid(id)) throw new AppError('not_found', 'no such session');
    await c.auth.revokeOwnSession(ctx.state.principal as Principal, id.toLowerCase());
    ctx.status = 204;
  });

  // For gateways (nginx auth_request, Traefik ForwardAuth, Envoy ext_authz): identity in headers.
  router.get('/verify', bearer, function verify(ctx) {
    const principal = ctx.state.principal as Principal;
    ctx.set('X-Auth-User-Id', principal.userId);
    ctx.set('X-Auth-Session-Id', principal.sessionId);
    if (principal.username !== null) ctx.set('X-Auth-Username', principal.username);
    const { email, email_verified: emailVerified } = principal.claims;
    if (email !== undefined) {
      ctx.set('X-Auth-Email', email);
      ctx.set('X-Auth-Email-Verified', String(emailVerified === true));
    }
    ctx.body = {
      userId: principal.userId,
      sessionId: principal.sessionId,
      username: principal.username,
      ...(email !== undefined ? { email, emailVerified: emailVerified === true } : {}),
    };
  });

  return router;
}
