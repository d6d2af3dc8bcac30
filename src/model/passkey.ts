/**
 * Passkeys: WebAuthn credentials (migration 0014-passkeys; README "Passkeys").
 */

/** The transports an authenticator said it can be reached over (WebAuthn `AuthenticatorTransport`). */
export const PASSKEY_TRANSPORTS = ['ble', 'cable', 'hybrid', 'internal', 'nfc', 'smart-card', 'usb'] as const;
export type PasskeyTransport = (typeof PASSKEY_TRANSPORTS)[number];

/**
 * One passkey of a user. The public key and the credential id are base64url; nothing here is
 * secret (the private key never leaves the authenticator). A removed passkey keeps its row
 * (`removedAt`) so that a late change from another region cannot bring it back.
 */
export interface PasskeyRecord {
  id: string;
  userId: string;
  /** The credential id the authenticator chose (base64url): what a sign-in names. */
  credentialId: string;
  /** The COSE public key (base64url). */
  publicKey: string;
  /** The signature counter last seen (0 for authenticators that keep none). */
  counter: number;
  transports: PasskeyTransport[];
  /** The authenticator model's AAGUID (all zeros when it gave none). */
  aaguid: string;
  /** WebAuthn's BE flag: a multi-device credential (synced by a passkey provider). */
  backupEligible: boolean;
  /** WebAuthn's BS flag, as last seen: the credential is backed up now. */
  backedUp: boolean;
  name: string;
  homeRegion: string;
  createdAt: Date;
  /** When the name or the state (removal) last changed; a use moves `lastUsedAt` only. */
  updatedAt: Date;
  lastUsedAt: Date | null;
  removedAt: Date | null;
  version: number;
}
