import { randomBytes } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import argon2 from 'argon2';
import { verifyAnyHash } from './foreign-hashes.js';

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
 * The failure floor is this much above the slowest verification seen: the floor must lie above the
 * slow format's spread (bcrypt's runs vary by tens of percent on a busy machine), or its tail would
 * stick out of the padded answers.
 */
export const FLOOR_MARGIN = 1.5;
/** Runs of each sample hash when calibrating the floor (the slowest counts). */
export const CALIBRATION_RUNS = 3;
/** The floor never exceeds this (HASH_COST_LIMITS keeps real verifications well below it). */
const MAX_FLOOR_MS = 10_000;
/** Recent verification times kept per class of hash, and classes kept (a hostile import could write many costs). */
const FLOOR_WINDOW = 32;
const FLOOR_CLASSES = 64;

/** A hash's class: its format and cost, the part before its salt (`$2b$10$`, `$pbkdf2-sha256$i=27500$`). Hashes of a class verify in the same time. */
function hashClass(hash: string): string {
  if (/^\$2[aby]\$/.test(hash)) return hash.slice(0, 7);
  const digestAt = hash.lastIndexOf('$');
  return hash.slice(0, hash.lastIndexOf('$', digestAt - 1) + 1);
}

function percentile90(runs: readonly number[]): number {
  const sorted = [...runs].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * 0.9))]!;
}

/**
 * Hashes and verifies passwords with argon2id at fixed cost parameters (default
 * {@link OWASP_ARGON2_MINIMUM}). Hashes are PHC strings that embed their own parameters, so hashes
 * made with older parameters still verify; {@link PasswordHasher.needsRehash} tells when to
 * upgrade one after a successful login.
 */
export class PasswordHasher {
  readonly params: Readonly<Argon2Params>;
  private dummyHash: Promise<string> | undefined;
  private floorMs = 0;
  /** The last {@link FLOOR_WINDOW} verification times (ms) of each class of hash, while there is a floor. */
  private recent = new Map<string, number[]>();

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
   * Returns whether `password` matches `hash`, of any format authctl verifies (argon2id, and the
   * formats users are imported with: {@link verifyAnyHash}). A malformed or unsupported hash yields
   * `false` instead of throwing, so a corrupt row reads as a failed login rather than a server error.
   * An account without a password (`null`: created by an e-mailed sign-in code) matches nothing,
   * after a {@link PasswordHasher.dummyVerify}: a password tried on it takes the time a wrong one
   * takes, so the answer does not tell that the account has no password.
   *
   * While the {@link PasswordHasher.failureFloor} is set (foreign hashes are stored), a failed check
   * returns no earlier than the floor after it started: a wrong password for a bcrypt-imported user,
   * for an argon2id user and for an unknown one then take the same time (README "Password hash formats").
   */
  async verify(hash: string | null, password: string): Promise<boolean> {
    if (hash === null) {
      await this.dummyVerify(password);
      return false;
    }
    const started = performance.now();
    // authctl's own hashes go straight to argon2, as they always have: no parsing on that path.
    const foreign = !hash.startsWith('$argon2id$');
    const ok = foreign ? await verifyAnyHash(hash, password) : await argon2.verify(hash, password).catch(() => false);
    const elapsed = performance.now() - started;
    this.observe?.('verify', elapsed / 1000);
    // Any foreign verification sets or moves the floor; argon2id ones only once there is one.
    if (foreign || this.floorMs > 0) this.record(hash, elapsed);
    if (!ok && this.floorMs > 0) {
      const remaining = started + this.floorMs - performance.now();
      // Rounded up: timers take whole milliseconds and truncate, which would end up to 1 ms short.
      if (remaining > 0) await sleep(Math.ceil(remaining));
    }
    return ok;
  }

  /**
   * How long, in milliseconds, every failed password check lasts at least: 0 (no padding: the
   * argon2id-only case) until a foreign hash is verified or {@link PasswordHasher.calibrateFloor}
   * finds some stored. It is {@link FLOOR_MARGIN} times the 90th percentile of the recent
   * verifications of the slowest class of hash (format and cost: `$2b$10$`), so it follows the
   * machine's load both ways without jumping at one outlier (a GC pause, a burst).
   */
  get failureFloor(): number {
    return this.floorMs;
  }

  /**
   * Sets the {@link PasswordHasher.failureFloor} from scratch: each of `samples` (one stored hash per
   * format and cost of the foreign hashes present, `StatsRepo.foreignHashSamples`) and the dummy
   * argon2id hash are verified {@link CALIBRATION_RUNS} times with a random password, and these runs
   * are the recent verifications the floor is computed from; 0 when there are no samples (every
   * foreign hash has been replaced), which ends the padding. Returns the new floor.
   */
  async calibrateFloor(samples: readonly string[]): Promise<number> {
    // Measured aside and swapped in whole: the floor in force pads every failed check meanwhile
    // (dropping it for the seconds a calibration takes would let a bcrypt user's wrong password
    // answer faster than an unknown user's, every 5 minutes).
    const fresh = new Map<string, number[]>();
    if (samples.length > 0) {
      const probe = randomBytes(32).toString('base64url');
      for (const hash of [await this.dummy(), ...samples]) {
        for (let i = 0; i < CALIBRATION_RUNS; i++) {
          const started = performance.now();
          await (hash.startsWith('$argon2id$') ? argon2.verify(hash, probe).catch(() => false) : verifyAnyHash(hash, probe));
          addRun(fresh, hashClass(hash), performance.now() - started);
        }
      }
    }
    this.recent = fresh;
    this.floorMs = floorOf(fresh);
    return this.floorMs;
  }

  /** A verification of `hash` took `elapsedMs`: it joins its class's recent runs, and the floor is recomputed. */
  private record(hash: string, elapsedMs: number): void {
    addRun(this.recent, hashClass(hash), elapsedMs);
    this.floorMs = floorOf(this.recent);
  }

  private async dummy(): Promise<string> {
    this.dummyHash ??= this.hash(randomBytes(32).toString('base64url'));
    try {
      return await this.dummyHash;
    } catch (err) {
      this.dummyHash = undefined;
      throw err;
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
    // hashes and is computed once, lazily, from a random password nobody knows. With foreign hashes
    // stored, verify's failure floor pads it like every other failed check.
    await this.verify(await this.dummy(), password);
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

/** Adds a run to its class's window (the classes seen least recently leave first). */
function addRun(recent: Map<string, number[]>, cls: string, elapsedMs: number): void {
  const runs = recent.get(cls) ?? [];
  runs.push(elapsedMs);
  if (runs.length > FLOOR_WINDOW) runs.shift();
  recent.delete(cls); // re-inserted last
  recent.set(cls, runs);
  if (recent.size > FLOOR_CLASSES) recent.delete(recent.keys().next().value!);
}

/** {@link FLOOR_MARGIN} times the slowest class's 90th percentile, bounded by {@link MAX_FLOOR_MS}; 0 with no runs. */
function floorOf(recent: Map<string, number[]>): number {
  let slowest = 0;
  for (const r of recent.values()) slowest = Math.max(slowest, percentile90(r));
  return Math.min(MAX_FLOOR_MS, slowest * FLOOR_MARGIN);
}
