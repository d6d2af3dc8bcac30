import type { Config } from '../../config/schema.js';
import type { Logger } from '../../platform/logger.js';
import type { OutboxRepo } from '../../store/pg/outbox-repo.js';
import type { ReplicationApplyRepo } from '../../store/pg/replication-apply-repo.js';
import type { Clock } from '../../platform/clock.js';
import type { ReplicationMetrics } from './metrics.js';
import type { Peer, PeerRegistry } from './peers.js';
import { signRequest } from './signature.js';
import { encodeBatch } from './wire.js';

export interface ShipperOptions {
  outbox: Pick<OutboxRepo, 'peer' | 'claim' | 'foreignOwners' | 'acknowledge' | 'fail'>;
  /** Forgets old applied-batch ids and tombstones, once an hour. */
  applied: Pick<ReplicationApplyRepo, 'prune'>;
  config: Config;
  clock: Clock;
  log: Logger;
  metrics: Pick<ReplicationMetrics, 'errors' | 'lag'>;
  peers: readonly Peer[];
  fetch?: typeof fetch;
}

/** Longer than any delivery (the request times out first), so a lease only lapses if its worker died. */
const LEASE_MS = 60_000;
const REQUEST_TIMEOUT_MS = 30_000;
const PRUNE_EVERY_MS = 3_600_000;

/** A peer's answer that is not 2xx: it is up, but did not apply the batch. */
class Refused extends Error {}
/** The peer needs rows another region has not delivered yet: retried, never dead-lettered. */
class Waiting extends Error {}

/**
 * Ships the outbox to each peer: one loop per peer, each leasing the oldest pending changes,
 * POSTing them as one HMAC-signed batch to `/internal/replication`, and deleting them once the
 * peer applied them. A failure backs the peer off exponentially (`retryBaseMs` doubling up to
 * `retryMaxMs`); changes a peer *refuses* `maxAttempts` times are dead-lettered, while changes for
 * an unreachable peer wait for it however long it is away (nothing is lost to an outage).
 */
export class Shipper {
  private stopped = false;
  private loops: Array<Promise<void>> = [];
  private readonly wake = new Set<() => void>();
  private failing = new Set<string>();
  private lastPrune = 0;
  private readonly lastLoopError = new Map<string, number>();

  constructor(private readonly opts: ShipperOptions) {}

  start(): void {
    for (const peer of this.opts.peers) this.loops.push(this.loop(peer));
  }

  async stop(): Promise<void> {
    this.stopped = true;
    for (const wake of this.wake) wake();
    await Promise.all(this.loops);
  }

  private async loop(peer: Peer): Promise<void> {
    while (!this.stopped) {
      let shipped = 0;
      try {
        shipped = await this.shipOnce(peer);
        await this.pruneApplied();
      } catch (err) {
        // Usually the region's own database is away: say so once a minute, not every poll.
        const now = Date.now();
        if (now - (this.lastLoopError.get(peer.name) ?? 0) > 60_000) {
          this.lastLoopError.set(peer.name, now);
          this.opts.log.warn('replication shipping failed', { event: 'replication.error', peer: peer.name, err });
        }
      }
      if (shipped === 0) await this.sleep(this.opts.config.regions.pollIntervalMs);
    }
  }

