import { z } from 'zod';
import type { Config } from '../../config/schema.js';
import { totpConfirmBodySchema } from '../routes/mfa.js';
import { mfaOverviewSchema, recoveryCodesSchema, totpConfirmedSchema, totpEnrolmentSchema } from '../schemas.js';
import type { OperationSpec } from './spec.js';

const mfaOn = (c: Config) => c.identity.mfa !== 'off';
const enrolmentAuth =
  ' Bearer: an access token whose `auth_time` is within `identity.reauthWindow` (else `403 reauthentication_required`),' +
  ' or, with `identity.mfa: required`, the `mfaToken` of a login whose user has no factor yet (`Authorization: Bearer mfa_…`).';

/** The OpenAPI operations of TOTP factors and recovery codes of the caller: /v1/me/mfa/*. */
export function factorOperations(): OperationSpec[] {
  return [
    {
      method: 'post',
      path: '/v1/me/mfa/totp',
      operationId: 'startTotp',
      tag: 'MFA',
      summary: 'Start a TOTP enrolment: a secret, its otpauth:// URI and a QR code',
      description:
        'A pending factor that a first code confirms within 10 minutes; a new start replaces a pending one. `409` while a TOTP factor is active.' +
        enrolmentAuth,
      auth: 'bearer',
      responses: { 201: { description: 'The pending factor, and what an authenticator app needs (shown once)', schema: totpEnrolmentSchema } },
      errors: ['reauthentication_required', 'invalid_mfa_token', 'conflict', 'not_found', 'bad_config'],
      when: mfaOn,
    },
    {
      method: 'post',
      path: '/v1/me/mfa/totp/confirm',
      operationId: 'confirmTotp',
      tag: 'MFA',
      summary: 'Confirm a TOTP enrolment with a first code: the factor is active, and ten recovery codes are issued',
      description:
        'Wrong codes count toward the login limits of the account (`429` + `Retry-After`).' +
        ' With an mfaToken, the answer also carries the tokens of that login.' +
        enrolmentAuth,
      auth: 'bearer',
      body: { schema: totpConfirmBodySchema, required: true },
      responses: { 200: { description: 'Active; the recovery codes are shown this once', schema: totpConfirmedSchema } },
      errors: ['invalid_code', 'not_found', 'conflict', 'reauthentication_required', 'invalid_mfa_token', 'rate_limited', 'bad_config'],
      when: mfaOn,
    },
    {
      method: 'get',
      path: '/v1/me/mfa',
      operationId: 'listFactors',
      tag: 'MFA',
      summary: "The caller's second factors and how many recovery codes are left",
      auth: 'bearer',
      responses: { 200: { description: 'Factors (never their secrets)', schema: mfaOverviewSchema } },
      errors: [],
      when: mfaOn,
    },
    {
      method: 'delete',
      path: '/v1/me/mfa/totp/{id}',
      operationId: 'removeTotp',
      tag: 'MFA',
      summary: 'Remove a TOTP factor',
      description:
        'Needs an access token whose `auth_time` is within `identity.reauthWindow` (`POST /v1/auth/reauthenticate`).' +
        ' With no active factor left, the recovery codes end too.',
      auth: 'bearer',
      params: z.object({ id: z.string().meta({ description: 'The factor id' }) }),
      responses: { 204: { description: 'Removed (in every region once replicated)' } },
      errors: ['reauthentication_required', 'not_found'],
      when: mfaOn,
    },
    {
      method: 'post',
      path: '/v1/me/mfa/recovery-codes',
      operationId: 'regenerateRecoveryCodes',
      tag: 'MFA',
      summary: 'Ten new recovery codes; the old ones stop working',
      description: 'Needs an access token whose `auth_time` is within `identity.reauthWindow`, and an active TOTP factor (`409` without).',
      auth: 'bearer',
      responses: { 200: { description: 'The new codes, shown this once', schema: recoveryCodesSchema } },
      errors: ['reauthentication_required', 'conflict'],
      when: mfaOn,
    },
  ];
}
