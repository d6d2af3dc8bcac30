import type { Middleware } from 'koa';
import type { AuthService } from '../../core/auth/auth-service.js';
import { AppError } from '../../platform/errors.js';

// RFC 6750 §2.1 b64token.
export const BEARER = /^Bearer +([A-Za-z0-9\-._~+/]+=*)$/i;
/** Requires a valid access token of a live session; puts the Principal in `ctx.state.principal`. */
export function requireBearer(auth: AuthService): Middleware {
  return async function bearerMiddleware(ctx, next) {
    const header = ctx.get('authorization');
    // A token verified before is answered from memory, before any parsing: the remembered tokens
    // are exactly the canonical spellings that passed full verification (AccessTokens), so text
    // equal to one of them is that token, and a respelled one misses and is checked in full.
    const known = /^bearer /i.test(header) ? auth.authenticateKnown(header.slice(7)) : undefined;
    if (known) {
      ctx.state.principal = known;
    } else {
      const match = BEARER.exec(header);
      if (!match) throw new AppError('invalid_token', 'a Bearer access token is required');
      ctx.state.principal = await auth.authenticate(match[1]!);
    }
    await next();
  };
}
