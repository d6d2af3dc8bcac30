/**
 * Sign-in through OpenID Connect providers (migration 0010-identities; README "Sign in with Google
 * and other providers").
 */

/** How a provider's verified address may attach a new identity to an existing account. */
export type LinkingPolicy = 'verified-email' | 'off';

/**
 * One provider account of a user: the pair (provider, subject) is what the provider vouches for;
 * the address it gave is kept as it said it (and whether it said it was verified), for support
 * and for `GET /v1/me/identities`. A removed identity keeps its row (`removedAt`) so that a late
 * change from another region cannot bring it back.
 */
export interface IdentityRecord {
  id: string;
  userId: string;
  /** The `id` of the provider in `identity.providers`. */
  provider: string;
  /** The ID token's `sub`: stable per provider, never reassigned (OpenID Connect Core §2). */
  subject: string;
  email: string | null;
  emailVerified: boolean;
  homeRegion: string;
  createdAt: Date;
  lastUsedAt: Date;
  removedAt: Date | null;
  version: number;
}

/** What a provider said about who signed in: the claims of an ID token that passed every check. */
export interface ProviderIdentity {
  provider: string;
  subject: string;
  /** Normalized (src/core/users/email.ts) when the provider gave one. */
  email: string | null;
  /** The provider's `email_verified`: only `true` counts. */
  emailVerified: boolean;
  name: string | null;
  preferredUsername: string | null;
}
