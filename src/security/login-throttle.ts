import { createHash } from 'node:crypto';
import { Counter, type Registry } from 'prom-client';
import { RateLimiterRes, type RateLimiterAbstract } from 'rate-limiter-flexible';
import type { Config } from '../config/schema.js';
import { foldUsername } from '../core/users/username.js';
import { AppError, isAppError } from '../platform/errors.js';
import type { Logger } from '../platform/logger.js';
import type { LimiterStore } from './limiter-store.js';

export type ThrottleScope = 'account' | 'ip' | 'register';

/**
 * The failures that stay counted: a wrong password, a wrong code (an e-mailed sign-in code, a TOTP
 * or recovery code), and a passkey answer that proves nothing or fails a check of the ceremony.
 */
const COUNTED = ['invalid_credentials', 'invalid_code', 'passkey_rejected', 'invalid_passkey_response', 'invalid_passkey_challenge'] as const;
const isCountedFailure = (err: unknown) => COUNTED.some((code) => isAppError(err, code));

export interface LoginThrottleOptions {
  config: Config['rateLimit'];
  store: LimiterStore;
  log: Logger;
  registry: Registry;
}

/**
 * Brute-force protection for everything that checks a password (docs/api.md#rate-limits, NIST SP 800-63B
 * §5.2.2, OWASP ASVS V2.2.1):
 *
 * - per account (the normalized username, so spelling variants share one counter, and unknown
 *   usernames are throttled exactly like real ones: a 429 tells nothing about existence):
 *   `freeFailures` failures, then a back-off that doubles from 1 s per failure up to
 *   `maxBackoff`, and never more than `maxFailures` (≤ 100) within `failureWindow`. Nothing
 *   is permanent: the back-off and the window expire by themselves, and a successful login
 *   resets both.
 * - per client address: `ipFailures` failed logins per `ipWindow` (password spraying across
 *   accounts); a success gives its point back.
 * - registrations per client address.
 *
 * An attempt is counted *before* the password is verified, so concurrent guesses cannot all
 * slip past the gate, and while a limit holds even the right password answers 429: the
 * response never says whether a guess was right.
 */
export class LoginThrottle {
  private readonly failures: RateLimiterAbstract;
  private readonly backoff: RateLimiterAbstract;
  private readonly ip: RateLimiterAbstract;
  private readonly register: RateLimiterAbstract;
  private readonly limited: Counter<'scope'>;

  constructor(private readonly opts: LoginThrottleOptions) {
    const c = opts.config;
    this.failures = opts.store.create({ keyPrefix: 'login_fail_account', points: c.maxFailures, duration: c.failureWindow });
    // One point per back-off period: the first attempt past the free ones takes it and opens a
    // window as long as its back-off; anything else in that window (concurrent or later) is refused.
    this.backoff = opts.store.create({ keyPrefix: 'login_backoff', points: 1, duration: 1 });
    this.ip = opts.store.create({ keyPrefix: 'login_fail_ip', points: c.ipFailures, duration: c.ipWindow });
    this.register = opts.store.create({ keyPrefix: 'register_ip', points: c.registerPerIp, duration: c.registerWindow });
    this.limited = new Counter({
      name: 'authctl_rate_limited_total',
      help: 'Requests refused with 429 rate_limited, by scope (account, ip, register).',
      labelNames: ['scope'] as const,
      registers: [opts.registry],
    });
  }

