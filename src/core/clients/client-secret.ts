import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';

/**
 * Client ids and secrets, and how a secret is stored and checked.
 *
 * Ids are `svc_` + 16 random bytes in lower-case hex: url-safe, recognizable in logs and configs,
 * and not guessable (an id is not a secret, but nobody can list them by trying). Secrets are
 * `cs_` + 32 random bytes base64url (256 bits): the prefix lets secret scanners and people tell
 * one from a token.
 *
 * Why the stored hash is a plain SHA-256 — not argon2, not an HMAC under the server secret:
 * - A password needs a slow hash because people choose guessable ones. A 256-bit random secret
 *   cannot be guessed from its hash at any hashing speed, so argon2 would buy nothing and would
 *   cost tens of milliseconds of CPU and memory on every introspection call.
 * - An HMAC under AUTHCTL_SECRET would add nothing against guessing either, and it would tie every
 *   stored hash to that secret: rotating the server secret (AUTHCTL_PREVIOUS_SECRET, then dropping
 *   it) would silently break every client, and a region with another secret could not check the
 *   replicated hashes. A one-way hash of a 256-bit value is safe to store, back up and replicate.
 * The input is domain-separated, so the stored value is not the SHA-256 of anything else authctl
 * handles.
 */

const SECRET_PREFIX = 'cs_';
const ID_PREFIX = 'svc_';
const ID_RE = /^svc_[0-9a-f]{32}$/;
const DOMAIN = 'authctl/v1/service-client-secret\0';

export function generateClientId(): string {
  return ID_PREFIX + randomBytes(16).toString('hex');
}

/** Whether `id` has the form of a client id (anything else is unknown without a lookup). */
export function isClientId(id: string): boolean {
  return ID_RE.test(id);
}

export function generateClientSecret(): string {
  return SECRET_PREFIX + randomBytes(32).toString('base64url');
}

/** The 32-byte digest a secret is stored and compared as. */
export function digestClientSecret(secret: string): Buffer {
  return createHash('sha256').update(DOMAIN).update(secret, 'utf8').digest();
}

/** The stored form of a secret's digest (`secret_hash`): base64url, 43 characters. */
export function hashClientSecret(secret: string): string {
  return digestClientSecret(secret).toString('base64url');
}

/** Constant-time comparison of two 32-byte digests. */
export function digestsEqual(a: Buffer, b: Buffer): boolean {
  return a.length === b.length && timingSafeEqual(a, b);
}
