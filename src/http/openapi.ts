import { readFileSync } from 'node:fs';
import { z } from 'zod';
import { createDocument, type ZodOpenApiOperationObject, type ZodOpenApiPathsObject, type ZodOpenApiResponseObject } from 'zod-openapi';
import type { Config } from '../config/schema.js';
import { ERROR_CATALOG, type ErrorCode } from '../platform/errors.js';
import { loginBodySchema, logoutBodySchema, passwordChangeBodySchema, refreshBodySchema, registrationSchema } from './routes/auth.js';
import { anonymousSendSchema, changeEmailBodySchema, emailProofSchema, forgotBodySchema, linkQuerySchema, resetBodySchema } from './routes/email.js';
import { deleteAccountBodySchema } from './routes/me.js';
import { discoverySchema } from './routes/discovery.js';
import { introspectFormSchema, introspectionResponseSchema, revokeFormSchema } from './routes/oauth.js';
import { oauthErrorSchema, type OAuthErrorCode } from './middleware/oauth-errors.js';
import { factorOperations } from './operations/mfa-factors.js';
import { identityOperations } from './operations/identities.js';
import { oidcOperations } from './operations/oidc.js';
import type { OperationSpec, Success, Tag } from './operations/spec.js';
import { otpOperations } from './operations/otp.js';
import { passkeyOperations } from './operations/passkeys.js';
import { twoStepOperations } from './operations/two-step.js';
import {
  acceptedSchema,
  healthSchema,
  jwksSchema,
  problemOf,
  problemSchema,
  readinessSchema,
  regionsSchema,
  replicationResultSchema,
  sessionListSchema,
  signInResultSchema,
  tokenResponseSchema,
  userEnvelopeSchema,
  verifyResultSchema,
} from './schemas.js';

/**
 * `GET /openapi.json`: the OpenAPI 3.1 document of this server, generated from the zod schemas
 * the routes validate requests with (src/http/routes/*) and the response schemas the tests hold
 * every response to (src/http/schemas.ts). The catalog below adds what a schema cannot say: the
 * path, the summary, who may call, and the error codes of each operation — rendered as one RFC 9457
 * problem schema per status whose `code` is exactly those codes. test/http/openapi.test.ts fails
 * when a route of the router is missing here.
 */

const TAGS: { name: Tag; description: string }[] = [
  { name: 'Auth', description: 'Sign-up, login, refresh, logout and password change.' },
  { name: 'E-mail', description: 'Verification, password reset and address change (with `identity.email` on; else 404).' },
  { name: 'Providers', description: 'Sign in with Google and other OpenID Connect providers, and the identities linked to an account.' },
  { name: 'MFA', description: 'E-mailed sign-in codes, TOTP factors with recovery codes, the two-step login and step-up.' },
  {
    name: 'Passkeys',
    description:
      'WebAuthn passkeys: registration, sign-in with or without a username, and the second step of a login (with `identity.webauthn.enabled`; else 404).',
  },
  { name: 'Account', description: "The caller's own account and sessions (Bearer)." },
  { name: 'Discovery', description: 'Keys, metadata and this document, for resource servers and client generators.' },
  {
    name: 'Services',
    description:
      'For back-end services with a client id and secret (`authctl client create`): RFC 7662 introspection and RFC 7009 revocation. ' +
      'Form-encoded; errors in OAuth\'s format (`{"error", "error_description"}`), not RFC 9457.',
  },
  { name: 'System', description: 'Health, readiness and metrics for operators.' },
  { name: 'Regions', description: 'Multi-region: where to go, and the peers-only replication endpoint.' },
];

const pageResponse = (description: string): Success => ({ description, type: 'text/html' });

const serverMetadataSchema = discoverySchema.meta({ id: 'ServerMetadata' });

/** A 200 that verifiers may cache for five minutes (keys and metadata). */
function cachedFor300s(schema: z.ZodType): Record<number, Success> {
  return { 200: { description: 'Cached for 300 s', schema, headers: { 'Cache-Control': { description: '`public, max-age=300`', required: true } } } };
}