  /**
   * Runs `verify` (which checks `username`'s password, or a code or passkey of theirs) under the
   * login limits. A wrong password (`invalid_credentials`), a wrong code (`invalid_code`: an
   * e-mailed sign-in code, a TOTP or recovery code) or a passkey answer refused
   * (`passkey_rejected`, `invalid_passkey_response`, `invalid_passkey_challenge`) stays counted —
   * one counter per account for every credential, so a second factor is no way around the
   * password's limits, nor the other way round; success resets the account; any other outcome
   * (disabled account, database down) gives the attempt back. Without `username` (a passkey
   * nobody has: no account to count against), only the client address is counted.
   */
  async guard<T>(username: string | undefined, ip: string, verify: () => Promise<T>): Promise<T> {
    if (!this.opts.config.enabled) return verify();
    const account = username === undefined ? undefined : accountKey(username);
    await this.check('ip', this.ip.consume(ip));
    if (account === undefined) return this.addressOnly(ip, verify);
    let counted = false;
    try {
      const res = await this.check('account', this.failures.consume(account));
      counted = true;
      const over = (res?.consumedPoints ?? 0) - this.opts.config.freeFailures;
      // Past the free failures, each attempt must take the back-off's single point, atomically in
      // the store: of concurrent guesses exactly one proceeds, and the window it opens (1, 2, 4 … s)
      // holds off the next attempt even while this one is being verified.
      if (over > 0) await this.check('account', this.backoff.consume(account, 1, { customDuration: this.backoffSeconds(over) }));
    } catch (err) {
      // A refused attempt checks no password: it gives back what it counted.
      await Promise.all([this.ip.reward(ip), counted ? this.failures.reward(account) : undefined]).catch(() => undefined);
      throw err;
    }
    try {
      const result = await verify();
      // The login stands even if the reset fails (both stores down): the account just stays counted.
      await Promise.all([this.failures.delete(account), this.backoff.delete(account), this.ip.reward(ip)]).catch((err: unknown) =>
        this.opts.log.warn('throttle counters not reset', { event: 'security.rate_limit_store_failed', err }),
      );
      return result;
    } catch (err) {
      if (!isCountedFailure(err)) {
        await Promise.all([this.failures.reward(account), this.backoff.delete(account), this.ip.reward(ip)]).catch(() => undefined);
      }
      throw err;
    }
  }

  /** The rest of {@link guard} without an account: the address's point is kept for a counted failure only. */
  private async addressOnly<T>(ip: string, verify: () => Promise<T>): Promise<T> {
    try {
      const result = await verify();
      await this.ip.reward(ip).catch(() => undefined);
      return result;
    } catch (err) {
      if (!isCountedFailure(err)) await this.ip.reward(ip).catch(() => undefined);
      throw err;
    }
  }

  /** Counts one registration attempt from `ip`; 429 once the address is over its limit. */
  async guardRegistration(ip: string): Promise<void> {
    if (!this.opts.config.enabled) return;
    await this.check('register', this.register.consume(ip));
  }

  /** The back-off after the `over`-th failure past the free ones: 1, 2, 4, … s, capped. */
  backoffSeconds(over: number): number {
    return Math.min(2 ** Math.min(over - 1, 30), this.opts.config.maxBackoff);
  }

  /** Awaits a limiter call; a rejection by the limit becomes 429, a store failure 503. */
  private async check(scope: ThrottleScope, call: Promise<RateLimiterRes | null>): Promise<RateLimiterRes | null> {
    let res: RateLimiterRes | null;
    try {
      res = await call;
    } catch (err) {
      if (err instanceof RateLimiterRes) throw this.refuse(scope, err);
      // Both stores failed (Redis and PostgreSQL): refuse rather than run unthrottled.
      throw new AppError('unavailable', 'the service is temporarily unavailable', { cause: err, retryAfter: 1 });
    }
    return res;
  }

  private refuse(scope: ThrottleScope, res: RateLimiterRes): AppError {
    const retryAfter = Math.max(1, Math.ceil(res.msBeforeNext / 1000));
    this.limited.inc({ scope });
    this.opts.log.warn('request throttled', { event: 'security.rate_limited', scope, retryAfter });
    return new AppError('rate_limited', `too many attempts; retry in ${retryAfter} s`, { retryAfter });
  }
}

/** The counter key of a username: its normalized form, hashed (bounded length, no PII in Redis). */
function accountKey(username: string): string {
  return createHash('sha256').update(foldUsername(username)).digest('base64url');
}
