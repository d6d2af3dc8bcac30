import { createHash } from 'node:crypto';
import { z } from 'zod';
import type {
  CapturedRow,
  ReplicatedBatch,
  ReplicatedChallenge,
  ReplicatedClient,
  ReplicatedEntity,
  ReplicatedFactor,
  ReplicatedIdentity,
  ReplicatedKey,
  ReplicatedPasskey,
  ReplicatedRecoveryCode,
  ReplicatedTokenUse,
  ReplicatedSession,
  ReplicatedUser,
} from '../../model/replication.js';
import { AMR_VALUES, type Amr } from '../../model/mfa.js';
import { PASSKEY_TRANSPORTS, type PasskeyTransport } from '../../model/passkey.js';
import { CLIENT_SCOPES, type ClientScope } from '../../model/service-client.js';
import { AppError } from '../../platform/errors.js';

/**
 * The batch format regions exchange on `POST /internal/replication`:
 * `{"origin": region, "batchId": id, "changes": [{"entity": …, "payload": row}, …]}`, where each
 * payload is the row as the capture trigger wrote it (`to_jsonb`, snake_case columns). A sender
 * ships captured rows as they are ({@link encodeBatch}); a receiver decodes them here, once, into
 * typed records ({@link decodeBatch}). Fields it does not know are ignored, so a peer running a
 * later version with more columns still interoperates.
 */

/** A change on its way out: the entity and the row as captured. */
export interface OutgoingChange {
  entity: ReplicatedEntity;
  payload: CapturedRow;
}

/** A timestamptz as `to_jsonb` writes it (or any ISO 8601 string). */
const timestamp = z.string().pipe(z.coerce.date());
const optionalTimestamp = timestamp.nullish().transform((value) => value ?? null);
const optionalText = z
  .string()
  .nullish()
  .transform((value) => value ?? null);
/** A bigint column: a JSON number from `to_jsonb`; a digit string (node-pg's spelling) is accepted too. */
const bigint = z.union([z.number().int(), z.string().regex(/^-?\d{1,18}$/)]).transform(Number);
/** RFC 8176 values; one a later version added is dropped (this region issues only those it knows). */
const amr = z
  .array(z.string())
  .nullish()
  .transform((values) => values?.filter((v): v is Amr => (AMR_VALUES as readonly string[]).includes(v)) ?? null);

const user = z
  .object({
    id: z.string(),
    // Null for a user known by address only (0006-email-identity); peers before it always send one.
    username: optionalText,
    // Absent from peers before 0006-email-identity: a user without an address.
    email: optionalText,
    email_verified_at: optionalTimestamp,
    // Null for an account created by an e-mailed sign-in code (0009-second-factors): no password yet.
    password_hash: optionalText,
    status: z.enum(['active', 'disabled']),
    home_region: z.string(),
    created_at: timestamp,
    updated_at: timestamp,
    password_changed_at: timestamp,
    sessions_revoked_before: optionalTimestamp,
    sessions_revoked_keep: optionalText,
    version: bigint,
  })
  .transform((u): ReplicatedUser => ({
    id: u.id,
    username: u.username,
    email: u.email,
    emailVerifiedAt: u.email_verified_at,
    passwordHash: u.password_hash,
    status: u.status,
    homeRegion: u.home_region,
    createdAt: u.created_at,
    updatedAt: u.updated_at,
    passwordChangedAt: u.password_changed_at,
    sessionsRevokedBefore: u.sessions_revoked_before,
    sessionsRevokedKeep: u.sessions_revoked_keep,
    version: u.version,
  }));

const session = z
  .object({
    id: z.string(),
    user_id: optionalText,
    home_region: z.string(),
    counter: bigint,
    created_at: timestamp,
    last_used_at: timestamp,
    rotated_at: timestamp,
    expires_at: timestamp,
    revoked_at: optionalTimestamp,
    revoke_reason: optionalText,
    user_agent: optionalText,
    ip: optionalText,
    // Absent from peers before 0009-second-factors (and null on their older rows): read as a
    // password login when the session began, as the sessions repository reads such rows.
    auth_time: optionalTimestamp,
    amr,
    // Absent from peers before 0010-identities (and null but for a provider sign-in).
    idp: optionalText,
    // Absent from peers before 0014-passkeys (and null but for a passkey's sign-in).
    passkey_id: optionalText,
    version: bigint,
  })
  .transform((s): ReplicatedSession => ({
    id: s.id,
    userId: s.user_id,
    homeRegion: s.home_region,
    counter: s.counter,
    createdAt: s.created_at,
    lastUsedAt: s.last_used_at,
    rotatedAt: s.rotated_at,
    expiresAt: s.expires_at,
    revokedAt: s.revoked_at,
    revokeReason: s.revoke_reason,
    userAgent: s.user_agent,
    ip: s.ip,
    authTime: s.auth_time ?? s.created_at,
    amr: s.amr ?? ['pwd'],
    idp: s.idp,
    passkeyId: s.passkey_id,
    version: s.version,
  }));

