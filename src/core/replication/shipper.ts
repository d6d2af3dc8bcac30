import { createHash } from 'node:crypto';
import type { Config } from '../../config/schema.js';
import type { Logger } from '../../platform/logger.js';
import type { ReplicationRepo } from '../../store/pg/replication-repo.js';
import type { Clock } from '../../platform/clock.js';
import type { ReplicationMetrics } from './metrics.js';
import { signRequest } from './signature.js';

export interface ShipperOptions {
  repo: ReplicationRepo;
  config: Config;
  clock: Clock;
  log: Logger;
  metrics: ReplicationMetrics;
  peers: ReadonlyArray<Config['regions']['peers'][number]>;
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

  private async loop(peer: ShipperOptions['peers'][number]): Promise<void> {
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
  async shipOnce(peer: ShipperOptions['peers'][number]): Promise<number> {
    const { repo, config, clock, metrics, log } = this.opts;
    const state = await repo.peer(peer.name);
    if (state?.nextAttemptAt && state.nextAttemptAt > clock.now()) return 0;
    const entries = await repo.claim(peer.name, config.regions.batchSize, LEASE_MS);
    if (entries.length === 0) return 0;
    const changes = [...(await repo.foreignOwners(entries, config.region)), ...entries.map((e) => ({ entity: e.entity, payload: e.payload }))];
    // Named by its content: the same on redelivery (so the peer skips it), and never reused by
    // other changes, even if this region's outbox sequence starts again after a restore.
    const batchId = createHash('sha256')
      .update(`${config.region}\n${JSON.stringify(changes)}`)
      .digest('base64url');
    const body = JSON.stringify({ origin: config.region, batchId, changes });
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
      const dead = await repo.fail(peer.name, ids, message, clock.now(), { backoffMs, deadAfter: refused ? config.regions.maxAttempts : undefined });
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
    await repo.acknowledge(peer.name, ids, lags, new Date(now));
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
    await this.opts.repo.pruneApplied(new Date(now - 86_400_000), new Date(now - 30 * 86_400_000));
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
