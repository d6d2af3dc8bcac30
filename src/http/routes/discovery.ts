import Router from '@koa/router';
import type { Middleware } from 'koa';
import { z } from 'zod';
import type { Container } from '../../container.js';

/**
 * The metadata document both discovery routes serve (RFC 8414 §2, OpenID Connect Discovery 1.0
 * §3). Only what this server really does is published:
 *
 * - There is no authorization endpoint and no token endpoint (login and refresh are authctl's own
 *   JSON routes under /v1/auth), so `authorization_endpoint` and `token_endpoint` are absent and
 *   `response_types_supported` and `grant_types_supported` are empty arrays. Both members are
 *   REQUIRED (or, for grant types, default to `["authorization_code", "implicit"]` when omitted),
 *   so leaving them out would claim flows that do not exist; an empty array says "none". Keycloak
 *   and Ory Hydra publish `code` and friends because they serve an authorization endpoint; a
 *   client that reads "code" here would send users to a page that is not there. openid-client's
 *   `discovery()` (v6) checks only `issuer`, so it accepts the empty lists.
 * - `id_token_signing_alg_values_supported` is REQUIRED by OIDC Discovery; no ID tokens are issued
 *   yet, and it names the one algorithm the region's keys sign with (`tokens.alg`), the same as
 *   access tokens' (`access_token_signing_alg_values_supported`, the name a few providers use for
 *   RFC 9068 tokens). OIDC asks for RS256 in that list; authctl has no RSA keys, and says so.
 * - `scopes_supported` is empty: access tokens carry no scope, and the service-client scopes
 *   (`introspect`, `revoke`) are granted by an admin, never requested in an OAuth flow.
 * - `subject_types_supported` is `["public"]`: `sub` is the user id, the same for every client.
 */
export const discoverySchema = z.object({
  issuer: z.string(),
  jwks_uri: z.string(),
  introspection_endpoint: z.string(),
  introspection_endpoint_auth_methods_supported: z.array(z.enum(['client_secret_basic', 'client_secret_post'])),
  revocation_endpoint: z.string(),
  revocation_endpoint_auth_methods_supported: z.array(z.enum(['client_secret_basic', 'client_secret_post', 'none'])),
  response_types_supported: z.array(z.string()),
  grant_types_supported: z.array(z.string()),
  subject_types_supported: z.array(z.literal('public')),
  id_token_signing_alg_values_supported: z.array(z.enum(['EdDSA', 'ES256'])),
  access_token_signing_alg_values_supported: z.array(z.enum(['EdDSA', 'ES256'])),
  scopes_supported: z.array(z.string()),
  claims_supported: z.array(z.string()),
  service_documentation: z.string().optional(),
});

export type DiscoveryDocument = z.infer<typeof discoverySchema>;

/** Every claim an access token can carry (docs/api.md#access-tokens). */
const CLAIMS = ['iss', 'sub', 'aud', 'exp', 'iat', 'jti', 'sid', 'region', 'preferred_username', 'email', 'email_verified', 'auth_time', 'amr', 'acr', 'idp'];

/**
 * The document of this region: its own `issuer` (`tokens.issuer`), and URLs under `publicUrl`
 * (else the issuer), as the mail links are built. The JWKS it names is the region's, which lists
 * every region's keys once they have replicated.
 */
export function discoveryDocument(config: Container['config']): DiscoveryDocument {
  const base = (config.publicUrl ?? config.tokens.issuer).replace(/\/+$/, '');
  const alg = config.tokens.alg;
  return {
    issuer: config.tokens.issuer,
    jwks_uri: `${base}/.well-known/jwks.json`,
    introspection_endpoint: `${base}/oauth/introspect`,
    introspection_endpoint_auth_methods_supported: ['client_secret_basic', 'client_secret_post'],
    revocation_endpoint: `${base}/oauth/revoke`,
    // "none": a refresh token is its own proof, so an app without credentials may revoke it.
    revocation_endpoint_auth_methods_supported: ['client_secret_basic', 'client_secret_post', 'none'],
    response_types_supported: [],
    grant_types_supported: [],
    subject_types_supported: ['public'],
    id_token_signing_alg_values_supported: [alg],
    access_token_signing_alg_values_supported: [alg],
    scopes_supported: [],
    claims_supported: CLAIMS,
    // Only where the page exists (`http.docs`): a link that 404s documents nothing.
    ...(config.http.docs ? { service_documentation: `${base}/docs` } : {}),
  };
}

/** /.well-known/openid-configuration and /.well-known/oauth-authorization-server (RFC 8414). */
export function discoveryRoutes(c: Container): Router {
  const router = new Router();
  const document = discoveryDocument(c.config);
  const serve: Middleware = function discovery(ctx) {
    // Like the JWKS: the document changes only with the configuration.
    ctx.set('Cache-Control', 'public, max-age=300');
    ctx.body = document;
  };
  router.get('/.well-known/openid-configuration', serve);
  router.get('/.well-known/oauth-authorization-server', serve);
  return router;
}