/** Every operation of the HTTP API. */
function operations(config: Config): OperationSpec[] {
  return [
    {
      method: 'post',
      path: '/v1/auth/register',
      operationId: 'register',
      tag: 'Auth',
      summary: 'Create an account',
      description:
        'Which identifiers are required is configuration (`identity.username`, `identity.email`); at least one always.' +
        ' Registration does not log in: call login next. With an address, a verification is mailed.',
      auth: 'none',
      body: { schema: registrationSchema(config.identity), required: true },
      responses: { 201: { description: 'The account was created', schema: userEnvelopeSchema } },
      errors: ['weak_password', 'username_taken', 'email_taken', 'rate_limited', 'unavailable'],
    },
    {
      method: 'post',
      path: '/v1/auth/login',
      operationId: 'login',
      tag: 'Auth',
      summary: 'Log in with a username or an address, and a password',
      description:
        'A new session. An unknown user and a wrong password get the same answer in the same time.' +
        ' `429` when the account or the client address is over its limit, even with the right password.',
      auth: 'none',
      body: { schema: loginBodySchema, required: true },
      responses: { 200: { description: 'Logged in, or the second step to take (`mfaRequired`)', schema: signInResultSchema } },
      errors: ['invalid_credentials', 'account_disabled', 'email_not_verified', 'wrong_region', 'rate_limited', 'unavailable'],
    },
    {
      method: 'post',
      path: '/v1/auth/refresh',
      operationId: 'refresh',
      tag: 'Auth',
      summary: 'Exchange a refresh token for new tokens',
      description:
        'The refresh token is rotated. The previous token presented again within the grace window ' +
        'returns the same new token; any older one revokes the whole session (`refresh_token_reused`).',
      auth: 'none',
      body: { schema: refreshBodySchema, required: true },
      responses: { 200: { description: 'New tokens for the same session', schema: tokenResponseSchema } },
      errors: ['invalid_refresh_token', 'refresh_token_reused', 'unavailable'],
    },
    {
      method: 'post',
      path: '/v1/auth/logout',
      operationId: 'logout',
      tag: 'Auth',
      summary: "Revoke the caller's session",
      description: "With `refreshToken`, also that token's session if it is a live session of the same user.",
      auth: 'bearer',
      body: { schema: logoutBodySchema, required: false },
      responses: { 204: { description: 'Revoked' } },
      errors: ['unavailable'],
    },
    {
      method: 'post',
      path: '/v1/auth/logout-all',
      operationId: 'logoutAll',
      tag: 'Auth',
      summary: 'Revoke every session of the user',
      auth: 'bearer',
      body: { schema: z.unknown().meta({ description: 'Ignored' }), required: false },
      responses: { 204: { description: 'Every session revoked, the caller’s included' } },
      errors: ['unavailable'],
    },
    {
      method: 'post',
      path: '/v1/auth/password',
      operationId: 'changePassword',
      tag: 'Auth',
      summary: 'Change the password',
      description:
        'Every *other* session is revoked. The current password is checked under the login limits. ' +
        'Needs a recent authentication (`auth_time` within `identity.reauthWindow`; else `403 reauthentication_required`: `POST /v1/auth/reauthenticate`).',
      auth: 'bearer',
      body: { schema: passwordChangeBodySchema, required: true },
      responses: { 204: { description: 'Changed' } },
      errors: ['invalid_credentials', 'weak_password', 'account_disabled', 'reauthentication_required', 'rate_limited', 'not_found', 'unavailable'],
    },
    {
      method: 'post',
      path: '/v1/auth/email/verify/send',
      operationId: 'sendVerification',
      tag: 'E-mail',
      summary: 'Mail a verification code and link',
      description: "With a Bearer token: the caller's address. Without: body `{email}`, always `202` whether or not an account has that address.",
      auth: 'bearer-or-none',
      body: { schema: anonymousSendSchema, required: false },
      responses: { 202: { description: 'Accepted', schema: acceptedSchema } },
      errors: ['not_found', 'conflict', 'rate_limited', 'unavailable'],
    },
    {
      method: 'post',
      path: '/v1/auth/email/verify',
      operationId: 'verifyEmail',
      tag: 'E-mail',
      summary: 'Prove an address with the token of the link, or the address and its code',
      description: 'A form post (what the page of the link sends) is answered with an HTML page instead of 204.',
      auth: 'none',
      body: { schema: emailProofSchema, required: true, form: true },
      responses: { 204: { description: 'Verified (or, for an address change, replaced)' }, 200: pageResponse('A form post: the page saying so') },
      errors: ['invalid_code', 'not_found', 'email_taken', 'unavailable'],
    },
    {
      method: 'get',
      path: '/v1/auth/email/verify',
      operationId: 'verifyEmailPage',
      tag: 'E-mail',
      summary: 'The page a verification link opens',
      description: 'A button that POSTs the token; the GET itself spends nothing (link scanners fetch every link).',
      auth: 'none',
      query: linkQuerySchema,
      responses: { 200: pageResponse('The page'), 400: pageResponse('The link is incomplete') },
      errors: ['not_found'],
    },
    {
      method: 'post',
      path: '/v1/auth/password/forgot',
      operationId: 'forgotPassword',
      tag: 'E-mail',
      summary: 'Ask for a password reset',
      description: 'Always `202`, with the same body and work for known and unknown accounts.',
      auth: 'none',
      body: { schema: forgotBodySchema, required: true },
      responses: { 202: { description: 'Accepted', schema: acceptedSchema } },
      errors: ['not_found', 'unavailable'],
    },
    {
      method: 'post',
      path: '/v1/auth/password/reset',
      operationId: 'resetPassword',
      tag: 'E-mail',
      summary: 'Set a new password with a reset token or code',
      description: 'Every session of the user is revoked in every region. A form post is answered with an HTML page.',
      auth: 'none',
      body: { schema: resetBodySchema, required: true, form: true },
      responses: { 204: { description: 'Changed' }, 200: pageResponse('A form post: the page saying so') },
      errors: ['weak_password', 'invalid_code', 'account_disabled', 'not_found', 'unavailable'],
    },
    {
      method: 'get',
      path: '/v1/auth/password/reset',
      operationId: 'resetPasswordPage',
      tag: 'E-mail',
      summary: 'The page a reset link opens: a new-password form',
      auth: 'none',
      query: linkQuerySchema,
      responses: { 200: pageResponse('The form'), 400: pageResponse('The link is incomplete') },
      errors: ['not_found'],
    },
    {
      method: 'post',
      path: '/v1/me/email',
      operationId: 'changeEmail',
      tag: 'E-mail',
      summary: 'Change the address',
      description:
        'The new address is mailed a verification; the change applies when it is used. ' +
        'Needs a recent authentication (`auth_time` within `identity.reauthWindow`; else `403 reauthentication_required`: `POST /v1/auth/reauthenticate`).',
      auth: 'bearer',
      body: { schema: changeEmailBodySchema, required: true },
      responses: { 202: { description: 'Accepted', schema: acceptedSchema } },
      errors: ['invalid_credentials', 'email_taken', 'reauthentication_required', 'rate_limited', 'not_found', 'unavailable'],
    },
    {
      method: 'get',
      path: '/v1/me',
      operationId: 'me',
      tag: 'Account',
      summary: "The caller's profile",
      auth: 'bearer',
      responses: { 200: { description: 'The profile', schema: userEnvelopeSchema } },
      errors: ['unavailable'],
    },
    {
      method: 'delete',
      path: '/v1/me',
      operationId: 'deleteAccount',
      tag: 'Account',
      summary: "Delete the caller's account",
      description: 'The current password is checked under the login limits; every session is revoked and the deletion replicates.',
      auth: 'bearer',
      body: { schema: deleteAccountBodySchema, required: true },
      responses: { 204: { description: 'Deleted' } },
      errors: ['invalid_credentials', 'rate_limited', 'not_found', 'unavailable'],
    },
    {
      method: 'get',
      path: '/v1/sessions',
      operationId: 'listSessions',
      tag: 'Account',
      summary: "The caller's live sessions, newest first",
      auth: 'bearer',
      responses: { 200: { description: 'The sessions', schema: sessionListSchema } },
      errors: ['unavailable'],
    },
    {
      method: 'delete',
      path: '/v1/sessions/{id}',
      operationId: 'revokeSession',
      tag: 'Account',
      summary: 'Revoke one of the caller’s sessions',
      description: 'Anything but a live session of the caller is `404`.',
      auth: 'bearer',
      params: z.object({ id: z.string().meta({ description: 'The session id' }) }),
      responses: { 204: { description: 'Revoked' } },
      errors: ['not_found', 'unavailable'],
    },
    {
      method: 'get',
      path: '/v1/verify',
      operationId: 'verify',
      tag: 'Account',
      summary: 'Check an access token, for gateways (nginx auth_request, Traefik ForwardAuth, Envoy ext_authz)',
      description: 'No database: signature, claims and the in-memory revocation list decide.',
      auth: 'bearer',
      responses: {
        200: {
          description: 'The identity, in headers and body',
          schema: verifyResultSchema,
          headers: {
            'X-Auth-User-Id': { description: 'The user id', required: true },
            'X-Auth-Session-Id': { description: 'The session id', required: true },
            'X-Auth-Username': { description: 'When the user has a username' },
            'X-Auth-Email': { description: 'When the user has an address' },
            'X-Auth-Email-Verified': { description: '`true` or `false`, with X-Auth-Email', schema: z.enum(['true', 'false']) },
          },
        },
      },
      errors: [],
    },
    {
      method: 'get',
      path: '/v1/regions',
      operationId: 'listRegions',
      tag: 'Regions',
      summary: 'This region, then its peers',
      auth: 'none',
      responses: { 200: { description: 'The regions', schema: regionsSchema } },
      errors: [],
    },
    {
      method: 'post',
      path: '/internal/replication',
      operationId: 'replicate',
      tag: 'Regions',
      summary: "A peer region's batch of changes (peers only, HMAC-signed)",
      auth: 'peer',
      body: { schema: z.object({}).passthrough().meta({ description: 'A replication batch (docs/api.md#routes-between-regions)' }), required: true },
      responses: { 200: { description: 'Applied', schema: replicationResultSchema } },
      errors: ['invalid_signature', 'unknown_peer', 'conflict', 'unavailable'],
    },
    {
      method: 'get',
      path: '/.well-known/jwks.json',
      operationId: 'jwks',
      tag: 'Discovery',
      summary: 'The public signing keys of every region',
      auth: 'none',
      responses: cachedFor300s(jwksSchema),
      errors: [],
    },
    {
      method: 'get',
      path: '/openapi.json',
      operationId: 'openapi',
      tag: 'Discovery',
      summary: 'This document',
      auth: 'none',
      responses: { 200: { description: 'The OpenAPI 3.1 document of this server', schema: z.object({ openapi: z.string() }).passthrough() } },
      errors: [],
    },
    {
      method: 'get',
      path: '/.well-known/openid-configuration',
      operationId: 'openidConfiguration',
      tag: 'Discovery',
      summary: 'OpenID Connect discovery: issuer, JWKS, introspection and revocation endpoints',
      description: "Each region publishes its own issuer (`tokens.issuer`) and the JWKS every region's keys reach by replication.",
      auth: 'none',
      responses: cachedFor300s(serverMetadataSchema),
      errors: [],
    },
    {
      method: 'get',
      path: '/.well-known/oauth-authorization-server',
      operationId: 'oauthAuthorizationServer',
      tag: 'Discovery',
      summary: 'RFC 8414 authorization server metadata (the same document)',
      auth: 'none',
      responses: cachedFor300s(serverMetadataSchema),
      errors: [],
    },
    {
      method: 'post',
      path: '/oauth/introspect',
      operationId: 'introspect',
      tag: 'Services',
      summary: 'Is this access or refresh token active? (RFC 7662)',
      description:
        'Anything invalid, expired, forged or revoked is `{"active": false}` alone. Access tokens are answered without a database read. ' +
        'Client authentication: HTTP Basic or `client_id` + `client_secret` in the form; the client needs the `introspect` scope.',
      auth: 'client',
      body: { schema: introspectFormSchema.meta({ id: 'IntrospectionRequest' }), required: true, form: 'only' },
      responses: { 200: { description: 'The answer', schema: introspectionResponseSchema.meta({ id: 'Introspection' }) } },
      errors: [],
      oauthErrors: {
        400: ['invalid_request'],
        401: ['invalid_client'],
        403: ['unauthorized_client'],
        413: ['invalid_request'],
        429: ['temporarily_unavailable'],
        500: ['server_error'],
        503: ['temporarily_unavailable'],
      },
    },
    {
      method: 'post',
      path: '/oauth/revoke',
      operationId: 'revoke',
      tag: 'Services',
      summary: "Revoke a token's session (RFC 7009)",
      description:
        'With client credentials (scope `revoke`): any token. Without: a refresh token is its own proof (a public client). ' +
        '`200` with no body whether or not the token was valid.',
      auth: 'client-or-none',
      body: { schema: revokeFormSchema.meta({ id: 'RevocationRequest' }), required: true, form: 'only' },
      responses: { 200: { description: 'Revoked, or nothing to revoke' } },
      errors: [],
      oauthErrors: {
        400: ['invalid_request', 'unsupported_token_type'],
        401: ['invalid_client'],
        403: ['unauthorized_client'],
        413: ['invalid_request'],
        500: ['server_error'],
        503: ['temporarily_unavailable'],
      },
    },
    {
      method: 'get',
      path: '/docs',
      operationId: 'docsPage',
      tag: 'Discovery',
      summary: 'This document as an interactive reference page (`http.docs`)',
      auth: 'none',
      responses: { 200: pageResponse('Swagger UI, served by this server'), 304: { description: 'Not modified (ETag)' } },
      errors: [],
      when: (c) => c.http.docs,
    },
    {
      method: 'get',
      path: '/docs/',
      operationId: 'docsSlash',
      tag: 'Discovery',
      summary: 'Redirects to /docs',
      auth: 'none',
      responses: { 301: { description: 'To `../docs`', headers: { Location: { description: '`../docs`', required: true } } } },
      errors: [],
      when: (c) => c.http.docs,
    },
    {
      method: 'get',
      path: '/docs/assets/{version}/{file}',
      operationId: 'docsAsset',
      tag: 'Discovery',
      summary: "The reference page's scripts, styles and icon (immutable)",
      auth: 'none',
      params: z.object({ version: z.string(), file: z.string() }),
      responses: {
        200: {
          description: 'The file',
          content: { 'text/css': z.string(), 'text/javascript': z.string(), 'image/png': z.string().meta({ contentMediaType: 'image/png' }) },
          headers: { ETag: { description: 'Strong validator', required: true } },
        },
        304: { description: 'Not modified (ETag)' },
      },
      errors: ['not_found'],
      when: (c) => c.http.docs,
    },
    {
      method: 'get',
      path: '/healthz',
      operationId: 'healthz',
      tag: 'System',
      summary: 'Liveness: 200 while the process runs',
      auth: 'none',
      responses: { 200: { description: 'Alive', schema: healthSchema } },
      errors: [],
    },
    {
      method: 'get',
      path: '/readyz',
      operationId: 'readyz',
      tag: 'System',
      summary: 'Readiness: the database, signing keys and revocation feed',
      auth: 'none',
      responses: {
        200: { description: 'Ready (`status` is `degraded` while the cache or the read replica fails)', schema: readinessSchema },
        503: { description: 'Not ready: `failing` names the checks', schema: readinessSchema },
      },
      errors: [],
    },
    {
      method: 'get',
      path: '/metrics',
      operationId: 'metrics',
      tag: 'System',
      summary: 'Prometheus metrics (on an admin port instead with `http.metricsPort`)',
      auth: 'none',
      responses: { 200: { description: 'Prometheus text format', type: 'text/plain' } },
      errors: [],
      when: (c) => c.http.metricsPort === undefined,
    },
    {
      method: 'get',
      path: '/bench/baseline',
      operationId: 'benchBaseline',
      tag: 'System',
      summary: 'The body of /v1/me without authentication or I/O (`http.benchRoutes`, for `npm run bench`)',
      auth: 'none',
      responses: { 200: { description: 'A fixed profile', schema: userEnvelopeSchema } },
      errors: [],
      when: (c) => c.http.benchRoutes,
    },
    ...otpOperations(config),
    ...factorOperations(),
    ...twoStepOperations(),
    ...oidcOperations(),
    ...identityOperations(),
    ...passkeyOperations(),
  ];
}

