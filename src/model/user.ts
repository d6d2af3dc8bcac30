export type UserStatus = 'active' | 'disabled';

export interface UserRecord {
  id: string;
  /** Normalized (NFKC, case-folded); null for a user known by address only (`identity.username: "optional"`). */
  username: string | null;
  /** Normalized by src/core/users/email.ts; null when the user has none. */
  email: string | null;
  /** When the address was last proven; null while unverified (or without an address). */
  emailVerifiedAt: Date | null;
  /** argon2id PHC string; null for an account created by an e-mailed sign-in code, until a reset sets a first password. */
  passwordHash: string | null;
  status: UserStatus;
  homeRegion: string;
  createdAt: Date;
  updatedAt: Date;
  passwordChangedAt: Date;
  version: number;
}

/**
 * A user without a password, as created by an e-mailed sign-in code or a first provider sign-in
 * (a reset sets a first password): active, homed here, every timestamp `now`.
 */
export function passwordlessUser(
  id: string,
  who: Pick<UserRecord, 'username' | 'email' | 'emailVerifiedAt'>,
  homeRegion: string,
  now: Date,
): Omit<UserRecord, 'version'> {
  return { id, ...who, passwordHash: null, status: 'active', homeRegion, createdAt: now, updatedAt: now, passwordChangedAt: now };
}

/**
 * What an e-mail challenge proves: the current address, a new address (then applied), a password
 * reset, or a sign-in (an e-mailed sign-in code, which proves the address too).
 */
export type ChallengePurpose = 'verify' | 'change' | 'reset' | 'login';

export type ChallengeEndReason = 'used' | 'replaced' | 'exhausted' | 'superseded';

/**
 * One message's code and link (migration 0006-email-identity). Holds no secret: the code and the
 * link token are MACs of `id` under the server secret (src/core/email/challenge-codes.ts).
 */
export interface EmailChallenge {
  id: string;
  /** Null only for a sign-in code to an address without an account (`identity.otpSignup`): the account is created when it is used. */
  userId: string | null;
  purpose: ChallengePurpose;
  /** The address the message went to (for `change`, the new address). */
  email: string;
  homeRegion: string;
  createdAt: Date;
  expiresAt: Date;
  /** Wrong codes entered so far. */
  attempts: number;
  endedAt: Date | null;
  endReason: ChallengeEndReason | null;
  version: number;
}

/** How a user is named back to an admin or in a message: the username, else the address. */
export function userLabel(user: Pick<UserRecord, 'id' | 'username' | 'email'>): string {
  return user.username ?? user.email ?? user.id;
}
