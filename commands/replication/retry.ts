import { Flags } from '@oclif/core';
import { BaseCommand } from '../_base.js';

export default class ReplicationRetry extends BaseCommand<typeof ReplicationRetry> {
  static override summary = 'Re-queue dead-lettered replication changes (all peers, or one).';
  static override description =
    "Changes a peer refused regions.maxAttempts times stop being shipped so they do not block the rest. Fix the cause (usually a mismatched peer secret or versions), then re-queue them; the workers ship them on their next poll and the peer's back-off is reset.";
  static override examples = ['<%= config.bin %> replication retry', '<%= config.bin %> replication retry --peer eu-west --json'];
  static override flags = {
    peer: Flags.string({ summary: 'Only this peer (a name from regions.peers).' }),
  };

  async run(): Promise<{ requeued: number; peer: string | null }> {
    const requeued = await this.container.replication.retryDead(this.flags.peer);
    this.say(`Re-queued ${requeued} dead-lettered change(s)${this.flags.peer ? ` for ${this.flags.peer}` : ''}.`);
    return { requeued, peer: this.flags.peer ?? null };
  }
}
