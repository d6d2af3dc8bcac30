import Router from '@koa/router';
import type { Context } from 'koa';
import { z } from 'zod';
import type { Principal } from '../../core/auth/auth-service.js';
import type { Container } from '../../container.js';
import { RelayedResponse } from '../../core/replication/refresh-proxy.js';
import type { UserRecord } from '../../model/user.js';
import { requireBearer } from '../middleware/bearer.js';
import { requireRecentAuth } from '../middleware/recent-auth.js';
import { jsonBody } from '../middleware/json-body.js';
import { parseBody } from '../validate.js';
import { invalidRequest } from '../../platform/errors.js';
import { foldUsername } from '../../core/users/username.js';
import { assertSingleScript } from '../../security/confusables.js';

// Field sizes are bounded here (400 invalid_request); the password policy proper (8–256 code
// points, blocklist) answers 400 weak_password from the core.
export const usernameField = z.string().min(1).max(256).meta({ description: 'NFKC-normalized and case-folded; 3–64 characters after that', example: 'alice' });
export const emailField = z.string().min(1).max(320).meta({ description: 'Compared case-insensitively after normalization', example: 'alice@example.com' });
const passwordField = z
  .string()
  .min(1)
  .max(1024)
  .meta({ description: '8–256 code points, not common, not the username', example: 'correct horse battery staple' });
const refreshTokenField = z.string().min(1).max(512).meta({ description: 'rt_<region>_<sessionId>_<counter>_<mac>' });

/** Sign-up's body: the identifiers `identity.*` requires are required fields. */
export function registrationSchema(identity: Container['config']['identity']) {
  const email = identity.email === 'off' ? emailField.meta({ description: 'Refused while identity.email is "off"' }) : emailField;
  return z
    .object({
      username: identity.username === 'required' ? usernameField : usernameField.optional(),
      email: identity.email === 'required' ? email : email.optional(),
      password: passwordField,
    })
    .meta({ id: 'Registration', example: { username: 'alice', password: 'correct horse battery staple' } });
}
/** Login by username or by address: exactly one of the two (checked in the route). */
export const loginBodySchema = z
  .object({
    username: usernameField.optional(),
    email: emailField.optional(),
    password: passwordField,
  })
  .meta({
    id: 'Credentials',
    description: 'Exactly one of `username` and `email`, and the password',
    example: { username: 'alice', password: 'correct horse battery staple' },
  });
export const refreshBodySchema = z.object({ refreshToken: refreshTokenField }).meta({ id: 'RefreshRequest' });
export const logoutBodySchema = z
  .object({ refreshToken: refreshTokenField.optional().meta({ description: "Also revoke this token's session (a live session of the same user)" }) })
  .optional();
export const passwordChangeBodySchema = z
  .object({
    currentPassword: passwordField.meta({ description: 'The password now' }),
    newPassword: passwordField.meta({ description: 'The password from now on (the policy applies)' }),
  })
  .meta({ id: 'PasswordChange' });

/**
 * The name login failures are counted under: the username, or `email:` and the lower-cased
 * address (usernames may contain "@", so the prefix keeps the two apart).
 */
export function throttleName(identifier: { username?: string | undefined; email?: string | undefined }): string {
  return identifier.email !== undefined ? `email:${identifier.email.trim().toLowerCase()}` : identifier.username!;
}

/** The throttle name of a signed-in caller, as it logs in. */
export function principalName(principal: Principal): string {
  return principal.username ?? throttleName({ email: principal.claims.email ?? principal.userId });
}

/** {@link principalName} of a user not signed in yet (between a login's two steps). */
export function userThrottleName(user: Pick<UserRecord, 'id' | 'username' | 'email'>): string {
  return user.username ?? throttleName({ email: user.email ?? user.id });
}

export function clientMeta(ctx: Context) {
  return { userAgent: ctx.get('user-agent') || undefined, ip: ctx.ip || undefined };
}

/** POST /v1/auth/*: register, login, refresh, logout, logout-all, password. */
export function authRoutes(c: Container): Router {
  const router = new Router({ prefix: '/v1/auth' });
  const body = jsonBody(c.config.http.bodyLimit);
  const bearer = requireBearer(c.auth);
  const recentAuth = requireRecentAuth({ windowSeconds: c.config.identity.reauthWindow, clock: c.clock });
  const registration = registrationSchema(c.config.identity);

  router.post('/register', body, async function register(ctx) {
    const input = parseBody(registration, ctx.state.body);
    if (input.username === undefined && input.email === undefined) {
      throw invalidRequest([{ path: 'username', message: 'a username or an email is required' }], 'a username or an email is required');
    }
    await c.throttle.guardRegistration(ctx.ip);
    if (input.username !== undefined) assertSingleScript(foldUsername(input.username));
    ctx.status = 201;
    ctx.body = { user: await c.auth.register(input) };
  });

  router.post('/login', body, async function login(ctx) {
    const input = parseBody(loginBodySchema, ctx.state.body);
    if ((input.username === undefined) === (input.email === undefined)) {
      const message = input.username === undefined ? 'a username or an email is required' : 'send a username or an email, not both';
      throw invalidRequest([{ path: input.username === undefined ? 'username' : 'email', message }], message);
    }
    const identifier = input.email !== undefined ? { email: input.email } : { username: input.username! };
    ctx.body = await c.throttle.guard(throttleName(identifier), ctx.ip, () => c.auth.login(identifier, input.password, clientMeta(ctx)));
  });

  router.post('/refresh', body, async function refresh(ctx) {
    const { refreshToken } = parseBody(refreshBodySchema, ctx.state.body);
    const answer = await c.auth.refresh(refreshToken, ctx.state.requestId as string | undefined);
    if (answer instanceof RelayedResponse) {
      // The home region's own answer to a session homed there, passed on as it is.
      ctx.status = answer.status;
      ctx.type = answer.status >= 400 ? 'application/problem+json' : 'application/json';
      ctx.body = answer.body;
      return;
    }
    ctx.body = answer;
  });

  router.post('/logout', bearer, body, async function logout(ctx) {
    const parsed = parseBody(logoutBodySchema, ctx.state.body);
    await c.auth.logout(ctx.state.principal as Principal, parsed?.refreshToken);
    ctx.status = 204;
  });

  router.post('/logout-all', bearer, body, async function logoutAll(ctx) {
    await c.auth.logoutAll(ctx.state.principal as Principal);
    ctx.status = 204;
  });

  // Step-up: a stolen access token alone must not be enough to take the account over.
  router.post('/password', bearer, recentAuth, body, async function changePassword(ctx) {
    const { currentPassword, newPassword } = parseBody(passwordChangeBodySchema, ctx.state.body);
    const principal = ctx.state.principal as Principal;
    // A stolen access token must not become a way to guess the password without limits.
    await c.throttle.guard(principalName(principal), ctx.ip, () => c.auth.changePassword(principal, currentPassword, newPassword));
    ctx.status = 204;
  });

  return router;
}
