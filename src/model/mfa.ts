/**
 * Second factors and how a session was authenticated (migration 0009-second-factors).
 */

/** RFC 8176 authentication method references authctl issues: a password, a one-time code, several factors. */
export const AMR_VALUES = ['pwd', 'otp', 'mfa'] as const;
export type Amr = (typeof AMR_VALUES)[number];

/** What a login's first step proved: a password, or an e-mailed code. */
export type FirstFactor = 'pwd' | 'otp';

/** What can answer a two-step login's second step. */
export type SecondFactorType = 'totp' | 'recovery_code';

/** How and when a session's user last proved who they are (`auth_time`, `amr`; `acr` follows from `amr`). */
export interface AuthContext {
  authTime: Date;
  amr: Amr[];
}

/** NIST SP 800-63B assurance level of an `amr`: `aal2` when several factors were used. */
export function acrOf(amr: readonly Amr[]): 'aal1' | 'aal2' {
  return amr.includes('mfa') ? 'aal2' : 'aal1';
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
