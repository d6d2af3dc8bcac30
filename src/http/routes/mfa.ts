import Router from '@koa/router';
import { validate as isUuid } from 'uuid';
import { z } from 'zod';
import type { Principal } from '../../core/auth/auth-service.js';
import type { Container } from '../../container.js';
import { AppError } from '../../platform/errors.js';
import { requireBearer } from '../middleware/bearer.js';
import { requireEnrolmentSubject, type EnrolmentSubject } from '../middleware/enrolment.js';
import { jsonBody } from '../middleware/json-body.js';
import { requireRecentAuth } from '../middleware/recent-auth.js';
import { parseBody } from '../validate.js';
import { clientMeta, principalName, userThrottleName } from './auth.js';

export const totpConfirmBodySchema = z
  .strictObject({
    factorId: z.uuid().meta({ description: 'The `factorId` of `POST /v1/me/mfa/totp`' }),
    code: z
      .string()
      .regex(/^\d{6}$/, 'must be the 6-digit code')
      .meta({ description: 'The current code of the authenticator app', example: '123456' }),
  })
  .meta({ id: 'TotpConfirmation', example: { factorId: '0192f0c4-7d1e-7c3a-9b1e-3f2a1c0d4e70', code: '123456' } });

/** The name the login limits count a caller's wrong codes under: the one its logins are counted under. */
function limitName(subject: EnrolmentSubject): string {
  return subject.via === 'access_token' ? principalName(subject.principal) : userThrottleName(subject.pending.user);
}

/**
 * The caller's TOTP factors and recovery codes (docs/api.md#totp-factors-and-recovery-codes):
 * enrolment (Bearer with a recent authentication, or a login's mfaToken when a factor is required),
 * the list, removal and regeneration (Bearer; the last two with a recent authentication). With
 * `identity.mfa: "off"` the routes do not exist (404 like any unknown path).
 */
export function mfaRoutes(c: Container): Router {
  const router = new Router();
  if (!c.mfa.enabled) return router;
  const body = jsonBody(c.config.http.bodyLimit);
  const bearer = requireBearer(c.auth);
  const enrolling = requireEnrolmentSubject(c);
  const recent = requireRecentAuth({ windowSeconds: c.config.identity.reauthWindow, clock: c.clock });

  router.post('/v1/me/mfa/totp', enrolling, async function startTotp(ctx) {
    const subject = ctx.state.subject as EnrolmentSubject;
    ctx.status = 201;
    ctx.body = await c.mfa.startTotp(subject.userId);
  });

  router.post('/v1/me/mfa/totp/confirm', enrolling, body, async function confirmTotp(ctx) {
    const subject = ctx.state.subject as EnrolmentSubject;
    const { factorId, code } = parseBody(totpConfirmBodySchema, ctx.state.body);
    // A wrong code counts like a wrong password of the account: enrolment is no way to guess codes.
    const { recoveryCodes } = await c.throttle.guard(limitName(subject), ctx.ip, () => c.mfa.confirmTotp(subject.userId, factorId, code));
    ctx.body = subject.via === 'mfa_token' ? { recoveryCodes, tokens: await c.auth.completeEnrolment(subject.pending, clientMeta(ctx)) } : { recoveryCodes };
  });

  router.get('/v1/me/mfa', bearer, async function listFactors(ctx) {
    ctx.body = await c.mfa.overview((ctx.state.principal as Principal).userId);
  });

  router.delete('/v1/me/mfa/totp/:id', bearer, recent, async function removeTotp(ctx) {
    const id = ctx.params.id ?? '';
    if (!isUuid(id)) throw new AppError('not_found', 'no such factor');
    await c.mfa.removeTotp((ctx.state.principal as Principal).userId, id.toLowerCase());
    ctx.status = 204;
  });

  router.post('/v1/me/mfa/recovery-codes', bearer, recent, async function regenerateRecoveryCodes(ctx) {
    ctx.body = await c.mfa.regenerateRecoveryCodes((ctx.state.principal as Principal).userId);
  });

  return router;
}
