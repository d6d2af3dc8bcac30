import { z } from 'zod';
import 'zod-openapi';
import { ERROR_CATALOG, type ErrorCode } from '../platform/errors.js';

/**
 * The response bodies of the HTTP API as zod schemas: what `GET /openapi.json` describes
 * (src/http/openapi.ts) and what the HTTP tests hold every response to. Request schemas live with
 * their routes, which validate with them; both meet in the document. Response objects are strict:
 * a member the document does not name fails the tests, so nothing leaves unannounced.
 */

const timestamp = z.iso.datetime({ offset: false }).meta({ description: 'RFC 3339 UTC timestamp', example: '2026-11-21T14:03:07.512Z' });
const uuid = z.uuid();

export const userSchema = z
  .strictObject({
    id: uuid.meta({ description: 'UUIDv7' }),
    username: z.string().nullable().meta({ description: 'The normalized username, or null for a user known by address only' }),
    email: z.string().nullable().meta({ description: 'The normalized address, or null' }),
    emailVerified: z.boolean().meta({ description: 'Whether the address was proven (a code, a link or a reset)' }),
    homeRegion: z.string().meta({ description: 'Where the user registered' }),
    createdAt: timestamp,
  })
  .meta({
    id: 'User',
    description: 'A user as the API shows one: never a hash, never a secret.',
    example: {
      id: '0192f0c4-7d1e-7c3a-9b1e-3f2a1c0d4e5f',
      username: 'alice',
      email: 'alice@example.com',
      emailVerified: true,
      homeRegion: 'eu',
      createdAt: '2026-11-21T14:03:07.512Z',
    },
  });

export const userEnvelopeSchema = z.strictObject({ user: userSchema }).meta({ id: 'UserEnvelope' });

export const tokenResponseSchema = z
  .strictObject({
    accessToken: z.string().meta({ description: 'An EdDSA (or ES256) JWT, RFC 9068 `typ: at+jwt`; verify it with the JWKS' }),
    tokenType: z.literal('Bearer'),
    expiresIn: z.number().int().positive().meta({ description: 'Seconds the access token lives (`tokens.accessTtl`)' }),
    refreshToken: z
      .string()
      .regex(/^rt_[a-z][a-z0-9-]*_[0-9a-f-]{36}_\d+_[A-Za-z0-9_-]{22}$/)
      .meta({ description: 'The current refresh token of the session: `rt_<region>_<sessionId>_<counter>_<mac>`, rotated on every refresh' }),
    refreshExpiresIn: z.number().int().nonnegative().meta({ description: "Seconds until the session's absolute expiry (refreshing does not extend it)" }),
    sessionId: uuid.meta({ description: 'The session (the `sid` claim), the same across refreshes' }),
    user: userSchema,
  })
  .meta({
    id: 'TokenResponse',
    example: {
      accessToken: 'eyJhbGciOiJFZERTQSIsImtpZCI6Ik…',
      tokenType: 'Bearer',
      expiresIn: 900,
      refreshToken: 'rt_eu_0192f0c4-7d1e-7c3a-9b1e-3f2a1c0d4e60_1_Qm9iIHNheXMgaGVsbG8h12',
      refreshExpiresIn: 1_209_600,
      sessionId: '0192f0c4-7d1e-7c3a-9b1e-3f2a1c0d4e60',
      user: {
        id: '0192f0c4-7d1e-7c3a-9b1e-3f2a1c0d4e5f',
        username: 'alice',
        email: null,
        emailVerified: false,
        homeRegion: 'eu',
        createdAt: '2026-11-21T14:03:07.512Z',
      },
    },
  });

/** The answer to a login's first step when a second factor must follow (docs/api.md#two-step-login). */
export const mfaChallengeSchema = z
  .strictObject({
    mfaRequired: z.literal(true),
    mfaToken: z
      .string()
      .meta({ description: 'Single-use, for `POST /v1/auth/mfa/verify` (or enrolment, when `enrolmentRequired`); lives `expiresIn` seconds' }),
    expiresIn: z.number().int().positive().meta({ description: 'Seconds the mfaToken lives (`identity.mfaTokenTtl`)' }),
    factors: z
      .array(z.enum(['totp', 'recovery_code', 'passkey']))
      .meta({ description: 'What the second step accepts (empty when a factor must be enrolled first); `passkey`: see docs/api.md#passkeys' }),
    enrolmentRequired: z.boolean().meta({ description: 'With `identity.mfa: required` and no factor yet: enrol one with the mfaToken, then get tokens' }),
  })
  .meta({
    id: 'MfaChallenge',
    example: { mfaRequired: true, mfaToken: 'mfa_…', expiresIn: 300, factors: ['totp', 'recovery_code'], enrolmentRequired: false },
  });

