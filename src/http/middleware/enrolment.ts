import type { Middleware } from 'koa';
import type { Principal } from '../../core/auth/auth-service.js';
import type { Container } from '../../container.js';
import { requireBearer } from './bearer.js';
import { assertRecentAuth } from './recent-auth.js';

/**
 * Who enrols a factor: a signed-in user whose authentication is recent, or — with
 * `identity.mfa: "required"` — a user in the middle of a login who has no factor yet and holds the
 * `mfaToken` of that login (it allows enrolment and nothing else).
 */
export type EnrolmentSubject = { userId: string; via: 'access_token'; principal: Principal } | { userId: string; via: 'mfa_token'; mfaToken: string };

/** Puts the {@link EnrolmentSubject} in `ctx.state.subject`: a Bearer access token with a recent `auth_time`. */
export function requireEnrolmentSubject(c: Container): Middleware {
  const bearer = requireBearer(c.auth);
  return async function enrolmentSubjectMiddleware(ctx, next) {
    await bearer(ctx, async () => {
      const principal = ctx.state.principal as Principal;
      assertRecentAuth(principal, c.config.identity.reauthWindow, c.clock.now());
      ctx.state.subject = { userId: principal.userId, via: 'access_token', principal } satisfies EnrolmentSubject;
      await next();
    });
  };
}
