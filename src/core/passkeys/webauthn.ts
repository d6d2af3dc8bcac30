import {
  SimpleWebAuthnError,
  verifyAuthenticationResponse,
  verifyRegistrationResponse,
  type AuthenticationResponseJSON,
  type RegistrationResponseJSON,
} from '@simplewebauthn/server';
import { decodeClientDataJSON, isoBase64URL, parseAuthenticatorData } from '@simplewebauthn/server/helpers';
import { AppError } from '../../platform/errors.js';

/** Who the passkeys belong to (`identity.webauthn`, rpName resolved). */
export interface RelyingParty {
  rpId: string;
  rpName: string;
  origins: string[];
}

/**
 * A ceremony refused: the problem the client gets, and `reason` — which check it failed — for
 * `passkey.failed` (never anything the response held).
 */
export class PasskeyRefusal extends AppError {
  constructor(
    code: 'invalid_passkey_response' | 'passkey_rejected',
    readonly reason: string,
    detail: string,
  ) {
    super(code, detail);
  }
}

/**
 * The COSE algorithms a passkey may use: EdDSA, ES256 and RS256 — what every authenticator
 * offers. Named rather than left to the library's default, which adds ML-DSA-44 where the runtime
 * has it (Node's is experimental, and probing for it prints a warning in every server's output).
 */
export const PASSKEY_ALGORITHMS = [-8, -7, -257];

export const invalidResponse = (reason: string, why: string) =>
  new PasskeyRefusal('invalid_passkey_response', reason, `the passkey response is not valid: ${why}`);
export const rejected = (reason: string, why: string) => new PasskeyRefusal('passkey_rejected', reason, `the passkey was not accepted: ${why}`);

/**
 * The challenge a response echoes, from its `clientDataJSON` (for `PasskeyChallenges.open`);
 * `invalid_passkey_response` when that is not base64url of a JSON object.
 */
export function echoedChallenge(response: { response: { clientDataJSON: string } }): unknown {
  let clientData: unknown;
  try {
    clientData = decodeClientDataJSON(response.response.clientDataJSON);
  } catch {
    throw invalidResponse('malformed', 'clientDataJSON is not base64url-encoded JSON');
  }
  if (typeof clientData !== 'object' || clientData === null) throw invalidResponse('malformed', 'clientDataJSON is not a JSON object');
  return (clientData as { challenge?: unknown }).challenge;
}

/** What a verified registration yields for the passkey's row. */
export interface RegisteredCredential {
  credentialId: string;
  publicKey: string;
  counter: number;
  transports: string[];
  aaguid: string;
  backupEligible: boolean;
  backedUp: boolean;
}

/**
 * Checks a registration (an attestation) with `@simplewebauthn/server`: type `webauthn.create`,
 * the `challenge` (opened by the caller: this checks the response echoes it), an origin of
 * `identity.webauthn.origins`, the RP ID hash, user presence (user verification is preferred, not
 * required), an accepted algorithm, and the attestation statement (format `none` or a verifiable
 * one). `invalid_passkey_response` naming the check that failed.
 */
export async function checkRegistration(rp: RelyingParty, response: RegistrationResponseJSON, challenge: string): Promise<RegisteredCredential> {
  const verification = await refusing(() =>
    verifyRegistrationResponse({
      response,
      expectedChallenge: challenge,
      expectedOrigin: rp.origins,
      expectedRPID: rp.rpId,
      requireUserVerification: false,
      supportedAlgorithmIDs: PASSKEY_ALGORITHMS,
    }),
  );
  if (!verification.verified) throw invalidResponse('attestation', 'its attestation statement does not verify');
  const info = verification.registrationInfo;
  return {
    credentialId: info.credential.id,
    publicKey: isoBase64URL.fromBuffer(info.credential.publicKey),
    counter: info.credential.counter,
    transports: info.credential.transports ?? [],
    aaguid: info.aaguid,
    backupEligible: info.credentialDeviceType === 'multiDevice',
    backedUp: info.credentialBackedUp,
  };
}

/** What a verified assertion says: the authenticator's counter, whether it verified its user, and its backup eligibility and state. */
export interface Assertion {
  counter: number;
  userVerified: boolean;
  /** The BE flag: fixed when the credential was made, so it must be what its registration said (WebAuthn §7.2). */
  backupEligible: boolean;
  backedUp: boolean;
}