/** `POST /v1/auth/reauthenticate`: a new access token of the caller's session, `auth_time` now (the refresh token is unchanged). */
export const accessTokenSchema = z
  .strictObject({
    accessToken: z.string().meta({ description: 'An access token of the same session, its `auth_time` now' }),
    tokenType: z.literal('Bearer'),
    expiresIn: z.number().int().positive().meta({ description: 'Seconds the access token lives (`tokens.accessTtl`)' }),
  })
  .meta({ id: 'AccessToken', example: { accessToken: 'eyJhbGciOiJFZERTQSIsImtpZCI6Ik…', tokenType: 'Bearer', expiresIn: 900 } });

/** A login's first step: tokens, or the second step to take. */
export const signInResultSchema = z.union([tokenResponseSchema, mfaChallengeSchema]).meta({ id: 'SignInResult' });

export const sessionSchema = z
  .strictObject({
    id: uuid,
    createdAt: timestamp,
    lastUsedAt: timestamp.meta({ description: 'The last login or refresh' }),
    expiresAt: timestamp,
    region: z.string().meta({ description: 'The home region of the session (where it was opened)' }),
    userAgent: z.string().nullable().meta({ description: 'The first 256 characters of the User-Agent of the login' }),
    current: z.boolean().meta({ description: 'True for the session of the access token making the request' }),
  })
  .meta({ id: 'Session' });

export const sessionListSchema = z.strictObject({ sessions: z.array(sessionSchema) }).meta({ id: 'SessionList' });

export const acceptedSchema = z
  .strictObject({ status: z.literal('accepted') })
  .meta({ id: 'Accepted', description: 'The request was taken; what it leads to is not told (no oracle).' });

export const verifyResultSchema = z
  .strictObject({
    userId: uuid,
    sessionId: uuid,
    username: z.string().nullable(),
    email: z.string().optional(),
    emailVerified: z.boolean().optional(),
  })
  .meta({ id: 'VerifyResult' });

export const regionsSchema = z
  .strictObject({
    region: z.string().meta({ description: 'This region' }),
    regions: z.array(
      z.strictObject({
        name: z.string(),
        url: z.string().nullable().meta({ description: 'Its public URL (`publicUrl`), or null when unset' }),
        local: z.boolean(),
      }),
    ),
  })
  .meta({ id: 'Regions', example: { region: 'eu', regions: [{ name: 'eu', url: 'https://eu.auth.example.com', local: true }] } });

const jwkSchema = z
  .object({
    kty: z.enum(['OKP', 'EC']),
    kid: z.string(),
    alg: z.enum(['EdDSA', 'ES256']),
    use: z.literal('sig'),
    crv: z.enum(['Ed25519', 'P-256']),
    x: z.string(),
    y: z.string().optional(),
  })
  .meta({ description: 'A public key (RFC 7517): public members only' });
export const jwksSchema = z.strictObject({ keys: z.array(jwkSchema) }).meta({ id: 'JWKS' });

export const healthSchema = z.strictObject({ status: z.literal('ok') }).meta({ id: 'Health' });

const check = z.enum(['ok', 'down', 'loading', 'stale', 'degraded', 'unsealable']);
export const readinessSchema = z
  .strictObject({
    status: z.enum(['ok', 'degraded', 'unavailable']),
    checks: z
      .strictObject({
        database: check,
        signingKeys: check,
        revocationFeed: check,
        cache: check,
        'database-reader': check.optional(),
      })
      .meta({ description: 'Each dependency: `cache` and `database-reader` never fail readiness' }),
    failing: z.array(z.string()).optional(),
    details: z.strictObject({ signingKeys: z.string() }).optional(),
  })
  .meta({ id: 'Readiness' });

export const replicationResultSchema = z.strictObject({ applied: z.number().int(), duplicate: z.boolean() }).meta({ id: 'ReplicationResult' });

