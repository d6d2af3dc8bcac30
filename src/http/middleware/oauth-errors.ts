import type { Context } from 'koa';
import { z } from 'zod';
import type { AppError } from '../../platform/errors.js';
import { type ErrorCode } from '../../platform/errors.js';

/** The `error` values the OAuth endpoints answer with (RFC 6749 §5.2, RFC 7009 §2.2.1). */
export const OAUTH_ERRORS = [
  'invalid_request',
  'invalid_client',
  'unauthorized_client',
  'unsupported_token_type',
  'temporarily_unavailable',
  'server_error',
] as const;
export type OAuthErrorCode = (typeof OAUTH_ERRORS)[number];

/** RFC 6749 §5.2 error response body. */
export const oauthErrorSchema = z.object({
  error: z.enum(OAUTH_ERRORS),
  error_description: z.string().optional(),
});

/**
 * The OAuth `error` for each catalog code that has its own; every other code below 500 is
 * `invalid_request` with its own status (400, 404, 405, 413), and anything from 500 up is
 * `server_error`. Two choices RFC 6749 leaves open:
 * - a client without the scope an endpoint needs: `403 unauthorized_client` ("the authenticated
 *   client is not authorized" for this request); `insufficient_scope` (RFC 6750) is about the
 *   scope of a Bearer token, which these clients do not present;
 * - over the per-client rate limit: `429 temporarily_unavailable` with `Retry-After`: OAuth has no
 *   rate-limit code, and this registered one says "retry later", which is what the client should
 *   do; the status tells it apart from the `503` of an outage.
 */
const BY_CODE: Partial<Record<ErrorCode, OAuthErrorCode>> = {
  invalid_client: 'invalid_client',
  unauthorized_client: 'unauthorized_client',
  unsupported_token_type: 'unsupported_token_type',
  rate_limited: 'temporarily_unavailable',
  unavailable: 'temporarily_unavailable',
};

// RFC 6749 §5.2: error_description is printable ASCII without '"' and '\'.
const NOT_DESCRIPTION_CHARS = /[^\x20-\x21\x23-\x5b\x5d-\x7e]/g;

/** Whether a path is one of the OAuth endpoints' (the prefix this format applies to). */
export function isOAuthPath(path: string): boolean {
  return path === '/oauth' || path.startsWith('/oauth/');
}

/** Writes `error` as an RFC 6749 §5.2 error response, with the headers its code calls for. */
export function writeOAuthError(ctx: Context, error: AppError): void {
  const oauth = BY_CODE[error.code] ?? (error.status < 500 ? 'invalid_request' : 'server_error');
  // unsupported_media_type: RFC 6749 has no 415; a wrong body type is a malformed request.
  ctx.status = oauth === 'server_error' ? 500 : error.code === 'unsupported_media_type' ? 400 : error.status;
  ctx.type = 'application/json';
  ctx.set('Cache-Control', 'no-store');
  // RFC 6749 §5.2: a 401 names the scheme the client should authenticate with (RFC 9110 §11.6.1).
  if (ctx.status === 401) ctx.set('WWW-Authenticate', 'Basic realm="authctl"');
  if (error.retryAfter !== undefined) ctx.set('Retry-After', String(error.retryAfter));
  const description = oauth === 'server_error' ? 'an unexpected error occurred; quote the X-Request-Id when reporting it' : error.detail;
  ctx.body = { error: oauth, error_description: description.replace(NOT_DESCRIPTION_CHARS, '') };
}
