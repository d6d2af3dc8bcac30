import { mfaVerifyBodySchema, reauthenticateBodySchema } from '../routes/two-step.js';
import { accessTokenSchema, tokenResponseSchema } from '../schemas.js';
import type { OperationSpec } from './spec.js';

/** The OpenAPI operations of the second step of a login and step-up: POST /v1/auth/mfa/verify and /v1/auth/reauthenticate. */
export function twoStepOperations(): OperationSpec[] {
  return [
    {
      method: 'post',
      path: '/v1/auth/mfa/verify',
      operationId: 'verifySecondFactor',
      tag: 'MFA',
      summary: "A login's second step: the mfaToken and a TOTP code, a recovery code or a passkey",
      description:
        'The `mfaToken` of the first step (single-use, `identity.mfaTokenTtl` seconds) and exactly one of `code` (TOTP), `recoveryCode` ' +
        'and `passkey` (the answer of `startAuthentication()` to `POST /v1/auth/passkey/options` with this mfaToken, when `factors` offers `passkey`). ' +
        "A wrong code is `400 invalid_code`, a passkey that proves nothing `401 passkey_rejected`; both count toward the account's login limits, " +
        'with its passwords (`429` past them), and the mfaToken stays good for another try. ' +
        'The tokens carry `amr` `["pwd", "otp", "mfa"]` (a TOTP code), `["pwd", "mfa"]` (a recovery code) ' +
        'or `["pwd", "hwk"|"swk", "user"?, "mfa"]` (a passkey) ' +
        'and `acr` `aal2`. `404` with `identity.mfa: off`, and for a passkey when the login offers none.',
      auth: 'none',
      body: { schema: mfaVerifyBodySchema, required: true },
      responses: { 200: { description: 'Logged in', schema: tokenResponseSchema } },
      errors: [
        'invalid_mfa_token',
        'invalid_code',
        'passkey_rejected',
        'invalid_passkey_challenge',
        'invalid_passkey_response',
        'account_disabled',
        'wrong_region',
        'rate_limited',
        'not_found',
        'unavailable',
      ],
    },
    {
      method: 'post',
      path: '/v1/auth/reauthenticate',
      operationId: 'reauthenticate',
      tag: 'MFA',
      summary: 'Renew the authentication of the current session (step-up)',
      description:
        'The password, and with an active second factor also `code` (or `recoveryCode`; without: `400` naming `code`); or `passkey`, ' +
        'the answer of `startAuthentication()` to `POST /v1/auth/passkey/options` with `{"purpose": "reauthenticate"}` and the same access token ' +
        "(one of the caller's passkeys, the challenge of this session's step-up: else `401 passkey_rejected` or `400 invalid_passkey_challenge`). " +
        'Checked under the login limits. ' +
        'The session\'s `auth_time` becomes now and its `amr` what was shown (`["hwk"|"swk", "user"?]` for a passkey, `aal2` with `user`): ' +
        'the answer is a new access token of the same session ' +
        '(the refresh token is unchanged, and later refreshes carry the new `auth_time`). ' +
        'An account without a password (created by an e-mailed code) steps up with a passkey, or logs in again; one whose only second factor is a ' +
        'passkey (`identity.mfa: required`) steps up with the passkey (the password alone: `400`). For an account whose logins ask a second ' +
        'factor after a passkey, the passkey must verify its user (`401 passkey_rejected` otherwise).',
      auth: 'bearer',
      body: { schema: reauthenticateBodySchema, required: true },
      responses: { 200: { description: 'Reauthenticated', schema: accessTokenSchema } },
      errors: [
        'invalid_credentials',
        'invalid_code',
        'passkey_rejected',
        'invalid_passkey_challenge',
        'invalid_passkey_response',
        'account_disabled',
        'rate_limited',
        'not_found',
        'unavailable',
      ],
    },
  ];
}
