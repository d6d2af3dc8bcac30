import type { Logger } from '../../platform/logger.js';
import { homeRegionOf } from '../tokens/refresh-token.js';
import type { ReplicationMetrics } from './metrics.js';
import type { PeerRegistry } from './peers.js';

/** A region's answer to a proxied refresh, relayed to the client as it is. */
export class RelayedResponse {
  constructor(
    readonly status: number,
    readonly body: unknown,
  ) {}
}

export interface RefreshProxyOptions {
  region: string;
  peers: Pick<PeerRegistry, 'find'>;
  /** `regions.proxyTimeoutMs`: how long the home region has to answer. */
  timeoutMs: number;
  metrics: Pick<ReplicationMetrics, 'crossRegionRefreshes'>;
  log: Logger;
  fetch?: typeof fetch;
}

/**
 * Refreshes of sessions homed in another region go to that region, which alone is always right
 * about them, while it answers; the caller (AuthService.refresh) serves them from the local
 * replica otherwise.
 */
export class RefreshProxy {
  constructor(private readonly opts: RefreshProxyOptions) {}

  /** Whether a token names another region as its home (by its prefix; its MAC is the caller's to check). */
  homedElsewhere(token: unknown): token is string {
    const home = homeRegionOf(token);
    return home !== undefined && home !== this.opts.region;
  }

  /**
   * The home region's answer to refreshing this authentic token, when it gives one within the
   * timeout; `undefined` when `home` is not a peer, does not answer in time, or answers 5xx.
   */
  async relay(refreshToken: string, home: string, requestId: string | undefined): Promise<RelayedResponse | undefined> {
    const peer = this.opts.peers.find(home);
    if (!peer) return undefined;
    try {
      const res = await (this.opts.fetch ?? fetch)(new URL('/v1/auth/refresh', peer.url), {
        method: 'POST',
        headers: { 'content-type': 'application/json', ...(requestId ? { 'x-request-id': requestId } : {}) },
        body: JSON.stringify({ refreshToken }),
        signal: AbortSignal.timeout(this.opts.timeoutMs),
      });
      // 5xx: the home region is there but cannot decide (its database is down): use the replica.
      if (res.status >= 500) throw new Error(`home region answered ${res.status}`);
      const body: unknown = await res.json();
      this.opts.metrics.crossRegionRefreshes.inc({ home, path: 'proxied' });
      return new RelayedResponse(res.status, body);
    } catch (err) {
      this.opts.metrics.crossRegionRefreshes.inc({ home, path: 'replica' });
      this.opts.log.info('home region did not answer: refresh served from the local replica', { event: 'region.refresh_replica', home, err });
      return undefined;
    }
  }
}