const fieldErrorSchema = z
  .strictObject({
    path: z.string().meta({ description: 'The field (`password`, `refreshToken`, …), or "" for the whole body' }),
    message: z.string(),
  })
  .meta({ id: 'FieldError' });

/** Codes whose problems carry `errors: [{path, message}]`. */
const FIELD_CODES: readonly ErrorCode[] = ['invalid_request', 'weak_password'];

/** The RFC 9457 problem every `/v1` error is, in general (any code). */
export const problemSchema = z
  .strictObject({
    type: z.literal('about:blank'),
    title: z.string(),
    status: z.number().int(),
    code: z.enum(Object.keys(ERROR_CATALOG) as [ErrorCode, ...ErrorCode[]]).meta({ description: 'Stable and machine-readable: branch on it, not on `detail`' }),
    detail: z.string().meta({ description: 'For humans; never internals' }),
    requestId: z.string().meta({ description: 'Equals the X-Request-Id header' }),
    errors: z.array(fieldErrorSchema).optional(),
    region: z.string().optional().meta({ description: '`wrong_region`: the home region' }),
    location: z.string().optional().meta({ description: '`wrong_region`: its login URL' }),
  })
  .meta({
    id: 'Problem',
    description: 'RFC 9457 problem details (`application/problem+json`).',
    example: {
      type: 'about:blank',
      title: 'Unauthorized',
      status: 401,
      code: 'invalid_credentials',
      detail: 'username or password is wrong',
      requestId: '0b6f0e0c-5a4e-4c57-9d7e-0a3f1f0c2b11',
    },
  });

/** The problem a response with `status` may be: exactly these codes, and only the members they carry. */
export function problemOf(status: number, codes: readonly ErrorCode[]) {
  const withFields = codes.some((code) => FIELD_CODES.includes(code));
  const wrongRegion = codes.includes('wrong_region');
  return z.strictObject({
    type: z.literal('about:blank'),
    title: z.string(),
    status: z.literal(status),
    code: z.enum(codes as [ErrorCode, ...ErrorCode[]]),
    detail: z.string(),
    requestId: z.string(),
    ...(withFields ? { errors: z.array(fieldErrorSchema).optional() } : {}),
    ...(wrongRegion ? { region: z.string().optional(), location: z.string().optional() } : {}),
  });
}

const recoveryCodes = z
  .array(z.string().regex(/^[0-9a-hjkmnp-tv-z]{4}-[0-9a-hjkmnp-tv-z]{4}-[0-9a-hjkmnp-tv-z]{4}$/))
  .length(10)
  .meta({ description: 'Ten single-use recovery codes (60 bits each), shown this once: the server keeps only their hashes' });
const recoveryCodesExample = [
  'k3m9-q2vd-8r1w',
  'x7c4-n0tp-5hga',
  'b2f6-9wze-jq3k',
  'm8s1-r4yd-0vcn',
  'p5e7-t2ka-6wzh',
  '4gq0-v9mb-1dxs',
  'h6n3-c8rw-7kpt',
  'z1a5-e3jq-9fmv',
  'w0d8-k6sg-2tnb',
  'c9v2-m7hx-4rea',
];

