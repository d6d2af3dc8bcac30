import type { Clock } from '../../platform/clock.js';
import { AppError } from '../../platform/errors.js';
import type { Logger } from '../../platform/logger.js';
import type { OutboxRepo } from '../../store/pg/outbox-repo.js';
import type { PeerRegistry } from './peers.js';

/** `authctl replication status`, one row per peer. */
export interface PeerStatus {
  peer: string;
  url: string;
  backlog: number;
  deadLettered: number;
  oldestPendingSeconds: number | null;
  lagP50Ms: number | null;
  lagP99Ms: number | null;
  lastSuccessAt: string | null;
  lastError: string | null;
  lastErrorAt: string | null;
  retryingUntil: string | null;
}

export interface ReplicationBacklogOptions {
  outbox: Pick<OutboxRepo, 'backlog' | 'retryDead'>;
  peers: Pick<PeerRegistry, 'find'>;
  clock: Clock;
  log: Logger;
}

function percentile(sorted: number[], p: number): number | null {
  if (sorted.length === 0) return null;
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)]!;
}

/** What waits to be shipped to each peer, how late it is, and re-queuing what a peer refused. */
export class ReplicationBacklog {
  constructor(private readonly opts: ReplicationBacklogOptions) {}

  async status(): Promise<PeerStatus[]> {
    const now = this.opts.clock.now().getTime();
    const rows = await this.opts.outbox.backlog();
    return rows.map((p) => {
      const lags = [...p.recentLagMs].sort((a, b) => a - b);
      return {
        peer: p.name,
        url: p.url,
        backlog: p.backlog,
        deadLettered: p.deadLettered,
        oldestPendingSeconds: p.oldestPendingAt ? Math.max(0, (now - p.oldestPendingAt.getTime()) / 1000) : null,
        lagP50Ms: percentile(lags, 50),
        lagP99Ms: percentile(lags, 99),
        lastSuccessAt: p.lastSuccessAt?.toISOString() ?? null,
        lastError: p.lastError,
        lastErrorAt: p.lastErrorAt?.toISOString() ?? null,
        retryingUntil: p.nextAttemptAt && p.nextAttemptAt.getTime() > now ? p.nextAttemptAt.toISOString() : null,
      };
    });
  }

  /** Puts dead-lettered changes back in line for delivery (all peers, or one); returns how many. */
  async retryDead(peer?: string): Promise<number> {
    if (peer !== undefined && !this.opts.peers.find(peer)) throw new AppError('not_found', `no peer named ${peer}`);
    const count = await this.opts.outbox.retryDead(peer);
    this.opts.log.info('dead-lettered changes re-queued', { event: 'replication.retried', peer: peer ?? null, count });
    return count;
  }
}
