import type { Middleware } from 'koa';
import type { AuthService } from '../../core/auth/auth-service.js';
import { AppError } from '../../errors.js';

// RFC 6750 §2.1 b64token.
const BEARER = /^Bearer +([A-Za-z0-9\-._~+/]+=*)$/i;
/** Requires a valid access token of a live session; puts the Principal in `ctx.state.principal`. */
export function requireBearer(auth: AuthService): Middleware {
  return async function bearerMiddleware(ctx, next) {
    const match = BEARER.exec(ctx.get('authorization'));
    if (!match) throw new AppError('invalid_token', 'a Bearer access token is required');
    // A token verified before is answered from memory; only the canonical spelling of a token is
    // ever verified (AccessTokens), so a respelled one misses this cache and is refused.
    ctx.state.principal = auth.authenticateKnown(match[1]!) ?? (await auth.authenticate(match[1]!));
    await next();
  };
}