/**
 * Checks an assertion with `@simplewebauthn/server` against a stored passkey: type
 * `webauthn.get`, the `challenge` (opened by the caller), an origin of
 * `identity.webauthn.origins`, the RP ID hash and user presence — `invalid_passkey_response`
 * naming the check — and the signature over the authenticator data and the client data under the
 * passkey's public key: `passkey_rejected`. The signature counter is not judged here: the
 * library is given counter 0 (it then judges nothing), and the caller compares the counter it
 * returns with the stored one itself.
 */
export async function checkAssertion(
  rp: RelyingParty,
  response: AuthenticationResponseJSON,
  challenge: string,
  passkey: { credentialId: string; publicKey: string },
): Promise<Assertion> {
  // Parsed first, so that what is left to fail below is a check of the ceremony or the signature.
  try {
    parseAuthenticatorData(isoBase64URL.toBuffer(response.response.authenticatorData));
  } catch {
    throw invalidResponse('malformed', 'authenticatorData cannot be parsed');
  }
  const verification = await refusing(
    () =>
      verifyAuthenticationResponse({
        response,
        expectedChallenge: challenge,
        expectedOrigin: rp.origins,
        expectedRPID: rp.rpId,
        credential: { id: passkey.credentialId, publicKey: isoBase64URL.toBuffer(passkey.publicKey), counter: 0 },
        requireUserVerification: false,
      }),
    () => rejected('signature', 'the signature does not verify'),
  );
  if (!verification.verified) throw rejected('signature', 'the signature does not verify');
  const info = verification.authenticationInfo;
  return {
    counter: info.newCounter,
    userVerified: info.userVerified,
    backupEligible: info.credentialDeviceType === 'multiDevice',
    backedUp: info.credentialBackedUp,
  };
}

/**
 * Runs a check of the library; what it throws becomes a problem that names the check, never its
 * message (which quotes what the response held) nor a stack trace. `otherwise` is what an error
 * no check accounts for becomes (an assertion's: its signature, which cannot even be parsed).
 */
async function refusing<T>(check: () => Promise<T>, otherwise?: () => PasskeyRefusal): Promise<T> {
  try {
    return await check();
  } catch (err) {
    throw refusalOf(err) ?? otherwise?.() ?? invalidResponse('malformed', 'it cannot be parsed');
  }
}

/** The check an error of the library reports, by its code (or, for its message-only errors, its wording). */
function refusalOf(err: unknown): PasskeyRefusal | undefined {
  if (err instanceof SimpleWebAuthnError) {
    if (err.code === 'UNEXPECTED_ORIGIN') return invalidResponse('origin', 'its origin is not one of identity.webauthn.origins');
    if (err.code === 'UNEXPECTED_RP_ID') return invalidResponse('rp_id', 'its RP ID hash is not that of identity.webauthn.rpId');
    if (err.code === 'RUNTIME_NO_PQC_SUPPORT') return invalidResponse('algorithm', 'its key algorithm is not supported by this server');
    return invalidResponse('malformed', 'it cannot be parsed');
  }
  if (!(err instanceof Error)) return undefined;
  if (err.name === 'InvalidBackupFlags') return invalidResponse('backup_flags', 'its flags say a device-bound credential is backed up');
  const message = err.message;
  if (/credential type/i.test(message)) return invalidResponse('type', 'its type is not "public-key"');
  if (/response type/i.test(message)) return invalidResponse('type', "its clientDataJSON's type is not this ceremony's");
  if (/challenge/i.test(message)) return invalidResponse('challenge', 'it does not echo the challenge of the options');
  if (/top origin|cross-origin/i.test(message)) return invalidResponse('origin', 'it comes from a frame of another origin');
  if (/not present/i.test(message)) return invalidResponse('user_presence', 'the authenticator did not see its user present');
  if (/alg/i.test(message)) return invalidResponse('algorithm', 'its key algorithm is not one this server accepts');
  if (/attestation/i.test(message)) return invalidResponse('attestation', 'its attestation statement is not one this server accepts');
  if (/base64url|credential ID|clientDataJSON|tokenBinding|userHandle|authenticator data|public key/i.test(message)) {
    return invalidResponse('malformed', 'it cannot be parsed');
  }
  return undefined;
}
