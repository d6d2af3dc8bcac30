/**
 * A stored hash that is not authctl's own argon2id (a password-less account's null is not one).
 * Spelled exactly so in every query that is to use `users_foreign_hash_idx` (0012-foreign-hashes).
 */
export const FOREIGN_HASH_SQL = `password_hash not like '$argon2id$%'`;

/**
 * A hash's format and cost, the part before its salt: `$2b$10$`, `$scrypt$ln=15,r=8,p=1$`,
 * `$pbkdf2-sha256$i=27500$`, `$argon2i$v=19$m=65536,t=3,p=4$`, `pbkdf2_sha256$870000$`. Hashes of
 * one class take the same time to verify. The key of `users_foreign_hash_idx`.
 */
export const HASH_CLASS_SQL = `substring(password_hash from '^(\\$2[aby]\\$[0-9]+\\$|\\$[a-z0-9-]+\\$(v=[0-9]+\\$){0,1}[^$]*\\$|[a-z0-9_]+\\$[0-9]+\\$)')`;