  /** Ships one batch to `peer` if it has pending changes and is not backing off; returns how many. */
  async shipOnce(peer: Peer): Promise<number> {
    const { outbox, config, clock, metrics, log } = this.opts;
    const state = await outbox.peer(peer.name);
    if (state?.nextAttemptAt && state.nextAttemptAt > clock.now()) return 0;
    const entries = await outbox.claim(peer.name, config.regions.batchSize, LEASE_MS);
    if (entries.length === 0) return 0;
    const { body } = encodeBatch(config.region, [
      ...(await outbox.foreignOwners(entries, config.region)),
      ...entries.map((e) => ({ entity: e.entity, payload: e.payload })),
    ]);
    const ids = entries.map((e) => e.id);
    try {
      const res = await (this.opts.fetch ?? fetch)(new URL('/internal/replication', peer.url), {
        method: 'POST',
        headers: { 'content-type': 'application/json', ...signRequest(peer.secret, config.region, body, clock.now().getTime()) },
        body,
        signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS),
      });
      // 409: the peer lacks a row another region's stream will bring (a session's user): wait.
      if (res.status === 409) throw new Waiting(`peer is waiting for rows from another region: ${(await res.text()).slice(0, 200)}`);
      // 5xx, 408, 429: the peer is there but cannot take changes now (its database is down, a
      // proxy in front of stopped servers): retried like an unreachable peer, never dead-lettered.
      if (res.status >= 500 || res.status === 408 || res.status === 429) throw new Error(`peer answered ${res.status}`);
      if (!res.ok) throw new Refused(`peer answered ${res.status}: ${(await res.text()).slice(0, 200)}`);
      await res.arrayBuffer().catch(() => undefined);
    } catch (err) {
      const refused = err instanceof Refused;
      const attempts = (state?.attempts ?? 0) + 1;
      const backoffMs = Math.min(config.regions.retryMaxMs, config.regions.retryBaseMs * 2 ** Math.min(attempts - 1, 20));
      const message = refused || err instanceof Waiting ? err.message : `unreachable: ${(err as Error).message}`;
      const dead = await outbox.fail(peer.name, ids, message, clock.now(), { backoffMs, deadAfter: refused ? config.regions.maxAttempts : undefined });
      metrics.errors.inc({ peer: peer.name, kind: refused ? 'refused' : 'unreachable' });
      if (!this.failing.has(peer.name) || dead > 0) {
        log.warn('replication to peer failed; retrying with back-off', {
          event: 'replication.failed',
          peer: peer.name,
          error: message,
          backoffMs,
          deadLettered: dead,
        });
      }
      this.failing.add(peer.name);
      return 0;
    }
    const now = clock.now().getTime();
    const lags = entries.map((e) => Math.max(0, now - e.createdAt.getTime()));
    await outbox.acknowledge(peer.name, ids, lags, new Date(now));
    for (const lag of lags) metrics.lag.observe({ peer: peer.name }, lag / 1000);
    if (this.failing.delete(peer.name)) log.info('replication to peer resumed', { event: 'replication.recovered', peer: peer.name });
    return entries.length;
  }

  private async pruneApplied(): Promise<void> {
    const now = this.opts.clock.now().getTime();
    if (now - this.lastPrune < PRUNE_EVERY_MS) return;
    this.lastPrune = now;
    // A batch is re-delivered within minutes (leases, retries); a day of ids is plenty.
    // Tombstones outlive any backlog a region could bring back after an outage.
    await this.opts.applied.prune(new Date(now - 86_400_000), new Date(now - 30 * 86_400_000));
  }

  private sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(timer);
        this.wake.delete(done);
        resolve();
      };
      const timer = setTimeout(done, ms);
      this.wake.add(done);
    });
  }
}

export interface ReplicationShippingOptions extends Omit<ShipperOptions, 'peers'> {
  /** Registered before shipping starts, so the trigger captures changes for every peer. */
  peers: Pick<PeerRegistry, 'list' | 'syncPeers'>;
}

/** Shipping this region's changes to its peers: started by the workers, stopped on shutdown. */
export class ReplicationShipping {
  private shipper: Shipper | undefined;

  constructor(private readonly opts: ReplicationShippingOptions) {}

  /** Starts a {@link Shipper} (no-op without peers, or when one runs already). */
  async start(): Promise<void> {
    if (this.opts.peers.list.length === 0 || this.shipper) return;
    await this.opts.peers.syncPeers();
    this.shipper = new Shipper({ ...this.opts, peers: this.opts.peers.list });
    this.shipper.start();
  }

  async stop(): Promise<void> {
    await this.shipper?.stop();
    this.shipper = undefined;
  }
}
