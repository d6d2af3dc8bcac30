import type { PeerStatus } from '../../src/core/replication/replication-service.js';
import { BaseCommand } from '../_base.js';

const ms = (value: number | null) => (value === null ? '-' : `${Math.round(value)} ms`);

export default class ReplicationStatus extends BaseCommand<typeof ReplicationStatus> {
  static override summary = 'Per peer: backlog, oldest pending change, replication lag p50/p99, last success and last error.';
  static override description =
    "Read from this region's database (no server needed). Lag is change commit here → applied on the peer, over the last 1,000 changes shipped. A peer that is down shows a growing backlog and a retry time; dead-lettered changes (a peer refused them regions.maxAttempts times) wait for `authctl replication retry`.";
  static override examples = ['<%= config.bin %> replication status', '<%= config.bin %> replication status --json'];

  async run(): Promise<{ region: string; peers: PeerStatus[] }> {
    const { replication, config } = this.container;
    const peers = await replication.status();
    if (peers.length === 0) this.say(`Region ${config.region} has no peers (regions.peers is empty).`);
    for (const p of peers) {
      this.say(
        [
          `${p.peer}  ${p.url}`,
          `  backlog        ${p.backlog}${p.deadLettered > 0 ? ` (+${p.deadLettered} dead-lettered)` : ''}`,
          `  oldest pending ${p.oldestPendingSeconds === null ? '-' : `${p.oldestPendingSeconds.toFixed(1)} s`}`,
          `  lag p50 / p99  ${ms(p.lagP50Ms)} / ${ms(p.lagP99Ms)}`,
          `  last success   ${p.lastSuccessAt ?? 'never'}`,
          `  last error     ${p.lastError === null ? '-' : `${p.lastErrorAt} ${p.lastError}`}`,
          ...(p.retryingUntil ? [`  next attempt   ${p.retryingUntil}`] : []),
        ].join('\n'),
      );
    }
    return { region: config.region, peers };
  }
}
