import Router from '@koa/router';
import type { Context } from 'koa';
import { z } from 'zod';
import type { Principal } from '../../core/auth/auth-service.js';
import type { ChallengeProof } from '../../core/email/email-flows.js';
import type { Container } from '../../container.js';
import { AppError } from '../../platform/errors.js';
import { requireBearer } from '../middleware/bearer.js';
import { jsonOrFormBody } from '../middleware/form-body.js';
import { jsonBody } from '../middleware/json-body.js';
import { resetPage, resultPage, verifyPage } from '../pages.js';
import { parseBody } from '../validate.js';
import { clientMeta, principalName } from './auth.js';

const token = z.string().min(1).max(200).meta({ description: 'The token of the link (`?token=`)' });
const code = z
  .string()
  .regex(/^\d{6}$/, 'must be the 6-digit code')
  .meta({ description: 'The 6-digit code of the message', example: '123456' });
const email = z.string().min(1).max(320).meta({ example: 'alice@example.com' });
/** The address and code fields, shared with the e-mailed sign-in codes (./otp.ts). */
export { code as codeField, email as addressField };
const newPassword = z.string().min(1).max(1024).meta({ description: 'The password policy applies' });
export const emailProofSchema = z
  .union([z.strictObject({ token }), z.strictObject({ email, code })], { error: 'send {token} (from the link) or {email, code}' })
  .meta({ id: 'EmailProof' });
export const resetBodySchema = z
  .union([z.strictObject({ token, newPassword }), z.strictObject({ email, code, newPassword })], {
    error: 'send {token, newPassword} or {email, code, newPassword}',
  })
  .meta({ id: 'PasswordReset' });
export const anonymousSendSchema = z.strictObject({ email }).meta({ description: 'Without a Bearer token: the address to verify' });
export const forgotBodySchema = z
  .union([z.strictObject({ email }), z.strictObject({ username: z.string().min(1).max(256) })], { error: 'send {email} or {username}' })
  .meta({ id: 'ForgotPassword' });
export const changeEmailBodySchema = z.strictObject({ email, currentPassword: z.string().min(1).max(1024) }).meta({ id: 'EmailChange' });
/** The query of a link: `?token=` (a missing or oversized one gets a page saying the link is incomplete). */
export const linkQuerySchema = z.object({ token: token.optional() });

function toProof(body: { token: string } | { email: string; code: string }): ChallengeProof {
  return 'token' in body ? { token: body.token } : { email: body.email, code: body.code };
}

/** The `?token=` of a link, or a page saying the link is incomplete. */
function linkToken(ctx: Context): string | undefined {
  const parsed = linkQuerySchema.safeParse({ token: ctx.query.token });
  return parsed.success ? parsed.data.token : undefined;
}

/**
 * The e-mail flows (docs/api.md#e-mail-flows): verification, password reset, address change.
 * Anonymous requests answer 202 whatever they name; codes and links are used by POST only (a GET
 * on a link shows a page whose button POSTs, so link scanners never spend a token).
 */
export function emailRoutes(c: Container): Router {
  const router = new Router();
  const json = jsonBody(c.config.http.bodyLimit);
  const jsonOrForm = jsonOrFormBody(c.config.http.bodyLimit);
  const bearer = requireBearer(c.auth);
  const flows = c.emailFlows;
  const product = c.config.mail.productName;

  router.post('/v1/auth/email/verify/send', json, async function sendVerification(ctx) {
    if (ctx.get('authorization') !== '') {
      await bearer(ctx, async () => {
        await flows.sendVerification((ctx.state.principal as Principal).userId, clientMeta(ctx).ip);
      });
    } else {
      const { email: address } = parseBody(anonymousSendSchema, ctx.state.body);
      await flows.request('verify', { email: address }, clientMeta(ctx).ip);
    }
    ctx.status = 202;
    ctx.body = { status: 'accepted' };
  });

  router.get('/v1/auth/email/verify', function verifyLink(ctx) {
    if (!flows.enabled) throw new AppError('not_found', 'e-mail addresses are not enabled on this server');
    const value = linkToken(ctx);
    if (value === undefined)
      return resultPage(ctx, 400, `${product}: confirm your e-mail address`, 'This link is incomplete: open the whole link from the message.');
    verifyPage(ctx, value, product);
  });

  router.post('/v1/auth/email/verify', jsonOrForm, async function verify(ctx) {
    const form = ctx.state.form === true;
    try {
      await flows.verify(toProof(parseBody(emailProofSchema, ctx.state.body)));
    } catch (err) {
      if (!form || !(err instanceof AppError)) throw err;
      return resultPage(ctx, err.status, `${product}: confirm your e-mail address`, `${err.detail}.`);
    }
    if (form) return resultPage(ctx, 200, `${product}: address confirmed`, 'Your e-mail address is confirmed. You can close this page.');
    ctx.status = 204;
  });

  router.post('/v1/auth/password/forgot', json, async function forgot(ctx) {
    const who = parseBody(forgotBodySchema, ctx.state.body);
    await flows.request('reset', who, clientMeta(ctx).ip);
    ctx.status = 202;
    ctx.body = { status: 'accepted' };
  });

  router.get('/v1/auth/password/reset', function resetLink(ctx) {
    if (!flows.enabled) throw new AppError('not_found', 'e-mail addresses are not enabled on this server');
    const value = linkToken(ctx);
    if (value === undefined) return resultPage(ctx, 400, `${product}: choose a new password`, 'This link is incomplete: open the whole link from the message.');
    resetPage(ctx, value, product);
  });

  router.post('/v1/auth/password/reset', jsonOrForm, async function reset(ctx) {
    const form = ctx.state.form === true;
    try {
      const body = parseBody(resetBodySchema, ctx.state.body);
      await flows.resetPassword(toProof(body), body.newPassword);
    } catch (err) {
      if (!form || !(err instanceof AppError)) throw err;
      const fields = ctx.state.body as Record<string, string>;
      // A weak password keeps the form (the link is still good); anything else ends here.
      if (err.code === 'weak_password' || err.code === 'invalid_request') return resetPage(ctx, fields.token ?? '', product, `${err.detail}.`);
      return resultPage(ctx, err.status, `${product}: choose a new password`, `${err.detail}.`);
    }
    if (form)
      return resultPage(ctx, 200, `${product}: password changed`, 'Your password is changed and every session is signed out. Sign in with the new password.');
    ctx.status = 204;
  });

  router.post('/v1/me/email', bearer, json, async function changeEmail(ctx) {
    const body = parseBody(changeEmailBodySchema, ctx.state.body);
    const principal = ctx.state.principal as Principal;
    // The current password is checked: under the login limits, like a password change.
    await c.throttle.guard(principalName(principal), ctx.ip, () => flows.requestChange(principal.userId, body.email, body.currentPassword, clientMeta(ctx).ip));
    ctx.status = 202;
    ctx.body = { status: 'accepted' };
  });

  return router;
}
