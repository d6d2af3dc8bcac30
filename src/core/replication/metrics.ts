import { Counter, Gauge, Histogram, type Registry } from 'prom-client';
import type { PeerBacklog } from '../../store/pg/outbox-repo.js';

/** Replication metrics (README.md#endpoints-errors-and-commands): per peer backlog and lag, errors, applied rows. */
export function createReplicationMetrics(registry: Registry, backlog: () => Promise<PeerBacklog[] | undefined>) {
  const registers = [registry];
  // One query per scrape serves the three gauges. `first`, not `sum`, across cluster processes:
  // every process reads the same table.
  let snapshot: Promise<PeerBacklog[] | undefined> | undefined;
  let takenAt = 0;
  const peers = () => {
    if (!snapshot || Date.now() - takenAt > 1_000) {
      takenAt = Date.now();
      snapshot = backlog().catch(() => undefined);
    }
    return snapshot;
  };
  const gauge = (name: string, help: string, value: (p: PeerBacklog, now: number) => number) =>
    new Gauge({
      name,
      help,
      labelNames: ['peer'] as const,
      registers,
      aggregator: 'first',
      async collect() {
        const rows = await peers();
        this.reset();
        for (const p of rows ?? []) this.set({ peer: p.name }, value(p, Date.now()));
      },
    });
  gauge('authctl_replication_backlog', 'Changes waiting to be shipped to each peer (dead-lettered excluded).', (p) => p.backlog);
  gauge('authctl_replication_dead_lettered', 'Changes a peer refused too often; `authctl replication retry` re-queues them.', (p) => p.deadLettered);
  gauge('authctl_replication_oldest_pending_seconds', 'Age of the oldest change not yet applied by each peer.', (p, now) =>
    p.oldestPendingAt ? Math.max(0, (now - p.oldestPendingAt.getTime()) / 1000) : 0,
  );
  return {
    lag: new Histogram({
      name: 'authctl_replication_lag_seconds',
      help: 'Change committed here → applied on the peer, per shipped change.',
      labelNames: ['peer'] as const,
      buckets: [0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300],
      registers,
    }),
    errors: new Counter({
      name: 'authctl_replication_errors_total',
      help: 'Failed deliveries to a peer, by kind (unreachable, refused).',
      labelNames: ['peer', 'kind'] as const,
      registers,
    }),
    applied: new Counter({
      name: 'authctl_replication_applied_total',
      help: 'Changes applied here from each origin region.',
      labelNames: ['origin'] as const,
      registers,
    }),
    crossRegionRefreshes: new Counter({
      name: 'authctl_cross_region_refreshes_total',
      help: 'Refreshes of sessions homed in another region, by path (proxied, replica).',
      labelNames: ['home', 'path'] as const,
      registers,
    }),
  };
}

export type ReplicationMetrics = ReturnType<typeof createReplicationMetrics>;
