import { z } from 'zod';

/**
 * The WebAuthn responses a client sends (what `startRegistration` and `startAuthentication` of
 * @simplewebauthn/browser return, or a credential's `toJSON()`), bounded in size and shape here
 * (400 invalid_request); what they say is checked by @simplewebauthn/server
 * (src/core/passkeys/webauthn.ts). Members WebAuthn adds later are dropped, not refused.
 */

const base64url = (max: number, description: string) =>
  z
    .string()
    .max(max)
    .regex(/^[A-Za-z0-9_-]*$/, 'must be base64url (no padding)')
    .meta({ description });

// A credential id is at most 1023 bytes (WebAuthn §5.1); ML-DSA signatures and keys run to a few KB.
const credential = {
  id: base64url(1400, 'The credential id'),
  rawId: base64url(1400, 'The credential id again (as WebAuthn gives it)'),
  type: z.literal('public-key'),
  clientExtensionResults: z.record(z.string(), z.unknown()).default({}).meta({ description: 'Ignored' }),
};
const clientDataJSON = base64url(4096, 'The client data the browser signed over, with the challenge it echoes');

export const registrationResponseSchema = z
  .object({
    ...credential,
    response: z.object({
      clientDataJSON,
      attestationObject: base64url(12_288, 'The attestation object: the new credential and its public key'),
      transports: z.array(z.string().max(32)).max(16).optional().meta({ description: 'How the browser reaches the authenticator' }),
    }),
  })
  .meta({ id: 'RegistrationResponseJSON', description: 'What `startRegistration()` returned' });

export const authenticationResponseSchema = z
  .object({
    ...credential,
    response: z.object({
      clientDataJSON,
      authenticatorData: base64url(4096, 'The authenticator data: RP ID hash, flags, counter'),
      signature: base64url(8192, 'The signature over the authenticator data and the hash of the client data'),
      userHandle: base64url(128, "The user handle, for a discoverable passkey (the user id's 16 bytes)").nullish(),
    }),
  })
  .meta({ id: 'AuthenticationResponseJSON', description: 'What `startAuthentication()` returned' });
