import { randomBytes } from 'node:crypto';
import argon2 from 'argon2';

/** argon2id cost parameters. */
export interface Argon2Params {
  /** Memory in KiB. */
  memoryCost: number;
  /** Number of passes. */
  timeCost: number;
  /** Degree of parallelism (lanes). */
  parallelism: number;
}

/**
 * The OWASP Password Storage Cheat Sheet minimum for argon2id: m = 19 MiB (19456 KiB), t = 2,
 * p = 1. It is the default for {@link PasswordHasher}; deployments may calibrate stronger values.
 */
export const OWASP_ARGON2_MINIMUM: Readonly<Argon2Params> = Object.freeze({
  memoryCost: 19456,
  timeCost: 2,
  parallelism: 1,
});

/**
 * Hashes and verifies passwords with argon2id at fixed cost parameters (default
 * {@link OWASP_ARGON2_MINIMUM}). Hashes are PHC strings that embed their own parameters, so hashes
 * made with older parameters still verify; {@link PasswordHasher.needsRehash} tells when to
 * upgrade one after a successful login.
 */
export class PasswordHasher {
  readonly params: Readonly<Argon2Params>;
  private dummyHash: Promise<string> | undefined;

  /** @param observe receives the duration of every hash and verification (metrics). */
  constructor(
    params: Argon2Params = OWASP_ARGON2_MINIMUM,
    private readonly observe?: (op: 'hash' | 'verify', seconds: number) => void,
  ) {
    this.params = Object.freeze({
      memoryCost: params.memoryCost,
      timeCost: params.timeCost,
      parallelism: params.parallelism,
    });
  }

  /** Returns the argon2id PHC string for `password` (parameters in the standard order, {@link standardPhc}), with a fresh random salt. */
  async hash(password: string): Promise<string> {
    const started = performance.now();
    const hash = await argon2.hash(password, { type: argon2.argon2id, ...this.params });
    this.observe?.('hash', (performance.now() - started) / 1000);
    return standardPhc(hash);
  }

  /**
   * Returns whether `password` matches `hash`. A malformed or unsupported hash yields `false`
   * instead of throwing, so a corrupt row reads as a failed login rather than a server error. An
   * account without a password (`null`: created by an e-mailed sign-in code) matches nothing, after
   * a {@link PasswordHasher.dummyVerify}: a password tried on it takes the time a wrong one takes,
   * so the answer does not tell that the account has no password.
   */
  async verify(hash: string | null, password: string): Promise<boolean> {
    if (hash === null) {
      await this.dummyVerify(password);
      return false;
    }
    const started = performance.now();
    try {
      return await argon2.verify(hash, password);
    } catch {
      return false;
    } finally {
      this.observe?.('verify', (performance.now() - started) / 1000);
    }
  }

  /**
   * Spends the same time as a real {@link PasswordHasher.verify} and discards the result. Call it
   * when the username is unknown (or the account has no password) so that response time does not
   * reveal whether an account exists.
   */
  async dummyVerify(password: string): Promise<void> {
    // User enumeration by timing: without this, "no such user" answers in microseconds while
    // "wrong password" takes a full argon2 run. The dummy hash uses the same parameters as new
    // hashes and is computed once, lazily, from a random password nobody knows.
    this.dummyHash ??= this.hash(randomBytes(32).toString('base64url'));
    let dummy: string;
    try {
      dummy = await this.dummyHash;
    } catch (err) {
      this.dummyHash = undefined;
      throw err;
    }
    await this.verify(dummy, password);
  }

  /**
   * Returns whether `hash` should be replaced by a fresh one: it is not argon2id, its version or
   * cost parameters differ from the current ones, or it cannot be parsed.
   */
  needsRehash(hash: string): boolean {
    if (!hash.startsWith('$argon2id$')) return true;
    try {
      return argon2.needsRehash(hash, this.params);
    } catch {
      return true;
    }
  }

  /**
   * What a stored hash should become after `password` matched it, or `undefined` when it is fine
   * as it is: a fresh hash when its algorithm or cost parameters are not the current ones; the
   * same hash in the standard parameter order when only the order differs (no argon2 run: the
   * salt and digest do not change).
   */
  async upgrade(hash: string, password: string): Promise<string | undefined> {
    if (this.needsRehash(hash)) return this.hash(password);
    const standard = standardPhc(hash);
    return standard === hash ? undefined : standard;
  }
}

// `$argon2id$v=19$m=…,p=…,t=…$salt$digest`: the order the argon2 package (0.4x) writes.
const ARGON2_MPT = /^\$(argon2(?:id|i|d))\$v=(\d+)\$m=(\d+),p=(\d+),t=(\d+)\$([^$]+)\$([^$]+)$/;

/**
 * An argon2 PHC string with its parameters in the order the PHC string format specifies (m, t, p).
 * The `argon2` package writes them as m, p, t (its issue #559); libargon2's own decoder, libsodium,
 * argon2-cffi, Symfony and Spring Security refuse such strings, so every hash authctl stores or
 * exports is put in the standard order. Reordering changes neither the salt nor the digest; the
 * package verifies either order. Anything else is returned as it is.
 */
export function standardPhc(hash: string): string {
  const m = ARGON2_MPT.exec(hash);
  if (!m) return hash;
  const [, alg, v, mem, p, t, salt, digest] = m;
  return `$${alg}$v=${v}$m=${mem},t=${t},p=${p}$${salt}$${digest}`;
}
