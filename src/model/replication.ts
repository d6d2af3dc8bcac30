import type { IdentityRecord } from './identity.js';
import type { MfaFactorRecord, MfaTokenUse, RecoveryCodeRecord } from './mfa.js';
import type { PasskeyRecord } from './passkey.js';
import type { ServiceClientRecord } from './service-client.js';
import type { SessionRecord } from './session.js';
import type { EmailChallenge, UserRecord } from './user.js';

/**
 * A changed row as the capture trigger wrote it to the outbox: `to_jsonb` of the row (snake_case
 * column names, the private half of a signing key removed). The sending region ships it as it is,
 * so what goes over the wire is exactly what earlier versions sent; only the receiving region
 * decodes it (src/core/replication/wire.ts) into one of the records below.
 */
export type CapturedRow = Record<string, unknown>;

/** What a replicated change is about, as named on the wire (`changes[].entity`). */
export type ReplicatedEntity =
  | 'users'
  | 'users_deleted'
  | 'sessions'
  | 'signing_keys'
  | 'email_challenges'
  | 'service_clients'
  | 'service_clients_deleted'
  | 'mfa_factors'
  | 'mfa_recovery_codes'
  | 'mfa_token_uses'
  | 'user_identities'
  | 'passkeys';

/** A user as a peer ships it: the whole record (password hash included) and its session cut-off. */
export interface ReplicatedUser extends UserRecord {
  /**
   * A password change or logout-all: the user's sessions created before this go, wherever they
   * turn up (migration 0005-session-cutoff), except `sessionsRevokedKeep`, the one that made it.
   */
  sessionsRevokedBefore: Date | null;
  sessionsRevokedKeep: string | null;
}

/** A session's replicated state: its record and its replication version. */
export interface ReplicatedSession extends SessionRecord {
  version: number;
}

/** A public signing key of a region (its private half never leaves that region). */
export interface ReplicatedKey {
  kid: string;
  alg: string;
  publicJwk: Record<string, unknown>;
  homeRegion: string;
  createdAt: Date;
  activatesAt: Date;
  retiresAt: Date | null;
  version: number;
}

/**
 * An e-mail challenge (a verification, address change or password reset sent) as a peer ships it:
 * the whole row, which holds no secret (the code and link are MACs of its id).
 */
export type ReplicatedChallenge = EmailChallenge;

/**
 * A service client as a peer ships it: the whole row, the secret's hash included (a SHA-256 of a
 * 256-bit secret: src/core/clients/client-secret.ts), so a service can call any region.
 */
export type ReplicatedClient = ServiceClientRecord;

/**
 * A TOTP factor as a peer ships it: the whole row, its secret sealed under the server secret that
 * every region shares (so the factor is asked for, and checked, in every region).
 */
export type ReplicatedFactor = MfaFactorRecord;

/** A recovery code as a peer ships it: its argon2id hash, never the code. */
export type ReplicatedRecoveryCode = RecoveryCodeRecord;

/** A used mfaToken (single-use in every region once it arrives). */
export type ReplicatedTokenUse = MfaTokenUse;

/**
 * A provider identity as a peer ships it: the whole row (it holds no secret: the provider's
 * subject and the address it gave). A removed one keeps its row, so it never comes back.
 */
export type ReplicatedIdentity = IdentityRecord;

/**
 * A passkey as a peer ships it: the whole row (it holds no secret: the public key, the credential
 * id and the signature counter last seen). A removed one keeps its row, so it never comes back.
 */
export type ReplicatedPasskey = PasskeyRecord;

/** One change of a peer's batch, decoded. */
export type ReplicatedChange =
  | { entity: 'users'; payload: ReplicatedUser }
  | { entity: 'users_deleted'; payload: { id: string } }
  | { entity: 'sessions'; payload: ReplicatedSession }
  | { entity: 'signing_keys'; payload: ReplicatedKey }
  | { entity: 'email_challenges'; payload: ReplicatedChallenge }
  | { entity: 'service_clients'; payload: ReplicatedClient }
  | { entity: 'service_clients_deleted'; payload: { id: string } }
  | { entity: 'mfa_factors'; payload: ReplicatedFactor }
  | { entity: 'mfa_recovery_codes'; payload: ReplicatedRecoveryCode }
  | { entity: 'mfa_token_uses'; payload: ReplicatedTokenUse }
  | { entity: 'user_identities'; payload: ReplicatedIdentity }
  | { entity: 'passkeys'; payload: ReplicatedPasskey };

/** A peer's batch, decoded: its origin region, its content-derived id and its changes in order. */
export interface ReplicatedBatch {
  origin: string;
  batchId: string;
  changes: ReplicatedChange[];
}
