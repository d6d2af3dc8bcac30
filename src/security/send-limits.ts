import { createHash } from 'node:crypto';
import { Counter, type Registry } from 'prom-client';
import { RateLimiterRes, type RateLimiterAbstract } from 'rate-limiter-flexible';
import type { Config } from '../config/schema.js';
import type { Logger } from '../platform/logger.js';
import type { LimiterStore } from './limiter-store.js';

/** What a message is about, for its limits: each kind is limited on its own per address (`login`: e-mailed sign-in codes). */
export type SendKind = 'verify' | 'reset' | 'change' | 'login';

/**
 * Limits on the messages the e-mail flows send (`identity.send*`): per address and kind, one per
 * `sendInterval` and `sendsPerHour` an hour; per client address, `sendsPerIpPerHour` of every
 * kind. Over a limit nothing is sent and the caller still answers 202, so a limit tells nobody
 * whether an account exists. Counters live in the login limits' store (Redis, insured by
 * PostgreSQL); keys are hashes (no addresses in Redis).
 */
export class SendLimits {
  private readonly interval: RateLimiterAbstract;
  private readonly hourly: RateLimiterAbstract;
  private readonly ip: RateLimiterAbstract;
  private readonly limited: Counter<'scope'>;

  constructor(private readonly opts: { config: Config['identity']; enabled: boolean; store: LimiterStore; log: Logger; registry: Registry }) {
    const c = opts.config;
    this.interval = opts.store.create({ keyPrefix: 'mail_interval', points: 1, duration: c.sendInterval });
    this.hourly = opts.store.create({ keyPrefix: 'mail_hourly', points: c.sendsPerHour, duration: 3_600 });
    this.ip = opts.store.create({ keyPrefix: 'mail_ip', points: c.sendsPerIpPerHour, duration: 3_600 });
    this.limited = new Counter({
      name: 'authctl_mail_limited_total',
      help: 'Messages of the e-mail flows not sent because a send limit was reached, by scope (address, ip).',
      labelNames: ['scope'] as const,
      registers: [opts.registry],
    });
  }

  /**
   * Takes one send for `address` (its kind) and `ip`; false when a limit is reached. A store
   * failure (Redis and PostgreSQL both away) refuses too: nothing is sent rather than unlimited.
   */
  async allow(kind: SendKind, address: string, ip: string | undefined): Promise<boolean> {
    if (!this.opts.enabled) return true;
    const key = keyOf(kind, address);
    try {
      if (ip !== undefined) await this.ip.consume(ip);
    } catch (err) {
      return this.refused('ip', err);
    }
    try {
      await this.interval.consume(key);
      await this.hourly.consume(key);
      return true;
    } catch (err) {
      return this.refused('address', err);
    }
  }

  /**
   * Gives back a send {@link allow} took, when nothing was sent after all (the request failed, e.g.
   * 503 with the database away): otherwise the user's retry would be answered 202 and sent nothing.
   * Best effort: a store failure leaves the send counted.
   */
  async refund(kind: SendKind, address: string, ip: string | undefined): Promise<void> {
    if (!this.opts.enabled) return;
    const key = keyOf(kind, address);
    await Promise.allSettled([this.interval.reward(key, 1), this.hourly.reward(key, 1), ...(ip !== undefined ? [this.ip.reward(ip, 1)] : [])]);
  }

  private refused(scope: 'ip' | 'address', err: unknown): false {
    if (err instanceof RateLimiterRes) {
      this.limited.inc({ scope });
      this.opts.log.info('message not sent: send limit reached', { event: 'mail.limited', scope });
    } else {
      this.opts.log.warn('message not sent: the limit counters are unavailable', { event: 'security.rate_limit_store_failed', err });
    }
    return false;
  }
}

function keyOf(kind: SendKind, address: string): string {
  return createHash('sha256').update(`${kind}\n${address.toLowerCase()}`).digest('base64url');
}
