/**
 * Second factors and how a session was authenticated (migration 0009-second-factors).
 */

/**
 * The authentication method references authctl issues: RFC 8176's `pwd` (a password), `otp` (a
 * one-time code), `mfa` (several factors), `hwk` and `swk` (a proof of possession of a key: a
 * passkey — `hwk` one bound to its device, `swk` a synced one, which a passkey provider copies
 * between devices) and `user` (the authenticator verified its user: a PIN or biometric), and
 * `fed` — a federated authentication, an OpenID Connect provider vouched for the user (the value
 * Microsoft Entra ID issues; it is not in RFC 8176's registry). The provider itself is the
 * token's `idp`.
 */
export const AMR_VALUES = ['pwd', 'otp', 'mfa', 'fed', 'hwk', 'swk', 'user'] as const;
export type Amr = (typeof AMR_VALUES)[number];

/** What a login's first step proved: a password, an e-mailed code, a provider's ID token, or a passkey (device-bound or synced). */
export type FirstFactor = 'pwd' | 'otp' | 'fed' | 'hwk' | 'swk';

/** What can answer a two-step login's second step. */
export type SecondFactorType = 'totp' | 'recovery_code' | 'passkey';

/** How and when a session's user last proved who they are (`auth_time`, `amr`; `acr` follows from `amr`). */
export interface AuthContext {
  authTime: Date;
  amr: Amr[];
  /** The provider (`identity.providers` id) a session was signed in through; absent otherwise. Kept by refreshes. */
  idp?: string | null;
  /** The passkey that signed the session in (its first step, or a password login's second); absent otherwise. Kept by refreshes. */
  passkeyId?: string | null;
}

/**
 * NIST SP 800-63B assurance level of an `amr`: `aal2` when several factors were used, or a
 * passkey whose authenticator verified its user (a multi-factor cryptographic authenticator).
 */
export function acrOf(amr: readonly Amr[]): 'aal1' | 'aal2' {
  return amr.includes('mfa') || (amr.includes('user') && (amr.includes('hwk') || amr.includes('swk'))) ? 'aal2' : 'aal1';
}

export type FactorStatus = 'pending' | 'active';

/** A TOTP authenticator of a user; the secret stays sealed (`secretSealed`) outside the TOTP check. */
export interface MfaFactorRecord {
  id: string;
  userId: string;
  type: 'totp';
  secretSealed: string;
  status: FactorStatus;
  homeRegion: string;
  createdAt: Date;
  confirmedAt: Date | null;
  /** The newest RFC 6238 time step accepted; a code of this step or an older one is refused. */
  lastUsedStep: number | null;
  removedAt: Date | null;
  version: number;
}

export type RecoveryCodeEndReason = 'used' | 'replaced' | 'reset';

/** One recovery code: its argon2id hash, never the code. */
export interface RecoveryCodeRecord {
  id: string;
  userId: string;
  codeHash: string;
  homeRegion: string;
  createdAt: Date;
  endedAt: Date | null;
  endReason: RecoveryCodeEndReason | null;
  version: number;
}

/** A used `mfaToken` (they are single-use). */
export interface MfaTokenUse {
  id: string;
  userId: string | null;
  homeRegion: string;
  usedAt: Date;
  expiresAt: Date;
}
