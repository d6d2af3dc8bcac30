import type { Middleware } from 'koa';
import type { AuthService } from '../../core/auth/auth-service.js';
import { AppError } from '../../errors.js';

// RFC 6750 §2.1 b64token.
const BEARER = /^Bearer +([A-Za-z0-9\-._~+/]+=*)$/i;
// RFC 7515 §7.1: a compact JWS is exactly three unpadded base64url segments.
const COMPACT_JWS = /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$/;

/**
 * Only the canonical spelling of a JWS is accepted. Decoders (jose's included) tolerate padding
 * and ignore the spare bits of a segment's last character, so one token has many spellings;
 * anything keyed by the token text (caches, logs, deny lists) must not be fooled by that.
 */
function isCanonicalJws(token: string): boolean {
  return COMPACT_JWS.test(token) && token.split('.').every((part) => Buffer.from(part, 'base64url').toString('base64url') === part);
}

/** Requires a valid access token of a live session; puts the Principal in `ctx.state.principal`. */
export function requireBearer(auth: AuthService): Middleware {
  return async function bearerMiddleware(ctx, next) {
    const match = BEARER.exec(ctx.get('authorization'));
    if (!match) throw new AppError('invalid_token', 'a Bearer access token is required');
    if (!isCanonicalJws(match[1]!)) throw new AppError('invalid_token', 'the access token is malformed');
    ctx.state.principal = await auth.authenticate(match[1]!);
    await next();
  };
}