/** The codes an operation may answer: its own, plus those every operation of its kind has. */
function errorsOf(op: OperationSpec): ErrorCode[] {
  const codes = new Set<ErrorCode>(op.errors);
  if (op.body) for (const code of ['invalid_request', 'payload_too_large', 'unsupported_media_type'] as const) codes.add(code);
  // A Bearer route checks the token first; a server still loading its keys answers 503.
  if (op.auth === 'bearer' || op.auth === 'bearer-or-none') {
    codes.add('invalid_token');
    codes.add('unavailable');
  }
  codes.add('internal_error');
  return [...codes];
}

const requestIdHeader = {
  description: "The request's id: the client's own when sane (1–128 of `A–Z a–z 0–9 . _ : -`), else a new UUID; also `requestId` of problems",
  required: true,
  schema: { type: 'string', minLength: 1, maxLength: 128 },
} as const;

function headerObjects(headers: Success['headers'] = {}) {
  const out: Record<string, unknown> = { 'X-Request-Id': { $ref: '#/components/headers/XRequestId' } };
  for (const [name, h] of Object.entries(headers)) {
    out[name] = { description: h.description, required: h.required ?? false, schema: h.schema ? z.toJSONSchema(h.schema) : { type: 'string' } };
  }
  return out;
}

/** The problem responses of an operation: one per status, `code` limited to what that status may carry. */
function problemResponses(op: OperationSpec): Record<string, ZodOpenApiResponseObject> {
  const byStatus = new Map<number, ErrorCode[]>();
  for (const code of errorsOf(op)) {
    const status = ERROR_CATALOG[code].status;
    byStatus.set(status, [...(byStatus.get(status) ?? []), code]);
  }
  const out: Record<string, ZodOpenApiResponseObject> = {};
  for (const [status, codes] of [...byStatus].sort(([a], [b]) => a - b)) {
    const headers: Record<string, unknown> = { 'X-Request-Id': { $ref: '#/components/headers/XRequestId' } };
    if (status === 429 || status === 503) headers['Retry-After'] = { $ref: '#/components/headers/RetryAfter' };
    if (codes.includes('invalid_token')) {
      headers['WWW-Authenticate'] = {
        description: 'With `invalid_token`: `Bearer realm="authctl", error="invalid_token", error_description="…"` (RFC 6750 §3)',
        required: codes.every((code) => code === 'invalid_token'),
        schema: { type: 'string', pattern: '^Bearer ' },
      };
    }
    if (codes.includes('wrong_region'))
      headers.Location = { description: "`wrong_region`: the login URL of the user's home region", schema: { type: 'string' } };
    const existing = op.responses[status];
    out[String(status)] = {
      description: `${existing ? `${existing.description}; or a problem` : ERROR_CATALOG[codes[0]!].title}: ${codes.map((c) => `\`${c}\``).join(', ')}`,
      headers: headers as ZodOpenApiResponseObject['headers'],
      content: {
        ...(existing?.type ? { [existing.type]: { schema: z.string() } } : {}),
        // A form post (authctl's own pages) is answered with a page, errors included.
        ...(op.body?.form && status < 500 ? { 'text/html': { schema: z.string().meta({ description: 'A form post: the page saying what went wrong' }) } } : {}),
        'application/problem+json': { schema: problemOf(status, codes) },
      },
    };
  }
  return out;
}

/** OAuth's error responses (RFC 6749 §5.2), one per status with its `error` values. */
function oauthResponses(errors: Record<number, OAuthErrorCode[]>): Record<string, ZodOpenApiResponseObject> {
  const out: Record<string, ZodOpenApiResponseObject> = {};
  for (const [status, codes] of Object.entries(errors)) {
    const headers: Record<string, unknown> = { 'X-Request-Id': { $ref: '#/components/headers/XRequestId' } };
    if (status === '429' || status === '503') headers['Retry-After'] = { $ref: '#/components/headers/RetryAfter' };
    if (status === '401')
      headers['WWW-Authenticate'] = { description: '`Basic realm="authctl"`', required: true, schema: { type: 'string', pattern: '^Basic ' } };
    out[status] = {
      description: `OAuth error: ${codes.map((c) => `\`${c}\``).join(', ')}`,
      headers: headers as ZodOpenApiResponseObject['headers'],
      content: {
        'application/json': {
          schema: z.strictObject({ error: z.enum(codes as [OAuthErrorCode, ...OAuthErrorCode[]]), error_description: z.string().optional() }),
        },
      },
    };
  }
  return out;
}

function operationObject(op: OperationSpec): ZodOpenApiOperationObject {
  const responses: Record<string, ZodOpenApiResponseObject> = {};
  for (const [status, success] of Object.entries(op.responses)) {
    const content = success.content
      ? Object.fromEntries(Object.entries(success.content).map(([type, schema]) => [type, { schema }]))
      : success.type
        ? { [success.type]: { schema: z.string() } }
        : success.schema
          ? { 'application/json': { schema: success.schema } }
          : undefined;
    responses[status] = {
      description: success.description,
      headers: headerObjects(success.headers) as ZodOpenApiResponseObject['headers'],
      ...(content ? { content } : {}),
    };
  }
  Object.assign(responses, op.oauthErrors ? oauthResponses(op.oauthErrors) : problemResponses(op));
  const security: Record<string, string[]>[] = {
    none: [],
    bearer: [{ bearerAuth: [] }],
    'bearer-or-none': [{ bearerAuth: [] }, {}],
    peer: [{ peerSignature: [] }],
    // client_secret_post (the credentials in the form) has no security scheme: it is the `{}`.
    client: [{ clientBasic: [] }, {}],
    'client-or-none': [{ clientBasic: [] }, {}],
  }[op.auth];
  const requestParams = { ...(op.query ? { query: op.query } : {}), ...(op.params ? { path: op.params } : {}) };
  return {
    operationId: op.operationId,
    tags: [op.tag],
    summary: op.summary,
    ...(op.description ? { description: op.description } : {}),
    security,
    ...(Object.keys(requestParams).length ? { requestParams } : {}),
    ...(op.body
      ? {
          requestBody: {
            required: op.body.required,
            content: {
              ...(op.body.form !== 'only' ? { 'application/json': { schema: op.body.schema } } : {}),
              ...(op.body.form ? { 'application/x-www-form-urlencoded': { schema: op.body.schema } } : {}),
            },
          },
        }
      : {}),
    responses,
  };
}

let packageVersion: string | undefined;
/** The package's version, from the package.json above this file (dist/src/http or src/http). */
function version(): string {
  if (packageVersion === undefined) {
    for (let dir = new URL('.', import.meta.url); ; dir = new URL('..', dir)) {
      try {
        const pkg = JSON.parse(readFileSync(new URL('package.json', dir), 'utf-8')) as { name?: string; version: string };
        if (pkg.name === 'authctl') return (packageVersion = pkg.version);
      } catch {
        // not here: one level up
      }
      if (dir.pathname === '/') return (packageVersion = '0.0.0');
    }
  }
  return packageVersion;
}

/** The operations this server serves (those its configuration turns on). */
export function activeOperations(config: Config): OperationSpec[] {
  return operations(config).filter((op) => op.when?.(config) ?? true);
}

/** The OpenAPI 3.1 document of a server with this configuration. */
export function openApiDocument(config: Config): Record<string, unknown> {
  const paths: ZodOpenApiPathsObject = {};
  for (const op of activeOperations(config)) {
    paths[op.path] = { ...paths[op.path], [op.method]: operationObject(op) };
  }
  const base = config.publicUrl ?? config.tokens.issuer;
  const document = createDocument({
    openapi: '3.1.0',
    info: {
      title: 'authctl',
      version: version(),
      description:
        'The HTTP API of one authctl region. Errors are RFC 9457 problems with a stable `code`; every response carries `X-Request-Id`.' +
        ' Behaviour in prose: docs/api.md.',
      license: { name: 'Apache-2.0', identifier: 'Apache-2.0' },
    },
    servers: [{ url: '/', description: 'This server' }, ...(base !== '/' ? [{ url: base, description: `Region ${config.region}` }] : [])],
    tags: TAGS,
    paths,
    components: {
      schemas: { Problem: problemSchema, OAuthError: oauthErrorSchema.meta({ description: 'RFC 6749 §5.2 error response (`/oauth/*` only)' }) },
      headers: {
        XRequestId: requestIdHeader,
        RetryAfter: { description: 'Seconds to wait before trying again (at least 1)', required: true, schema: { type: 'string', pattern: '^[1-9][0-9]*$' } },
      } as never,
      securitySchemes: {
        bearerAuth: {
          type: 'http',
          scheme: 'bearer',
          bearerFormat: 'JWT',
          description: 'An access token from login or refresh, in `Authorization: Bearer …` only',
        },
        clientBasic: {
          type: 'http',
          scheme: 'basic',
          description: 'A service client: `client_id` and secret, each form-urlencoded, in HTTP Basic (RFC 6749 §2.3.1); or both as form fields',
        },
        peerSignature: {
          type: 'apiKey',
          in: 'header',
          name: 'X-Authctl-Signature',
          description: 'Peer regions only: HMAC-SHA-256 under the pair’s secret over region, timestamp and body (with X-Authctl-Region, X-Authctl-Timestamp)',
        },
      },
    },
  }) as unknown as Record<string, unknown>;
  // Unknown paths and methods have no operation to describe them: say in what format they fail.
  document['x-error-formats'] = [
    { prefix: '/oauth/', mediaType: 'application/json', schema: { $ref: '#/components/schemas/OAuthError' } },
    { prefix: '/', mediaType: 'application/problem+json', schema: { $ref: '#/components/schemas/Problem' } },
  ];
  return document;
}
