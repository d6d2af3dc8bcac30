import { oidcAuthorizeQuerySchema, oidcCallbackQuerySchema, oidcIdTokenBodySchema, oidcProviderParamsSchema, oidcTokenBodySchema } from '../routes/oidc.js';
import { signInResultSchema } from '../schemas.js';
import type { OperationSpec } from './spec.js';

const redirect = (description: string) => ({ description, headers: { Location: { description, required: true } } });

/** The OpenAPI operations of sign-in through providers: /v1/auth/oidc/*. */
export function oidcOperations(): OperationSpec[] {
  return [
    {
      method: 'get',
      path: '/v1/auth/oidc/{provider}/authorize',
      operationId: 'authorizeWithProvider',
      tag: 'Providers',
      summary: 'Start a provider sign-in (the browser goes here)',
      description:
        "Redirects the browser to the provider with authctl's own sealed `state`, `nonce` and PKCE (S256). " +
        '`redirect_to` must be one of `identity.redirectUrls` (an exact URL, or an origin and path prefix written with ' +
        'a trailing `*`), spelt as a URL parser writes it: anything else is `400 redirect_not_allowed`, never a ' +
        'redirect. The app keeps the verifier of `code_challenge`: it redeems the one-time code with it.',
      auth: 'none',
      params: oidcProviderParamsSchema,
      query: oidcAuthorizeQuerySchema,
      responses: { 302: redirect("To the provider's authorization endpoint") },
      errors: ['not_found', 'redirect_not_allowed', 'invalid_request', 'provider_error', 'provider_unavailable', 'bad_config'],
    },
    {
      method: 'get',
      path: '/v1/auth/oidc/{provider}/callback',
      operationId: 'providerCallback',
      tag: 'Providers',
      summary: "The provider's redirect back (register it at the provider)",
      description:
        'Opens and spends the sealed `state` (any region can: it is sealed under the server secret), exchanges the ' +
        "code, checks the ID token (signature from the provider's JWKS, `iss`, `aud`, `exp`, nonce), finds, links or " +
        'creates the user, and redirects to `redirect_to?code=<one-time code>`. ' +
        'A state that is missing, forged, tampered with, expired, used or of another provider is a `400 ' +
        'invalid_oidc_state` problem (no redirect: `redirect_to` is not trusted until the state opens). ' +
        'Once it has opened, every failure is a redirect to `redirect_to?error=<code>&error_description=<detail>`: the ' +
        "provider's own error (`access_denied`…), `invalid_id_token`, `provider_error`, `provider_unavailable`, " +
        '`identity_not_linked`, `account_disabled`; no account is created or changed.',
      auth: 'none',
      params: oidcProviderParamsSchema,
      query: oidcCallbackQuerySchema,
      responses: { 302: redirect("To the app's `redirect_to`, with `code` or with `error` and `error_description`") },
      errors: ['not_found', 'invalid_oidc_state'],
    },
    {
      method: 'post',
      path: '/v1/auth/oidc/token',
      operationId: 'exchangeProviderCode',
      tag: 'Providers',
      summary: 'Redeem the one-time code for tokens',
      description:
        'The code lives 60 s and is single-use; `codeVerifier` must be the verifier of the `code_challenge` the sign-in ' +
        'started with. The answer is the usual `TokenResponse` (`amr: ["fed"]`, `idp`), or the second step to take when ' +
        'the user has a second factor, as after a password.',
      auth: 'none',
      body: { schema: oidcTokenBodySchema, required: true },
      responses: { 200: { description: 'Logged in, or the second step to take (`mfaRequired`)', schema: signInResultSchema } },
      errors: ['invalid_oidc_code', 'account_disabled', 'wrong_region', 'unavailable'],
    },
    {
      method: 'post',
      path: '/v1/auth/oidc/{provider}/id-token',
      operationId: 'signInWithIdToken',
      tag: 'Providers',
      summary: 'Sign in with an ID token a native app got from the provider',
      description:
        'For mobile apps whose provider SDK hands them an ID token (Google Sign-In). The token must be signed by a key ' +
        "of the provider's JWKS, issued by its issuer, for its `clientId` (`aud`; `azp` when there are several " +
        'audiences), unexpired (30 s of skew), and carry `nonce` — the nonce itself or its SHA-256 in hex. An ID token ' +
        'is single-use.',
      auth: 'none',
      params: oidcProviderParamsSchema,
      body: { schema: oidcIdTokenBodySchema, required: true },
      responses: { 200: { description: 'Logged in, or the second step to take (`mfaRequired`)', schema: signInResultSchema } },
      errors: [
        'not_found',
        'invalid_id_token',
        'identity_not_linked',
        'account_disabled',
        'wrong_region',
        'provider_error',
        'provider_unavailable',
        'unavailable',
      ],
    },
  ];
}
