import type { Amr } from './mfa.js';

/** A session as the domain sees it: one refresh-token chain of one user in one home region. */
export interface SessionRecord {
  id: string;
  userId: string | null;
  homeRegion: string;
  counter: number;
  createdAt: Date;
  lastUsedAt: Date;
  rotatedAt: Date;
  expiresAt: Date;
  revokedAt: Date | null;
  revokeReason: string | null;
  userAgent: string | null;
  ip: string | null;
  /**
   * When the user last proved who they are in this session, and how (RFC 8176): set at login,
   * kept by every refresh, renewed by `POST /v1/auth/reauthenticate`. Sessions from before
   * migration 0009 read as their `createdAt` and `["pwd"]`.
   */
  authTime: Date;
  amr: Amr[];
  /**
   * The provider the session was signed in through (`identity.providers` id; null for a password,
   * a code, or a session from before migration 0010): access tokens carry it as `idp`. Set at the
   * login, kept by every refresh and reauthentication.
   */
  idp: string | null;
  /**
   * The passkey that signed the session in — its first step, or the second step of a password
   * login (null otherwise, and for a session from before migration 0014). Removing that passkey
   * revokes the session (`passkey_removed`). Set at the login, kept by every refresh and
   * reauthentication (a step-up with a passkey does not change it).
   */
  passkeyId: string | null;
}

/** The owner of a session, as needed to mint its access token. */
export interface SessionOwner {
  id: string;
  username: string | null;
  /** For the `email` and `email_verified` claims. */
  email: string | null;
  emailVerifiedAt: Date | null;
  homeRegion: string;
  createdAt: Date;
  status: 'active' | 'disabled';
}

export interface SessionWithOwner {
  session: SessionRecord;
  owner: SessionOwner | undefined;
}

/** What the revocation feed needs: which session, and until when its access tokens could live. */
export interface RevokedSession {
  id: string;
  revokedAt: Date;
  expiresAt: Date;
  /** Known where the revocation happened (for logs); absent when learned from pub/sub. */
  userId?: string | null;
}

export type RevokeReason =
  'logout' | 'logout_all' | 'reuse' | 'user_disabled' | 'user_deleted' | 'password_changed' | 'identity_unlinked' | 'passkey_removed' | 'admin' | 'replicated';
