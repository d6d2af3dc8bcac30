import { AppError } from '../../platform/errors.js';
import type { Clock } from '../../platform/clock.js';

/**
 * `rateLimit.introspectPerClient`: requests per service client per second, counted in this
 * process's memory (a fixed one-second window). Introspection is a hot path — a gateway may ask
 * on every request it proxies — so the limit costs a map lookup, not a Redis round trip; the
 * price is that it holds per server process: N processes admit up to N times the figure. Only
 * authenticated clients are counted, so the map holds at most one entry per configured client.
 */
export class ClientRateLimit {
  private readonly windows = new Map<string, { second: number; count: number }>();

  constructor(private readonly opts: { perSecond: number; clock: Clock; enabled: boolean }) {}

  /** Counts one request of `clientId`; throws `rate_limited` (Retry-After 1) over the limit. */
  take(clientId: string): void {
    if (!this.opts.enabled) return;
    const second = Math.floor(this.opts.clock.now().getTime() / 1000);
    const window = this.windows.get(clientId);
    if (window === undefined || window.second !== second) {
      this.windows.set(clientId, { second, count: 1 });
      return;
    }
    if (++window.count > this.opts.perSecond) {
      throw new AppError('rate_limited', `more than ${this.opts.perSecond} requests per second from this client`, { retryAfter: 1 });
    }
  }
}
