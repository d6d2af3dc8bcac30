import Router from '@koa/router';
import { z } from 'zod';
import type { AuthenticationResponseJSON } from '@simplewebauthn/server';
import type { Principal } from '../../core/auth/auth-service.js';
import type { SecondFactorProof } from '../../core/mfa/mfa-factors.js';
import type { Container } from '../../container.js';
import { AppError } from '../../platform/errors.js';
import { requireBearer } from '../middleware/bearer.js';
import { jsonBody } from '../middleware/json-body.js';
import { parseBody } from '../validate.js';
import { authenticationResponseSchema } from '../webauthn-schemas.js';
import { clientMeta, principalName, userThrottleName } from './auth.js';

export const mfaToken = z.string().min(1).max(512).meta({ description: "The `mfaToken` of the login's first step (`mfa_…`)" });
const code = z
  .string()
  .regex(/^\d{6}$/, 'must be the 6-digit code')
  .meta({ description: 'The 6-digit code the authenticator app shows now', example: '123456' });
const recoveryCode = z.string().min(1).max(64).meta({ description: 'One of the recovery codes (each works once)' });

export const mfaVerifyBodySchema = z
  .union(
    [
      z.strictObject({ mfaToken, code }),
      z.strictObject({ mfaToken, recoveryCode }),
      z.strictObject({
        mfaToken,
        passkey: authenticationResponseSchema.meta({
          description: 'The answer of `startAuthentication()` to the options of `POST /v1/auth/passkey/options` with this mfaToken',
        }),
      }),
    ],
    { error: 'send {mfaToken, code}, {mfaToken, recoveryCode} or {mfaToken, passkey}' },
  )
  .meta({ id: 'MfaVerify', example: { mfaToken: 'mfa_…', code: '123456' } });

/**
 * A step-up: the password (and a code), or a passkey. One object rather than a union, so that what
 * is wrong is told by its field (`password` missing, `code` malformed, a `passkey` member missing).
 */
export const reauthenticateBodySchema = z
  .strictObject({
    password: z.string().min(1).max(1024).optional().meta({ description: 'The current password (or send `passkey`)' }),
    code: code.optional().meta({ description: 'With `password`: required when the account has an active second factor (or send `recoveryCode`)' }),
    recoveryCode: recoveryCode.optional(),
    passkey: authenticationResponseSchema.optional().meta({
      description: 'Instead of the password: the answer of `startAuthentication()` to `POST /v1/auth/passkey/options` with `{"purpose": "reauthenticate"}`',
    }),
  })
  .superRefine((b, ctx) => {
    if (b.passkey !== undefined && (b.password !== undefined || b.code !== undefined || b.recoveryCode !== undefined)) {
      ctx.addIssue({ code: 'custom', path: ['passkey'], message: 'send passkey alone, without password or codes' });
    } else if (b.passkey === undefined && b.password === undefined) {
      ctx.addIssue({ code: 'custom', path: ['password'], message: 'required (or send passkey)' });
    }
    if (b.code !== undefined && b.recoveryCode !== undefined)
      ctx.addIssue({ code: 'custom', path: ['recoveryCode'], message: 'send code or recoveryCode, not both' });
  })
  .meta({ id: 'Reauthenticate', example: { password: 'correct horse battery staple', code: '123456' } });

/**
 * The second step of a login and step-up (docs/api.md#two-step-login,
 * docs/api.md#step-up-recent-authentication): `POST /v1/auth/mfa/verify` (a code, a recovery
 * code or a passkey) and `POST /v1/auth/reauthenticate` (the password and a code, or a passkey). Codes and passkeys are checked under the
 * login limits, on the same counter as the account's passwords.
 */
export function twoStepRoutes(c: Container): Router {
  const router = new Router({ prefix: '/v1/auth' });
  const body = jsonBody(c.config.http.bodyLimit);
  const bearer = requireBearer(c.auth);

  router.post('/mfa/verify', body, async function verifySecondFactor(ctx) {
    if (c.config.identity.mfa === 'off') throw new AppError('not_found', 'second factors are not enabled on this server');
    const input = parseBody(mfaVerifyBodySchema, ctx.state.body);
    if ('passkey' in input && !c.passkeys.enabled) throw new AppError('not_found', 'passkeys are not enabled on this server');
    const pending = await c.auth.pendingLogin(input.mfaToken, 'verify');
    const meta = clientMeta(ctx);
    ctx.body = await c.throttle.guard(userThrottleName(pending.user), ctx.ip, () => {
      // zod bounded the shape; @simplewebauthn/server checks what it says.
      if ('passkey' in input) return c.passkeys.verifySecondStep(pending, input.passkey as AuthenticationResponseJSON, meta);
      const proof: SecondFactorProof = 'code' in input ? { code: input.code } : { recoveryCode: input.recoveryCode };
      return c.auth.verifySecondFactor(pending, proof, meta);
    });
  });

  router.post('/reauthenticate', bearer, body, async function reauthenticate(ctx) {
    const input = parseBody(reauthenticateBodySchema, ctx.state.body);
    if (input.passkey !== undefined && !c.passkeys.enabled) throw new AppError('not_found', 'passkeys are not enabled on this server');
    const principal = ctx.state.principal as Principal;
    const { password, passkey } = input;
    ctx.body = await c.throttle.guard(principalName(principal), ctx.ip, () => {
      // The schema let through exactly one of the two.
      if (password === undefined) return c.passkeys.reauthenticate(principal, passkey as AuthenticationResponseJSON);
      const proof: SecondFactorProof | undefined =
        input.code !== undefined ? { code: input.code } : input.recoveryCode !== undefined ? { recoveryCode: input.recoveryCode } : undefined;
      return c.auth.reauthenticate(principal, password, proof);
    });
  });

  return router;
}
