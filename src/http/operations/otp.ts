import type { Config } from '../../config/schema.js';
import { otpSendBodySchema, otpVerifyBodySchema } from '../routes/otp.js';
import { acceptedSchema, signInResultSchema } from '../schemas.js';
import type { OperationSpec } from './spec.js';

/** The OpenAPI operations of E-mailed sign-in codes: POST /v1/auth/otp/send and /v1/auth/otp/verify. */
export function otpOperations(config: Config): OperationSpec[] {
  const { otpTtl, otpMaxAttempts } = config.identity;
  return [
    {
      method: 'post',
      path: '/v1/auth/otp/send',
      operationId: 'sendSignInCode',
      tag: 'MFA',
      summary: 'Mail a 6-digit sign-in code',
      description:
        'Always `202`, with the same body and work whether or not the address has an account (a worker looks it up).' +
        ` The code lives ${otpTtl} s (\`identity.otpTtl\`) and a newer one replaces it.` +
        ' An address without an account is sent nothing, unless `identity.otpSignup` is on (then the code creates the account);' +
        ' a disabled account is sent nothing. One message per address per `identity.sendInterval`, `identity.sendsPerHour` an hour;' +
        ' over a limit the answer is still `202` and nothing is sent. `404` while `identity.email` is "off".',
      auth: 'none',
      body: { schema: otpSendBodySchema, required: true },
      responses: { 202: { description: 'Accepted', schema: acceptedSchema } },
      errors: ['not_found', 'unavailable'],
    },
    {
      method: 'post',
      path: '/v1/auth/otp/verify',
      operationId: 'verifySignInCode',
      tag: 'MFA',
      summary: 'Sign in with an e-mailed code',
      description:
        'Spends the newest code mailed to the address and logs in (`amr: ["otp"]`); the address is marked verified.' +
        ` A wrong code counts: after ${otpMaxAttempts} (\`identity.otpMaxAttempts\`) the code is dead, and wrong codes count toward the` +
        " address's login limits like wrong passwords (`429` + `Retry-After`). With a second factor enrolled, the answer is the second step to take.",
      auth: 'none',
      body: { schema: otpVerifyBodySchema, required: true },
      responses: { 200: { description: 'Logged in, or the second step to take (`mfaRequired`)', schema: signInResultSchema } },
      errors: ['invalid_code', 'account_disabled', 'wrong_region', 'rate_limited', 'not_found', 'unavailable'],
    },
  ];
}