/** `POST /v1/me/mfa/totp`: what an authenticator app needs, shown once. */
export const totpEnrolmentSchema = z
  .strictObject({
    factorId: uuid.meta({ description: 'The pending factor: confirm it with `POST /v1/me/mfa/totp/confirm` within 10 minutes' }),
    secret: z
      .string()
      .regex(/^[A-Z2-7]{32}$/)
      .meta({ description: 'The RFC 6238 secret, base32 (160 bits), for typing into an app' }),
    uri: z
      .string()
      .regex(/^otpauth:\/\/totp\//)
      .meta({ description: 'The `otpauth://` key URI (SHA-1, 6 digits, 30 s)' }),
    qrCode: z
      .string()
      .regex(/^data:image\/png;base64,/)
      .meta({ description: 'The URI as a QR code: a PNG data URL for an `<img src>`' }),
  })
  .meta({
    id: 'TotpEnrolment',
    example: {
      factorId: '0192f0c4-7d1e-7c3a-9b1e-3f2a1c0d4e70',
      secret: 'JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP',
      uri: 'otpauth://totp/authctl:alice?issuer=authctl&secret=JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP&algorithm=SHA1&digits=6&period=30',
      qrCode: 'data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAA…',
    },
  });

/** `POST /v1/me/mfa/totp/confirm`: the recovery codes, and with an mfaToken the login's tokens. */
export const totpConfirmedSchema = z
  .strictObject({
    recoveryCodes,
    tokens: tokenResponseSchema
      .optional()
      .meta({ description: 'Only when enrolling with the mfaToken of a login (`identity.mfa: required`): the tokens of that login' }),
  })
  .meta({ id: 'TotpConfirmed', example: { recoveryCodes: recoveryCodesExample } });

export const recoveryCodesSchema = z.strictObject({ recoveryCodes }).meta({ id: 'RecoveryCodes', example: { recoveryCodes: recoveryCodesExample } });

export const mfaFactorSchema = z
  .strictObject({
    id: uuid,
    type: z.literal('totp'),
    status: z.enum(['pending', 'active']).meta({ description: '`pending` until confirmed with a first code (for 10 minutes)' }),
    createdAt: timestamp,
    confirmedAt: timestamp.nullable(),
  })
  .meta({ id: 'MfaFactor', description: 'A second factor: never its secret.' });

export const mfaOverviewSchema = z
  .strictObject({
    factors: z.array(mfaFactorSchema),
    recoveryCodesLeft: z.number().int().min(0).max(10).meta({ description: 'Unused recovery codes' }),
  })
  .meta({
    id: 'MfaOverview',
    example: {
      factors: [
        {
          id: '0192f0c4-7d1e-7c3a-9b1e-3f2a1c0d4e70',
          type: 'totp',
          status: 'active',
          createdAt: '2026-11-21T14:03:07.512Z',
          confirmedAt: '2026-11-21T14:03:41.090Z',
        },
      ],
      recoveryCodesLeft: 9,
    },
  });

/** A provider identity of the caller (docs/api.md#linked-identities): never the provider's subject. */
export const linkedIdentitySchema = z
  .strictObject({
    id: uuid,
    provider: z.string().meta({ description: 'The id of the provider in `identity.providers`', example: 'google' }),
    displayName: z.string().meta({ description: 'The provider’s name to show', example: 'Google' }),
    email: z.string().nullable().meta({ description: 'The address the provider gave (not necessarily the account’s)' }),
    emailVerified: z.boolean().meta({ description: 'Whether the provider said it verified that address' }),
    createdAt: timestamp,
    lastUsedAt: timestamp,
  })
  .meta({
    id: 'LinkedIdentity',
    example: {
      id: '0192f0c4-7d1e-7c3a-9b1e-3f2a1c0d4e71',
      provider: 'google',
      displayName: 'Google',
      email: 'ada@example.com',
      emailVerified: true,
      createdAt: '2026-11-21T14:03:07.512Z',
      lastUsedAt: '2026-11-22T09:12:44.031Z',
    },
  });

export const linkedIdentityListSchema = z.strictObject({ identities: z.array(linkedIdentitySchema) }).meta({ id: 'LinkedIdentityList' });

/** `GET /v1/me/identities/{provider}/authorize`: where the app sends the browser (a navigation cannot carry the Bearer header). */
export const linkAuthorizationSchema = z
  .strictObject({ url: z.url().meta({ description: 'The provider’s authorization URL, for this link' }) })
  .meta({ id: 'LinkAuthorization', example: { url: 'https://accounts.google.com/o/oauth2/v2/auth?client_id=…&state=…' } });

/** A passkey of the caller (docs/api.md#passkeys): never its public key or credential id. */
export const passkeyViewSchema = z
  .strictObject({
    id: uuid,
    name: z.string().meta({ description: 'What the user calls it (1–64 characters)', example: 'Passkey 1' }),
    aaguid: z
      .string()
      .regex(/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/)
      .meta({ description: "The authenticator model's AAGUID (16 bytes in UUID notation; all zeros when it gave none)" }),
    transports: z.array(z.string()).meta({ description: 'How the browser reaches the authenticator (`internal`, `hybrid`, `usb`…)' }),
    backupEligible: z.boolean().meta({ description: 'A synced passkey (a passkey provider copies it between devices): it signs in as `swk`, else `hwk`' }),
    backedUp: z.boolean().meta({ description: 'Backed up now, as last seen' }),
    createdAt: timestamp,
    lastUsedAt: timestamp.nullable(),
  })
  .meta({
    id: 'PasskeyView',
    example: {
      id: '0192f0c4-7d1e-7c3a-9b1e-3f2a1c0d4e72',
      name: 'Passkey 1',
      aaguid: 'fbfc3007-154e-4ecc-8c0b-6e020557d7bd',
      transports: ['hybrid', 'internal'],
      backupEligible: true,
      backedUp: true,
      createdAt: '2026-11-21T14:03:07.512Z',
      lastUsedAt: null,
    },
  });

export const passkeyListSchema = z.strictObject({ passkeys: z.array(passkeyViewSchema) }).meta({ id: 'PasskeyList' });

const base64url = z.string().regex(/^[A-Za-z0-9_-]*$/);
const credentialDescriptor = z.strictObject({
  id: base64url.meta({ description: 'A credential id (base64url)' }),
  type: z.literal('public-key'),
  transports: z.array(z.string()).optional(),
});

/** `POST /v1/me/passkeys/options`: WebAuthn's PublicKeyCredentialCreationOptionsJSON, for `startRegistration({ optionsJSON })`. */
export const passkeyCreationOptionsSchema = z
  .strictObject({
    challenge: base64url.meta({ description: 'Sealed by authctl: single-use, bound to the caller, 5 minutes' }),
    rp: z.strictObject({ name: z.string(), id: z.string() }).meta({ description: '`identity.webauthn.rpName` and `rpId`' }),
    user: z
      .strictObject({ id: base64url, name: z.string(), displayName: z.string() })
      .meta({ description: "`id`: the user handle (the user id's 16 bytes); `name`: the username, else the address" }),
    pubKeyCredParams: z.array(z.strictObject({ alg: z.number().int(), type: z.literal('public-key') })),
    timeout: z.number().int().meta({ example: 300_000 }),
    attestation: z.literal('none'),
    excludeCredentials: z.array(credentialDescriptor).meta({ description: "The caller's passkeys: an authenticator holding one does not make another" }),
    authenticatorSelection: z.strictObject({
      residentKey: z.literal('preferred'),
      userVerification: z.literal('preferred'),
      requireResidentKey: z.boolean(),
    }),
    extensions: z.strictObject({ credProps: z.literal(true) }),
    hints: z.array(z.string()).optional(),
  })
  .meta({
    id: 'PasskeyCreationOptions',
    example: {
      challenge: 'cGtfQVlkN3R3bVZ4cWtOOWxE',
      rp: { name: 'authctl', id: 'example.com' },
      user: { id: 'AZLwxH0efDqbHj8qHA1OXw', name: 'alice', displayName: 'alice' },
      pubKeyCredParams: [
        { alg: -8, type: 'public-key' },
        { alg: -7, type: 'public-key' },
        { alg: -257, type: 'public-key' },
      ],
      timeout: 300_000,
      attestation: 'none',
      excludeCredentials: [],
      authenticatorSelection: { residentKey: 'preferred', userVerification: 'preferred', requireResidentKey: false },
      extensions: { credProps: true },
      hints: [],
    },
  });

/** `POST /v1/auth/passkey/options`: WebAuthn's PublicKeyCredentialRequestOptionsJSON, for `startAuthentication({ optionsJSON })`. */
export const passkeyRequestOptionsSchema = z
  .strictObject({
    rpId: z.string().meta({ description: '`identity.webauthn.rpId`' }),
    challenge: base64url.meta({ description: 'Sealed by authctl: single-use, of this ceremony (and user and login, for a second step), 5 minutes' }),
    allowCredentials: z
      .array(credentialDescriptor)
      .meta({ description: 'Empty without a hint (the browser offers discoverable passkeys); else the passkeys of the named user or login' }),
    timeout: z.number().int().meta({ example: 300_000 }),
    userVerification: z.literal('preferred'),
  })
  .meta({
    id: 'PasskeyRequestOptions',
    example: { rpId: 'example.com', challenge: 'cGtfQVlkN3R3bVZ4cWtOOWxE', allowCredentials: [], timeout: 300_000, userVerification: 'preferred' },
  });
