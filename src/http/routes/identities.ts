import Router from '@koa/router';
import { validate as isUuid } from 'uuid';
import { z } from 'zod';
import type { Principal } from '../../core/auth/auth-service.js';
import type { Container } from '../../container.js';
import { AppError, invalidRequest } from '../../platform/errors.js';
import { requireBearer } from '../middleware/bearer.js';
import { jsonBody } from '../middleware/json-body.js';
import { requireRecentAuth } from '../middleware/recent-auth.js';
import { parseBody } from '../validate.js';

/** `GET /v1/me/identities/{provider}/authorize`'s query: where the provider dance ends, and the app's PKCE challenge. */
export const linkAuthorizeQuerySchema = z.strictObject({
  redirect_to: z.string().min(1).meta({ description: 'Where the browser comes back with `?code=` (on `identity.redirectUrls`)' }),
  code_challenge: z
    .string()
    .regex(/^[A-Za-z0-9_-]{43}$/, 'must be a base64url SHA-256 (43 characters)')
    .meta({ description: 'BASE64URL(SHA-256(codeVerifier)) of a verifier the app keeps (RFC 7636)' }),
  code_challenge_method: z.literal('S256').meta({ description: 'Only `S256`' }),
});

export const linkBodySchema = z
  .strictObject({
    code: z.string().min(1).max(2048).meta({ description: 'The `code` the browser came back with' }),
    codeVerifier: z
      .string()
      .regex(/^[A-Za-z0-9._~-]{43,128}$/, 'must be an RFC 7636 code verifier (43–128 characters)')
      .meta({ description: 'The verifier of the `code_challenge` the link started with' }),
  })
  .meta({ id: 'LinkCompletion', example: { code: 'oc_…', codeVerifier: 'dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk' } });

/**
 * The caller's provider identities (docs/api.md#linked-identities): /v1/me/identities*. Present
 * only with providers configured. Linking is started and finished by the signed-in user — the
 * start with a recent authentication — and finished with the app's PKCE verifier, so a link code
 * is useless to anyone else (docs/design-decisions.md: link CSRF).
 */
export function identityRoutes(c: Container): Router {
  const router = new Router({ prefix: '/v1/me/identities' });
  if (c.config.identity.providers.length === 0) return router;
  const body = jsonBody(c.config.http.bodyLimit);
  const bearer = requireBearer(c.auth);
  const recent = requireRecentAuth({ windowSeconds: c.config.identity.reauthWindow, clock: c.clock });
  const userOf = (state: Record<string, unknown>) => (state.principal as Principal).userId;

  router.get('/', bearer, async function listIdentities(ctx) {
    const identities = await c.identities.list(userOf(ctx.state));
    ctx.body = { identities: identities.map((i) => c.identities.view(i)) };
  });

  router.get('/:provider/authorize', bearer, recent, async function authorizeLink(ctx) {
    const provider = ctx.params.provider ?? '';
    if (!c.config.identity.providers.some((p) => p.id === provider)) throw new AppError('not_found', 'no such provider');
    const parsed = linkAuthorizeQuerySchema.safeParse(ctx.query);
    if (!parsed.success) {
      const errors = parsed.error.issues.map((issue) => ({ path: issue.path.join('.'), message: issue.message }));
      throw invalidRequest(errors, errors.length === 1 ? `${errors[0]!.path}: ${errors[0]!.message}` : 'the query has invalid parameters');
    }
    const url = await c.oidc.authorize({
      provider,
      redirectTo: parsed.data.redirect_to,
      codeChallenge: parsed.data.code_challenge,
      purpose: 'link',
      userId: userOf(ctx.state),
    });
    ctx.body = { url: url.toString() };
  });

  router.post('/', bearer, body, async function linkIdentity(ctx) {
    const { code, codeVerifier } = parseBody(linkBodySchema, ctx.state.body);
    const userId = userOf(ctx.state);
    const identity = await c.oidc.redeemLink(code, codeVerifier, userId);
    ctx.status = 201;
    ctx.body = c.identities.view(await c.identities.link(userId, identity));
  });

  router.delete('/:id', bearer, recent, async function unlinkIdentity(ctx) {
    const id = ctx.params.id ?? '';
    // By id only: a provider name here would remove every identity of that provider.
    if (!isUuid(id)) throw new AppError('not_found', 'no such identity');
    await c.identities.unlink(userOf(ctx.state), id.toLowerCase());
    ctx.status = 204;
  });

  return router;
}