const key = z
  .object({
    kid: z.string(),
    alg: z.string(),
    public_jwk: z.record(z.string(), z.unknown()),
    home_region: z.string(),
    created_at: timestamp,
    activates_at: timestamp,
    retires_at: optionalTimestamp,
    version: bigint,
  })
  .transform((k): ReplicatedKey => ({
    kid: k.kid,
    alg: k.alg,
    publicJwk: k.public_jwk,
    homeRegion: k.home_region,
    createdAt: k.created_at,
    activatesAt: k.activates_at,
    retiresAt: k.retires_at,
    version: k.version,
  }));

const challenge = z
  .object({
    id: z.string(),
    // Null for a sign-in code to an address without an account yet (0009-second-factors, `identity.otpSignup`).
    user_id: optionalText,
    purpose: z.enum(['verify', 'change', 'reset', 'login']),
    email: z.string(),
    home_region: z.string(),
    created_at: timestamp,
    expires_at: timestamp,
    attempts: bigint,
    ended_at: optionalTimestamp,
    end_reason: z
      .enum(['used', 'replaced', 'exhausted', 'superseded'])
      .nullish()
      .transform((value) => value ?? null),
    version: bigint,
  })
  .transform((c): ReplicatedChallenge => ({
    id: c.id,
    userId: c.user_id,
    purpose: c.purpose,
    email: c.email,
    homeRegion: c.home_region,
    createdAt: c.created_at,
    expiresAt: c.expires_at,
    attempts: c.attempts,
    endedAt: c.ended_at,
    endReason: c.end_reason,
    version: c.version,
  }));

const client = z
  .object({
    id: z.string(),
    name: z.string(),
    // A scope a later version added is dropped here: this region cannot grant what it does not know.
    scopes: z.array(z.string()).transform((scopes) => CLIENT_SCOPES.filter((s: ClientScope) => scopes.includes(s))),
    secret_hash: z.string(),
    home_region: z.string(),
    created_at: timestamp,
    updated_at: timestamp,
    secret_rotated_at: timestamp,
    version: bigint,
  })
  .transform((c): ReplicatedClient => ({
    id: c.id,
    name: c.name,
    scopes: c.scopes,
    secretHash: c.secret_hash,
    homeRegion: c.home_region,
    createdAt: c.created_at,
    updatedAt: c.updated_at,
    secretRotatedAt: c.secret_rotated_at,
    version: c.version,
  }));

const factor = z
  .object({
    id: z.string(),
    user_id: z.string(),
    type: z.literal('totp'),
    secret_sealed: z.string(),
    status: z.enum(['pending', 'active']),
    home_region: z.string(),
    created_at: timestamp,
    confirmed_at: optionalTimestamp,
    last_used_step: bigint.nullish().transform((value) => value ?? null),
    removed_at: optionalTimestamp,
    version: bigint,
  })
  .transform((f): ReplicatedFactor => ({
    id: f.id,
    userId: f.user_id,
    type: f.type,
    secretSealed: f.secret_sealed,
    status: f.status,
    homeRegion: f.home_region,
    createdAt: f.created_at,
    confirmedAt: f.confirmed_at,
    lastUsedStep: f.last_used_step,
    removedAt: f.removed_at,
    version: f.version,
  }));

const recoveryCode = z
  .object({
    id: z.string(),
    user_id: z.string(),
    code_hash: z.string(),
    home_region: z.string(),
    created_at: timestamp,
    ended_at: optionalTimestamp,
    end_reason: z
      .enum(['used', 'replaced', 'reset'])
      .nullish()
      .transform((value) => value ?? null),
    version: bigint,
  })
  .transform((c): ReplicatedRecoveryCode => ({
    id: c.id,
    userId: c.user_id,
    codeHash: c.code_hash,
    homeRegion: c.home_region,
    createdAt: c.created_at,
    endedAt: c.ended_at,
    endReason: c.end_reason,
    version: c.version,
  }));

