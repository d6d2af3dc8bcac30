import { z } from 'zod';
import type { Config } from '../../config/schema.js';
import { linkAuthorizeQuerySchema, linkBodySchema } from '../routes/identities.js';
import { linkAuthorizationSchema, linkedIdentityListSchema, linkedIdentitySchema } from '../schemas.js';
import type { OperationSpec } from './spec.js';

const providersOn = (c: Config) => c.identity.providers.length > 0;
const stepUp = 'Needs an access token whose `auth_time` is within `identity.reauthWindow` (`POST /v1/auth/reauthenticate`).';

/** The OpenAPI operations of the caller's provider identities: /v1/me/identities*. */
export function identityOperations(): OperationSpec[] {
  return [
    {
      method: 'get',
      path: '/v1/me/identities',
      operationId: 'listIdentities',
      tag: 'Providers',
      summary: "The provider accounts linked to the caller's account",
      auth: 'bearer',
      responses: { 200: { description: 'Live identities, oldest first', schema: linkedIdentityListSchema } },
      errors: [],
      when: providersOn,
    },
    {
      method: 'get',
      path: '/v1/me/identities/{provider}/authorize',
      operationId: 'authorizeLink',
      tag: 'Providers',
      summary: 'Start linking a provider account: the provider URL to send the browser to',
      description:
        `${stepUp} A browser navigation cannot carry the Bearer header, so the app fetches this and then navigates to \`url\`.` +
        ' After the provider, the browser comes back to `redirect_to?code=…`; the same user then finishes with `POST /v1/me/identities`' +
        ' and the verifier of `code_challenge`.',
      auth: 'bearer',
      params: z.object({ provider: z.string().meta({ description: 'The id of a provider in `identity.providers`' }) }),
      query: linkAuthorizeQuerySchema,
      responses: { 200: { description: 'Where to send the browser', schema: linkAuthorizationSchema } },
      errors: ['invalid_request', 'reauthentication_required', 'not_found', 'redirect_not_allowed', 'provider_error', 'provider_unavailable'],
      when: providersOn,
    },
    {
      method: 'post',
      path: '/v1/me/identities',
      operationId: 'linkIdentity',
      tag: 'Providers',
      summary: 'Finish linking: the link code and the app’s PKCE verifier link the provider account to the caller',
      description:
        'The code is single-use, lives 60 s, and works only for the user who started the link and with the verifier of its challenge.' +
        ' Linking the caller’s own identity again answers it again.',
      auth: 'bearer',
      body: { schema: linkBodySchema, required: true },
      responses: { 201: { description: 'The linked identity', schema: linkedIdentitySchema } },
      errors: ['invalid_oidc_code', 'identity_taken', 'provider_error', 'provider_unavailable'],
      when: providersOn,
    },
    {
      method: 'delete',
      path: '/v1/me/identities/{id}',
      operationId: 'unlinkIdentity',
      tag: 'Providers',
      summary: 'Unlink a provider account',
      description:
        `${stepUp} Refused (\`409 last_sign_in_method\`) when the account would have no way left to sign in:` +
        ' no password, no other identity and no verified address.' +
        ' Unlinking the last identity of a provider revokes the sessions signed in through that provider (the caller’s too, if it is one).',
      auth: 'bearer',
      params: z.object({ id: z.string().meta({ description: 'The identity id' }) }),
      responses: { 204: { description: 'Unlinked (in every region once replicated)' } },
      errors: ['reauthentication_required', 'not_found', 'last_sign_in_method'],
      when: providersOn,
    },
  ];
}
