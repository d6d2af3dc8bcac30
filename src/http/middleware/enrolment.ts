import type { Middleware } from 'koa';
import type { PendingLogin, Principal } from '../../core/auth/auth-service.js';
import { MfaTokens } from '../../core/mfa/mfa-tokens.js';
import type { Container } from '../../container.js';
import { BEARER, requireBearer } from './bearer.js';
import { assertRecentAuth } from './recent-auth.js';

/**
 * Who enrols a factor: a signed-in user whose authentication is recent, or — with
 * `identity.mfa: "required"` — a user in the middle of a login who has no factor yet and holds the
 * `mfaToken` of that login (it allows enrolment and nothing else).
 */
export type EnrolmentSubject = { userId: string; via: 'access_token'; principal: Principal } | { userId: string; via: 'mfa_token'; pending: PendingLogin };

/**
 * Puts the {@link EnrolmentSubject} in `ctx.state.subject`: a Bearer access token with a recent
 * `auth_time`, or `Bearer mfa_…` — an enrolment mfaToken (`invalid_mfa_token` for any other,
 * a spent one, or once the user has an active factor). Only these routes take an mfaToken as a
 * Bearer credential; everywhere else it is an `invalid_token`.
 */
export function requireEnrolmentSubject(c: Container): Middleware {
  const bearer = requireBearer(c.auth);
  return async function enrolmentSubjectMiddleware(ctx, next) {
    const token = BEARER.exec(ctx.get('authorization'))?.[1];
    if (token !== undefined && MfaTokens.looksLike(token)) {
      const pending = await c.auth.enrolmentUser(token);
      ctx.state.subject = { userId: pending.user.id, via: 'mfa_token', pending } satisfies EnrolmentSubject;
      await next();
      return;
    }
    await bearer(ctx, async () => {
      const principal = ctx.state.principal as Principal;
      assertRecentAuth(principal, c.config.identity.reauthWindow, c.clock.now());
      ctx.state.subject = { userId: principal.userId, via: 'access_token', principal } satisfies EnrolmentSubject;
      await next();
    });
  };
}
