import type { Middleware } from 'koa';
import type { Principal } from '../../core/auth/auth-service.js';
import type { Clock } from '../../platform/clock.js';
import { AppError } from '../../platform/errors.js';

/**
 * Step-up (docs/api.md#step-up-recent-authentication): the caller's access token must say the
 * user authenticated within `windowSeconds` (its `auth_time`), else `403 reauthentication_required`.
 * Stateless, like the Bearer check it follows: `POST /v1/auth/reauthenticate` answers a new access
 * token whose `auth_time` is now.
 */
export function assertRecentAuth(principal: Principal, windowSeconds: number, now: Date): void {
  const authTime = principal.claims.auth_time;
  if (authTime === undefined || now.getTime() / 1000 - authTime > windowSeconds) {
    throw new AppError(
      'reauthentication_required',
      `this needs an authentication within the last ${windowSeconds} s: POST /v1/auth/reauthenticate, then retry with the access token it returns`,
    );
  }
}

/** {@link assertRecentAuth} as middleware, after `requireBearer`. */
export function requireRecentAuth(opts: { windowSeconds: number; clock: Clock }): Middleware {
  return async function recentAuthMiddleware(ctx, next) {
    assertRecentAuth(ctx.state.principal as Principal, opts.windowSeconds, opts.clock.now());
    await next();
  };
}
