import Router from '@koa/router';
import type { AuthenticationResponseJSON } from '@simplewebauthn/server';
import { validate as isUuid } from 'uuid';
import { z } from 'zod';
import type { Principal } from '../../core/auth/auth-service.js';
import type { Container } from '../../container.js';
import { AppError } from '../../platform/errors.js';
import { requireBearer } from '../middleware/bearer.js';
import { jsonBody } from '../middleware/json-body.js';
import { requireRecentAuth } from '../middleware/recent-auth.js';
import { parseBody } from '../validate.js';
import { authenticationResponseSchema, registrationResponseSchema } from '../webauthn-schemas.js';
import { clientMeta, emailField, usernameField, userThrottleName } from './auth.js';
import { mfaToken } from './two-step.js';

const passkeyName = z
  .string()
  .trim()
  .min(1)
  .max(64)
  .regex(/^[^\p{Cc}\p{Cf}]*$/u, 'may not contain control or format characters')
  .meta({ description: 'What the user calls the passkey: 1–64 characters', example: 'Work laptop' });

/** What the examples' WebAuthn responses share (shortened: real values are longer). */
const credentialExample = { id: 'Vt8c0L9yM4fN1b6oQ2xH7w', rawId: 'Vt8c0L9yM4fN1b6oQ2xH7w', type: 'public-key', clientExtensionResults: {} };

export const passkeyRegistrationBodySchema = z
  .strictObject({
    response: registrationResponseSchema,
    name: passkeyName.optional().meta({ description: 'Default: "Passkey <n>"' }),
  })
  .meta({
    id: 'PasskeyRegistration',
    example: {
      response: {
        ...credentialExample,
        response: {
          clientDataJSON: 'eyJ0eXBlIjoid2ViYXV0aG4uY3JlYXRlIiwi',
          attestationObject: 'o2NmbXRkbm9uZWdhdHRTdG10oGhhdXRoRGF0YVjF',
          transports: ['internal'],
        },
      },
      name: 'Work laptop',
    },
  });

export const passkeyRenameBodySchema = z.strictObject({ name: passkeyName }).meta({ id: 'PasskeyRename', example: { name: 'Work laptop' } });

export const passkeyRequestOptionsBodySchema = z
  .union(
    [
      z.strictObject({ username: usernameField }),
      z.strictObject({ email: emailField }),
      z.strictObject({ mfaToken: mfaToken.meta({ description: "A login's second step: the mfaToken of its first" }) }),
      z.strictObject({
        purpose: z.literal('reauthenticate').meta({ description: "A step-up of the session of the request's Bearer access token" }),
      }),
      z.strictObject({}),
    ],
    { error: 'send {}, {username}, {email}, {mfaToken} or {purpose: "reauthenticate"}' },
  )
  .optional()
  .meta({
    id: 'PasskeyRequestOptionsRequest',
    description: 'Nothing (usernameless), a username, an address, the mfaToken of a login, or `{purpose: "reauthenticate"}` with a Bearer access token',
    example: {},
  });

export const passkeyAssertionBodySchema = z.strictObject({ response: authenticationResponseSchema }).meta({
  id: 'PasskeyAssertion',
  example: {
    response: {
      ...credentialExample,
      response: {
        clientDataJSON: 'eyJ0eXBlIjoid2ViYXV0aG4uZ2V0Iiwi',
        authenticatorData: 'SZYN5YgOjGh0NBcPZHZgW4_krrmihjLHmVzzuoMdl2MFAAAAAQ',
        signature: 'MEUCIQDxbm9uZQ',
        userHandle: 'AZLwxH0efDqbHj8qHA1OXw',
      },
    },
  },
});

/**
 * Passkeys (docs/api.md#passkeys): registration, the list, renaming and removal under
 * /v1/me/passkeys; sign-in (with or without a username, or a two-step login's second step) and
 * the options of a step-up under /v1/auth/passkey. With `identity.webauthn.enabled` off the routes do not exist (404 like any
 * unknown path).
 */
export function passkeyRoutes(c: Container): Router {
  const router = new Router();
  if (!c.passkeys.enabled) return router;
  const body = jsonBody(c.config.http.bodyLimit);
  const bearer = requireBearer(c.auth);
  const recent = requireRecentAuth({ windowSeconds: c.config.identity.reauthWindow, clock: c.clock });
  const userId = (principal: unknown) => (principal as Principal).userId;
  const passkeyId = (id: string | undefined) => {
    if (!isUuid(id ?? '')) throw new AppError('not_found', 'no such passkey');
    return id!.toLowerCase();
  };

  router.post('/v1/me/passkeys/options', bearer, recent, async function passkeyCreationOptions(ctx) {
    ctx.body = await c.passkeys.registrationOptions(userId(ctx.state.principal));
  });

  router.post('/v1/me/passkeys', bearer, recent, body, async function registerPasskey(ctx) {
    const input = parseBody(passkeyRegistrationBodySchema, ctx.state.body);
    const view = await c.passkeys.register(userId(ctx.state.principal), input.response, input.name);
    ctx.status = 201;
    ctx.body = view;
  });

  router.get('/v1/me/passkeys', bearer, async function listPasskeys(ctx) {
    ctx.body = { passkeys: await c.passkeys.list(userId(ctx.state.principal)) };
  });

  router.patch('/v1/me/passkeys/:id', bearer, body, async function renamePasskey(ctx) {
    const id = passkeyId(ctx.params.id);
    const { name } = parseBody(passkeyRenameBodySchema, ctx.state.body);
    ctx.body = await c.passkeys.rename(userId(ctx.state.principal), id, name);
  });

  router.delete('/v1/me/passkeys/:id', bearer, recent, async function removePasskey(ctx) {
    await c.passkeys.remove(userId(ctx.state.principal), passkeyId(ctx.params.id));
    ctx.status = 204;
  });

  router.post('/v1/auth/passkey/options', body, async function passkeyRequestOptions(ctx) {
    const input = parseBody(passkeyRequestOptionsBodySchema, ctx.state.body) ?? {};
    if ('mfaToken' in input) {
      ctx.body = await c.passkeys.secondStepOptions(await c.auth.pendingLogin(input.mfaToken, 'verify'));
      return;
    }
    if ('purpose' in input) {
      // A step-up is the caller's: their access token says whose passkeys, and which session.
      await bearer(ctx, async () => {
        ctx.body = await c.passkeys.reauthenticationOptions(ctx.state.principal as Principal);
      });
      return;
    }
    ctx.body = await c.passkeys.loginOptions(input);
  });

  router.post('/v1/auth/passkey/verify', body, async function verifyPasskey(ctx) {
    const { response } = parseBody(passkeyAssertionBodySchema, ctx.state.body);
    ctx.body = await c.passkeys.signIn(response as AuthenticationResponseJSON, clientMeta(ctx), (user, attempt) =>
      c.throttle.guard(user && userThrottleName(user), ctx.ip, attempt),
    );
  });

  return router;
}
