import Router from '@koa/router';
import type { Context } from 'koa';
import { z } from 'zod';
import { AMR_VALUES } from '../../model/mfa.js';
import type { Container } from '../../container.js';
import { isRefreshShaped, TOKEN_KINDS, TokenIntrospection, type Introspection } from '../../core/tokens/introspection.js';
import { AppError } from '../../platform/errors.js';
import { oauthClient } from '../middleware/oauth-client.js';
import { formFields, oauthForm } from '../middleware/oauth-form.js';
import { ClientRateLimit } from '../middleware/oauth-rate-limit.js';
import { parseBody } from '../validate.js';

export { oauthErrorSchema } from '../middleware/oauth-errors.js';

// The client's own parameters (client_secret_post) ride in the same form; unknown ones are ignored.
const clientFields = {
  client_id: z.string().max(256).optional(),
  client_secret: z.string().max(512).optional(),
};

/** RFC 7662 §2.1 request. `token` is bounded by the body limit only: an oversized token is simply not active. */
export const introspectFormSchema = z.object({
  token: z.string().min(1),
  // A hint is only a hint (the kind is read off the token), and an unknown one is ignored: RFC 7662
  // says to search every kind when the hint does not find the token.
  token_type_hint: z.string().optional(),
  ...clientFields,
});

/** RFC 7009 §2.1 request. */
export const revokeFormSchema = z.object({
  token: z.string().min(1),
  // RFC 7009 §2.2.1: a hint of a kind authctl does not issue is unsupported_token_type.
  token_type_hint: z.string().optional(),
  ...clientFields,
});

/** RFC 7662 §2.2 response: `{active: false}` alone, or an active token's members. */
export const introspectionResponseSchema = z.object({
  active: z.boolean(),
  token_use: z.enum(TOKEN_KINDS).optional(),
  token_type: z.literal('Bearer').optional(),
  sub: z.string().optional(),
  sid: z.string().optional(),
  iss: z.string().optional(),
  aud: z.string().optional(),
  exp: z.number().int().optional(),
  iat: z.number().int().optional(),
  jti: z.string().optional(),
  region: z.string().optional(),
  username: z.string().optional(),
  email: z.string().optional(),
  email_verified: z.boolean().optional(),
  auth_time: z.number().int().optional(),
  amr: z.array(z.enum(AMR_VALUES)).optional(),
  acr: z.enum(['aal1', 'aal2']).optional(),
  idp: z.string().optional().meta({ description: 'The provider the session was signed in through (absent otherwise)' }),
});

function formOf(ctx: Context): Record<string, string> {
  return formFields(ctx.state.form as Map<string, string>);
}

/**
 * POST /oauth/introspect (RFC 7662) and POST /oauth/revoke (RFC 7009), for service clients
 * (README "Service clients, introspection and revocation"); errors in OAuth's format
 * (middleware/oauth-errors.ts, mounted by the app for the /oauth prefix).
 */
export function oauthRoutes(c: Container): Router {
  const router = new Router({ prefix: '/oauth' });
  const form = oauthForm(c.config.http.bodyLimit);
  const tokens = new TokenIntrospection({ auth: c.auth, sessions: c.sessions, issuer: c.config.tokens.issuer });
  const rateLimit = new ClientRateLimit({ perSecond: c.config.rateLimit.introspectPerClient, clock: c.clock, enabled: c.config.rateLimit.enabled });

  router.post('/introspect', form, oauthClient({ clients: c.clients, scope: 'introspect', required: true, rateLimit }), async function introspect(ctx) {
    const { token } = parseBody(introspectFormSchema, formOf(ctx));
    const answer: Introspection = await tokens.introspect(token);
    ctx.set('Cache-Control', 'no-store');
    ctx.body = answer;
  });

  router.post('/revoke', form, oauthClient({ clients: c.clients, scope: 'revoke', required: false }), async function revoke(ctx) {
    const { token, token_type_hint: hint } = parseBody(revokeFormSchema, formOf(ctx));
    if (hint !== undefined && !(TOKEN_KINDS as readonly string[]).includes(hint)) {
      throw new AppError('unsupported_token_type', 'token_type_hint must be access_token or refresh_token');
    }
    // RFC 7009 §2.1 lets a public client revoke its own tokens: a refresh token proves itself (its
    // MAC), so an app without credentials may end its session with it. An access token is only a
    // signature anyone who saw it can present; revoking with one takes a client with the `revoke`
    // scope ("no client authentication included" is invalid_client, RFC 6749 §5.2) — an app
    // ends its session with its access token at POST /v1/auth/logout instead.
    if (ctx.state.client === undefined && !isRefreshShaped(token)) {
      throw new AppError('invalid_client', 'client authentication is required to revoke anything but a refresh token');
    }
    await tokens.revoke(token);
    // RFC 7009 §2.2: 200 whether or not the token was valid, and no body.
    ctx.set('Cache-Control', 'no-store');
    ctx.status = 200;
    ctx.body = '';
    ctx.remove('Content-Type');
  });

  return router;
}
