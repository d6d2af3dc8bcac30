import Router from '@koa/router';
import { z } from 'zod';
import type { Container } from '../../container.js';
import { AppError } from '../../platform/errors.js';
import { jsonBody } from '../middleware/json-body.js';
import { parseBody } from '../validate.js';
import { clientMeta, throttleName } from './auth.js';
import { addressField, codeField } from './email.js';

export const otpSendBodySchema = z
  .strictObject({ email: addressField.meta({ description: 'The address to mail a sign-in code to (compared case-insensitively)' }) })
  .meta({ id: 'OtpSend', example: { email: 'alice@example.com' } });
export const otpVerifyBodySchema = z
  .strictObject({ email: addressField.meta({ description: 'The address the code was mailed to' }), code: codeField })
  .meta({ id: 'OtpVerify', example: { email: 'alice@example.com', code: '123456' } });

/**
 * Sign-in by e-mailed code (docs/api.md#e-mailed-sign-in-codes): `/send` answers 202 whatever
 * address it names (a worker looks it up), `/verify` spends the code under the login limits of
 * the address and ends like every login's first step, in AuthService.signIn.
 */
export function otpRoutes(c: Container): Router {
  const router = new Router({ prefix: '/v1/auth/otp' });
  const json = jsonBody(c.config.http.bodyLimit);
  const flows = c.emailFlows;

  router.post('/send', json, async function sendSignInCode(ctx) {
    const { email } = parseBody(otpSendBodySchema, ctx.state.body);
    await flows.request('login', { email }, clientMeta(ctx).ip);
    ctx.status = 202;
    ctx.body = { status: 'accepted' };
  });

  router.post('/verify', json, async function verifySignInCode(ctx) {
    const { email, code } = parseBody(otpVerifyBodySchema, ctx.state.body);
    if (!flows.enabled) throw new AppError('not_found', 'e-mail addresses are not enabled on this server (identity.email is "off")');
    // A server that cannot sign says so (503) before it spends the code, as login does before it
    // checks a password.
    c.keys.signingKey();
    // The address's login limits: a wrong code counts like a wrong password of that account.
    ctx.body = await c.throttle.guard(throttleName({ email }), ctx.ip, async () =>
      c.auth.signIn(await flows.signInWithCode(email, code, (user) => c.replication.loginPolicy.assertHome(user.homeRegion)), 'otp', clientMeta(ctx)),
    );
  });

  return router;
}