const tokenUse = z
  .object({ id: z.string(), user_id: optionalText, home_region: z.string(), used_at: timestamp, expires_at: timestamp })
  .transform((u): ReplicatedTokenUse => ({ id: u.id, userId: u.user_id, homeRegion: u.home_region, usedAt: u.used_at, expiresAt: u.expires_at }));

const identity = z
  .object({
    id: z.string(),
    user_id: z.string(),
    provider: z.string(),
    subject: z.string(),
    email: optionalText,
    email_verified: z.boolean(),
    home_region: z.string(),
    created_at: timestamp,
    last_used_at: timestamp,
    removed_at: optionalTimestamp,
    version: bigint,
  })
  .transform((i): ReplicatedIdentity => ({
    id: i.id,
    userId: i.user_id,
    provider: i.provider,
    subject: i.subject,
    email: i.email,
    emailVerified: i.email_verified,
    homeRegion: i.home_region,
    createdAt: i.created_at,
    lastUsedAt: i.last_used_at,
    removedAt: i.removed_at,
    version: i.version,
  }));

const passkey = z
  .object({
    id: z.string(),
    user_id: z.string(),
    credential_id: z.string(),
    public_key: z.string(),
    counter: bigint,
    // A text[] column: a JSON array. A transport a later version knows is dropped (a hint to the
    // browser only: it still finds the authenticator without it).
    transports: z.array(z.string()).transform((values) => values.filter((v): v is PasskeyTransport => (PASSKEY_TRANSPORTS as readonly string[]).includes(v))),
    aaguid: z.string(),
    backup_eligible: z.boolean(),
    backed_up: z.boolean(),
    name: z.string(),
    home_region: z.string(),
    created_at: timestamp,
    updated_at: timestamp,
    last_used_at: optionalTimestamp,
    removed_at: optionalTimestamp,
    version: bigint,
  })
  .transform((p): ReplicatedPasskey => ({
    id: p.id,
    userId: p.user_id,
    credentialId: p.credential_id,
    publicKey: p.public_key,
    counter: p.counter,
    transports: p.transports,
    aaguid: p.aaguid,
    backupEligible: p.backup_eligible,
    backedUp: p.backed_up,
    name: p.name,
    homeRegion: p.home_region,
    createdAt: p.created_at,
    updatedAt: p.updated_at,
    lastUsedAt: p.last_used_at,
    removedAt: p.removed_at,
    version: p.version,
  }));

const batchSchema = z.strictObject({
  origin: z.string(),
  batchId: z.string().min(1).max(200),
  changes: z
    .array(
      z.discriminatedUnion('entity', [
        z.strictObject({ entity: z.literal('users'), payload: user }),
        z.strictObject({ entity: z.literal('users_deleted'), payload: z.object({ id: z.string() }) }),
        z.strictObject({ entity: z.literal('sessions'), payload: session }),
        z.strictObject({ entity: z.literal('signing_keys'), payload: key }),
        z.strictObject({ entity: z.literal('email_challenges'), payload: challenge }),
        z.strictObject({ entity: z.literal('service_clients'), payload: client }),
        z.strictObject({ entity: z.literal('service_clients_deleted'), payload: z.object({ id: z.string() }) }),
        z.strictObject({ entity: z.literal('mfa_factors'), payload: factor }),
        z.strictObject({ entity: z.literal('mfa_recovery_codes'), payload: recoveryCode }),
        z.strictObject({ entity: z.literal('mfa_token_uses'), payload: tokenUse }),
        z.strictObject({ entity: z.literal('user_identities'), payload: identity }),
        z.strictObject({ entity: z.literal('passkeys'), payload: passkey }),
      ]),
    )
    .max(10_000),
});

/** A peer's batch from its exact body bytes; `invalid_request` for anything but a well-formed batch. */
export function decodeBatch(body: Buffer): ReplicatedBatch {
  try {
    return batchSchema.parse(JSON.parse(body.toString('utf8')));
  } catch (err) {
    throw new AppError('invalid_request', 'the replication batch is malformed', { cause: err });
  }
}

/**
 * The body and id of a batch of `origin`'s changes. The id is named by the content: the same on
 * redelivery (so the peer skips it), and never reused by other changes, even if the region's
 * outbox sequence starts again after a restore.
 */
export function encodeBatch(origin: string, changes: OutgoingChange[]): { batchId: string; body: string } {
  const batchId = createHash('sha256')
    .update(`${origin}\n${JSON.stringify(changes)}`)
    .digest('base64url');
  return { batchId, body: JSON.stringify({ origin, batchId, changes }) };
}
