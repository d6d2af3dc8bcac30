import Router from '@koa/router';
import type { Context } from 'koa';
import { z } from 'zod';
import type { Container } from '../../container.js';
import { AppError } from '../../platform/errors.js';
import { jsonBody } from '../middleware/json-body.js';
import { parseBody } from '../validate.js';
import { clientMeta } from './auth.js';

const providerParam = z.string().meta({ description: 'The id of a provider in `identity.providers` (`google`)', example: 'google' });
export const oidcProviderParamsSchema = z.object({ provider: providerParam });

export const oidcAuthorizeQuerySchema = z.object({
  redirect_to: z.string().meta({
    description: 'Where the browser comes back to with `code` (or `error`): one of `identity.redirectUrls`, in its exact spelling',
    example: 'https://app.example.com/auth/done',
  }),
  code_challenge: z
    .string()
    .meta({ description: "The app's PKCE challenge: base64url(SHA-256(verifier)), 43 characters", example: 'E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM' }),
  code_challenge_method: z.literal('S256').optional().meta({ description: '`S256`, the only method (absent means `S256`)' }),
});

export const oidcCallbackQuerySchema = z.looseObject({
  state: z.string().optional().meta({ description: 'The sealed state authctl sent the provider' }),
  code: z.string().optional().meta({ description: "The provider's authorization code" }),
  iss: z.string().optional().meta({ description: "The provider's issuer (RFC 9207)" }),
  error: z.string().optional().meta({ description: "The provider's error (`access_denied`…)" }),
  error_description: z.string().optional(),
});

export const oidcTokenBodySchema = z
  .strictObject({
    code: z.string().min(1).max(4096).meta({ description: 'The one-time code `redirect_to` received (`oc_…`, 60 s, single-use)' }),
    codeVerifier: z.string().min(43).max(128).meta({ description: 'The PKCE verifier whose S256 challenge the sign-in started with' }),
  })
  .meta({ id: 'OidcTokenRequest', example: { code: 'oc_…', codeVerifier: 'dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk' } });

export const oidcIdTokenBodySchema = z
  .strictObject({
    idToken: z.string().min(1).max(16_384).meta({ description: 'The ID token the provider gave the app (a JWS)' }),
    nonce: z.string().min(1).max(512).meta({ description: 'The nonce the app asked the provider for: the token carries it, or its SHA-256 in hex' }),
  })
  .meta({ id: 'OidcIdTokenRequest', example: { idToken: 'eyJhbGciOiJSUzI1NiIs…', nonce: 'n-0S6_WzA2Mj' } });

/** One query parameter as a string: a repeated one is refused (which of the two would count?). */
function single(ctx: Context, name: string): string | undefined {
  const value = ctx.query[name];
  if (Array.isArray(value)) throw new AppError('invalid_request', `${name} may be given once`, { errors: [{ path: name, message: 'given more than once' }] });
  return value;
}

/** A 302 to `url` with no body (Koa's redirect writes an HTML one, which no client reads). */
function redirect(ctx: Context, url: URL): void {
  ctx.status = 302;
  ctx.set('Location', url.href);
  ctx.body = '';
}

/**
 * Sign-in through OpenID Connect providers (docs/api.md#sign-in-with-a-provider): /v1/auth/oidc/*.
 * The two browser legs answer redirects (302) — to the provider, then back to the app — and
 * problems only where the app's `redirect_to` is not trusted yet (src/core/oidc/oidc-flows.ts).
 */
export function oidcRoutes(c: Container): Router {
  const router = new Router({ prefix: '/v1/auth/oidc' });
  const json = jsonBody(c.config.http.bodyLimit);

  router.post('/token', json, async function exchangeProviderCode(ctx) {
    const { code, codeVerifier } = parseBody(oidcTokenBodySchema, ctx.state.body);
    ctx.body = await c.oidc.exchange(code, codeVerifier, clientMeta(ctx));
  });

  router.get('/:provider/authorize', async function authorizeWithProvider(ctx) {
    if (!c.oidc.providers().some((p) => p.id === ctx.params.provider)) throw new AppError('not_found', 'no such provider is configured (identity.providers)');
    const method = single(ctx, 'code_challenge_method');
    if (method !== undefined && method !== 'S256') {
      throw new AppError('invalid_request', 'code_challenge_method must be S256', { errors: [{ path: 'code_challenge_method', message: 'only S256' }] });
    }
    // A redirect_to not allowed, then the challenge (400): authorize checks them in this order.
    const url = await c.oidc.authorize({
      provider: ctx.params.provider!,
      redirectTo: single(ctx, 'redirect_to') ?? '',
      codeChallenge: single(ctx, 'code_challenge') ?? '',
      purpose: 'login',
    });
    redirect(ctx, url);
  });

  router.get('/:provider/callback', async function providerCallback(ctx) {
    const url = await c.oidc.callback(ctx.params.provider!, new URLSearchParams(ctx.querystring));
    redirect(ctx, url);
  });

  router.post('/:provider/id-token', json, async function signInWithIdToken(ctx) {
    const { idToken, nonce } = parseBody(oidcIdTokenBodySchema, ctx.state.body);
    ctx.body = await c.oidc.signInWithIdToken(ctx.params.provider!, idToken, nonce, clientMeta(ctx));
  });

  return router;
}
