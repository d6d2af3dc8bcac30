/**
 * The password hash formats authctl verifies (README "Moving users in and out"): its own argon2id,
 * and the formats of the systems users are imported from. Every stored hash is one string; each
 * format's string is the one its own ecosystem writes, or the PHC string format where a source
 * stores the parts apart (a Keycloak credential becomes `$pbkdf2-sha256$…`).
 *
 * | format | stored string |
 * |---|---|
 * | `argon2id`, `argon2i`, `argon2d` | PHC: `$argon2id$v=19$m=19456,t=2,p=1$<salt>$<digest>` (the `m,p,t` order the argon2 package wrote is read too) |
 * | `bcrypt` | `$2a$`, `$2b$` or `$2y$`, the cost, 22 characters of salt and 31 of digest (bcrypt's own base64) |
 * | `scrypt` | PHC: `$scrypt$ln=<log2 N>,r=<r>,p=<p>$<salt>$<digest>` |
 * | `pbkdf2-sha256`, `pbkdf2-sha512` | PHC: `$pbkdf2-sha256$i=<iterations>$<salt>$<digest>` (Keycloak's credentials, converted at import) |
 * | `django-pbkdf2-sha256` | Django's own: `pbkdf2_sha256$<iterations>$<salt>$<digest>` (the salt is used as its UTF-8 text) |
 *
 * PHC salts and digests are base64 without padding (standard alphabet, as the PHC format says).
 */
export const HASH_FORMATS = ['argon2id', 'argon2i', 'argon2d', 'bcrypt', 'scrypt', 'pbkdf2-sha256', 'pbkdf2-sha512', 'django-pbkdf2-sha256'] as const;
export type HashFormat = (typeof HASH_FORMATS)[number];

/** Every format but the one authctl writes: a user with one of these is rehashed at the next login. */
export type ForeignHashFormat = Exclude<HashFormat, 'argon2id'>;

const B64 = '[A-Za-z0-9+/]+';
const PATTERNS: Array<[HashFormat, RegExp]> = [
  ['argon2id', new RegExp(`^\\$argon2id\\$v=\\d+\\$(?:m=\\d+,t=\\d+,p=\\d+|m=\\d+,p=\\d+,t=\\d+)\\$${B64}\\$${B64}$`)],
  ['argon2i', new RegExp(`^\\$argon2i\\$v=\\d+\\$(?:m=\\d+,t=\\d+,p=\\d+|m=\\d+,p=\\d+,t=\\d+)\\$${B64}\\$${B64}$`)],
  ['argon2d', new RegExp(`^\\$argon2d\\$v=\\d+\\$(?:m=\\d+,t=\\d+,p=\\d+|m=\\d+,p=\\d+,t=\\d+)\\$${B64}\\$${B64}$`)],
  ['bcrypt', /^\$2[aby]\$(0[4-9]|[12]\d|3[01])\$[./A-Za-z0-9]{53}$/],
  ['scrypt', new RegExp(`^\\$scrypt\\$ln=\\d{1,2},r=\\d{1,3},p=\\d{1,3}\\$${B64}\\$${B64}$`)],
  ['pbkdf2-sha256', new RegExp(`^\\$pbkdf2-sha256\\$i=\\d{1,8}\\$${B64}\\$${B64}$`)],
  ['pbkdf2-sha512', new RegExp(`^\\$pbkdf2-sha512\\$i=\\d{1,8}\\$${B64}\\$${B64}$`)],
  ['django-pbkdf2-sha256', /^pbkdf2_sha256\$\d{1,8}\$[^$]{1,128}\$[A-Za-z0-9+/]+={0,2}$/],
];

/** The format of a stored hash string, or `undefined` when it is none authctl can verify. */
export function hashFormat(hash: string): HashFormat | undefined {
  if (hash.length > 1024) return undefined;
  for (const [format, pattern] of PATTERNS) if (pattern.test(hash)) return format;
  return undefined;
}

/** A PHC PBKDF2 string from its parts (Keycloak keeps salt, digest and iterations apart; standard base64 in, padding dropped). */
export function pbkdf2Phc(digest: 'sha256' | 'sha512', iterations: number, saltBase64: string, hashBase64: string): string {
  const unpad = (s: string) => s.replace(/=+$/, '');
  return `$pbkdf2-${digest}$i=${iterations}$${unpad(saltBase64)}$${unpad(hashBase64)}`;
}
