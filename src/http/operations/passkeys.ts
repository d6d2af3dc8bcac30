import { z } from 'zod';
import type { Config } from '../../config/schema.js';
import { passkeyAssertionBodySchema, passkeyRegistrationBodySchema, passkeyRenameBodySchema, passkeyRequestOptionsBodySchema } from '../routes/passkeys.js';
import { passkeyCreationOptionsSchema, passkeyListSchema, passkeyRequestOptionsSchema, passkeyViewSchema, signInResultSchema } from '../schemas.js';
import type { OperationSpec } from './spec.js';

const passkeysOn = (c: Config) => c.identity.webauthn.enabled;
const stepUp = 'Needs an access token whose `auth_time` is within `identity.reauthWindow` (a fresh sign-in, or `POST /v1/auth/reauthenticate`).';
const idParam = z.object({ id: z.string().meta({ description: 'The passkey id' }) });

/**
 * The OpenAPI operations of passkeys (docs/api.md#passkeys): registration and the list under
 * /v1/me/passkeys, sign-in under /v1/auth/passkey. Present only with identity.webauthn.enabled.
 */
export function passkeyOperations(): OperationSpec[] {
  return [
    {
      method: 'post',
      path: '/v1/me/passkeys/options',
      operationId: 'passkeyCreationOptions',
      tag: 'Passkeys',
      summary: 'Start registering a passkey: the options for `startRegistration({ optionsJSON })`',
      description: `${stepUp} The challenge is single-use, bound to the caller, and lives 5 minutes; the caller's passkeys are excluded.`,
      auth: 'bearer',
      responses: { 200: { description: 'PublicKeyCredentialCreationOptionsJSON', schema: passkeyCreationOptionsSchema } },
      errors: ['reauthentication_required', 'not_found', 'bad_config'],
      when: passkeysOn,
    },
    {
      method: 'post',
      path: '/v1/me/passkeys',
      operationId: 'registerPasskey',
      tag: 'Passkeys',
      summary: 'Finish registering a passkey: the answer of `startRegistration()`',
      description:
        `${stepUp} Checked by @simplewebauthn/server: the challenge (the caller's, unspent: else \`400 invalid_passkey_challenge\`), ` +
        'the type, an origin of `identity.webauthn.origins`, the RP ID hash, user presence, the algorithm and the attestation ' +
        '(`400 invalid_passkey_response` naming the check). A credential registered already is `409`.',
      auth: 'bearer',
      body: { schema: passkeyRegistrationBodySchema, required: true },
      responses: { 201: { description: 'The new passkey', schema: passkeyViewSchema } },
      errors: ['reauthentication_required', 'invalid_passkey_challenge', 'invalid_passkey_response', 'conflict', 'not_found', 'bad_config'],
      when: passkeysOn,
    },
    {
      method: 'get',
      path: '/v1/me/passkeys',
      operationId: 'listPasskeys',
      tag: 'Passkeys',
      summary: "The caller's passkeys",
      auth: 'bearer',
      responses: { 200: { description: 'Live passkeys, oldest first (never a public key or credential id)', schema: passkeyListSchema } },
      errors: [],
      when: passkeysOn,
    },
    {
      method: 'patch',
      path: '/v1/me/passkeys/{id}',
      operationId: 'renamePasskey',
      tag: 'Passkeys',
      summary: 'Rename a passkey',
      auth: 'bearer',
      params: idParam,
      body: { schema: passkeyRenameBodySchema, required: true },
      responses: { 200: { description: 'The passkey, renamed', schema: passkeyViewSchema } },
      errors: ['not_found'],
      when: passkeysOn,
    },
    {
      method: 'delete',
      path: '/v1/me/passkeys/{id}',
      operationId: 'removePasskey',
      tag: 'Passkeys',
      summary: 'Remove a passkey',
      description:
        `${stepUp} Refused (\`409 last_sign_in_method\`) when the account would have no way left to sign in:` +
        ' no password, no provider identity, no other passkey and no verified address. ' +
        'The sessions the passkey signed in (its sign-ins, and password logins it was the second step of) are revoked with it, ' +
        "in every region, the caller's own too when the passkey signed it in (its access token then gets `401`).",
      auth: 'bearer',
      params: idParam,
      responses: { 204: { description: 'Removed (in every region once replicated)' } },
      errors: ['reauthentication_required', 'not_found', 'last_sign_in_method'],
      when: passkeysOn,
    },
    {
      method: 'post',
      path: '/v1/auth/passkey/options',
      operationId: 'passkeyRequestOptions',
      tag: 'Passkeys',
      summary: 'Start signing in with a passkey (or a second step, or a step-up): the options for `startAuthentication({ optionsJSON })`',
      description:
        'No body (or `{}`): no credentials listed, so the browser offers its discoverable passkeys (usernameless, conditional UI). ' +
        "`{username}` or `{email}`: that user's passkeys — and for a user nobody has, or one without passkeys, the same answer " +
        'with credentials derived from the identifier: it tells nobody who exists or who has passkeys. ' +
        "`{mfaToken}`: a login's second step, the user's passkeys (`404` when the login does not offer a passkey). " +
        '`{"purpose": "reauthenticate"}` with `Authorization: Bearer <access token>`: a step-up of that session, the caller\'s passkeys ' +
        '(`401` without a valid token, `404` for an account without passkeys), answered at `POST /v1/auth/reauthenticate` with `passkey`. ' +
        'The challenge is single-use, bound to the user (and login, or session) it is for, and lives 5 minutes.',
      auth: 'bearer-or-none',
      body: { schema: passkeyRequestOptionsBodySchema, required: false },
      responses: { 200: { description: 'PublicKeyCredentialRequestOptionsJSON', schema: passkeyRequestOptionsSchema } },
      errors: ['invalid_mfa_token', 'account_disabled', 'wrong_region', 'not_found', 'bad_config'],
      when: passkeysOn,
    },
    {
      method: 'post',
      path: '/v1/auth/passkey/verify',
      operationId: 'verifyPasskey',
      tag: 'Passkeys',
      summary: 'Sign in with a passkey: the answer of `startAuthentication()`',
      description:
        'A credential authctl does not know (or that was removed), a signature that does not verify, a backup eligibility ' +
        'other than the registered one or a counter that went backwards: ' +
        '`401 passkey_rejected`; a challenge not issued for a sign-in, expired or used: `400 invalid_passkey_challenge`; ' +
        'a wrong type, origin or RP ID hash: `400 invalid_passkey_response`. Failures count toward the login limits (`429`). ' +
        'With user verification the tokens carry `amr` `["hwk"|"swk", "user"]` and `acr` `aal2`, whatever factors the user has; ' +
        'without, the passkey is a single first factor (`["hwk"]` or `["swk"]`, `aal1`) and a TOTP factor asks for a second step (an MfaChallenge).',
      auth: 'none',
      body: { schema: passkeyAssertionBodySchema, required: true },
      responses: { 200: { description: 'Logged in, or a second step to take', schema: signInResultSchema } },
      errors: [
        'passkey_rejected',
        'invalid_passkey_challenge',
        'invalid_passkey_response',
        'account_disabled',
        'wrong_region',
        'rate_limited',
        'unavailable',
        'bad_config',
      ],
      when: passkeysOn,
    },
  ];
}
