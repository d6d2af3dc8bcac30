import { pbkdf2, scrypt, timingSafeEqual, type BinaryLike, type ScryptOptions } from 'node:crypto';
import { promisify } from 'node:util';
import argon2 from 'argon2';
import bcrypt from '@node-rs/bcrypt';
import { HASH_COST_LIMITS, parseHash } from './hash-formats.js';

const pbkdf2Async = promisify(pbkdf2);
const scryptAsync = promisify(scrypt) as (password: BinaryLike, salt: BinaryLike, keylen: number, options: ScryptOptions) => Promise<Buffer>;

/**
 * Whether `password` matches a stored hash of any format authctl verifies (src/core/users/hash-formats.ts),
 * each through a well-kept implementation that runs off the event loop in libuv's thread pool:
 * argon2 through the `argon2` package (either parameter order), bcrypt through `@node-rs/bcrypt`,
 * scrypt and PBKDF2 through node:crypto. Digests are compared with `timingSafeEqual`. A malformed
 * hash, one of no known format, or one costing more than {@link HASH_COST_LIMITS} allows is `false`,
 * never a throw: a corrupt or hostile row reads as a failed login, not a server error, and cannot
 * make the server allocate gigabytes or spin for minutes.
 *
 * bcrypt reads only the first 72 bytes of the password's UTF-8 (the algorithm's own limit, which the
 * system the hash comes from applied too): a longer password matches when its first 72 bytes do.
 */
export async function verifyAnyHash(hash: string, password: string): Promise<boolean> {
  const parsed = parseHash(hash);
  if (!parsed) return false;
  try {
    switch (parsed.format) {
      case 'argon2id':
      case 'argon2i':
      case 'argon2d':
        return await argon2.verify(hash, password);
      case 'bcrypt':
        return await bcrypt.verify(password, hash);
      case 'scrypt': {
        const { n, r, p, salt, digest } = parsed;
        // node:crypto refuses past maxmem (128 · N · r); parseHash bounds the same product.
        const derived = await scryptAsync(password, salt, digest.length, { N: n, r, p, maxmem: HASH_COST_LIMITS.scryptMemory + 1024 * 1024 });
        return timingSafeEqual(derived, digest);
      }
      case 'pbkdf2-sha256':
      case 'pbkdf2-sha512':
      case 'django-pbkdf2-sha256': {
        const { iterations, salt, digest } = parsed;
        const algorithm = parsed.format === 'pbkdf2-sha512' ? 'sha512' : 'sha256';
        const derived = await pbkdf2Async(password, salt, iterations, digest.length, algorithm);
        return timingSafeEqual(derived, digest);
      }
    }
  } catch {
    return false;
  }
}
