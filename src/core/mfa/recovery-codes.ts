import { randomBytes } from 'node:crypto';
import argon2 from 'argon2';

/** Crockford's base32 alphabet: no I, L, O or U, so a code read aloud or copied by hand survives. */
const ALPHABET = '0123456789ABCDEFGHJKMNPQRSTVWXYZ';
const LENGTH = 12;

/**
 * argon2id at fixed parameters, lighter than the login hasher's: a code has 60 random bits (a
 * password has far fewer), and a login with one checks it against up to ten hashes. NIST SP
 * 800-63B §5.1.2.2 asks a salted, costly hash of look-up secrets below 112 bits; 8 MiB × 2 passes
 * makes each guess against a stolen table cost memory-hard work while ten checks stay near 50 ms.
 */
const PARAMS = { type: argon2.argon2id, memoryCost: 8192, timeCost: 2, parallelism: 1 } as const;

/** How many codes a user gets at enrolment and at each regeneration. */
export const RECOVERY_CODE_COUNT = 10;

/**
 * Ten new recovery codes, shown as `xxxx-xxxx-xxxx`: 12 Crockford base32 characters, 60 bits each
 * (NIST SP 800-63B asks look-up secrets for ≥ 20 bits; we want ≥ 50). One random byte per character, its low 5 bits (256 is a multiple of 32:
 * no bias).
 */
export function newRecoveryCodes(count = RECOVERY_CODE_COUNT): string[] {
  return Array.from({ length: count }, () => {
    const chars = [...randomBytes(LENGTH)].map((b) => ALPHABET[b & 31]!).join('');
    return `${chars.slice(0, 4)}-${chars.slice(4, 8)}-${chars.slice(8)}`.toLowerCase();
  });
}

/**
 * A code as typed, in the one form that is hashed: case, dashes and spaces ignored, and the
 * letters Crockford's base32 reads as digits (I and L as 1, O as 0) read so. Undefined for what
 * cannot be a code (no hash is checked for it).
 */
export function normalizeRecoveryCode(input: string): string | undefined {
  const code = input.replace(/[\s-]/g, '').toUpperCase().replace(/[IL]/g, '1').replace(/O/g, '0');
  return code.length === LENGTH && [...code].every((ch) => ALPHABET.includes(ch)) ? code : undefined;
}

export function hashRecoveryCode(code: string): Promise<string> {
  return argon2.hash(normalizeRecoveryCode(code)!, PARAMS);
}

/** Whether a normalized code matches a stored hash. */
export function recoveryCodeMatches(hash: string, normalized: string): Promise<boolean> {
  return argon2.verify(hash, normalized);
}
