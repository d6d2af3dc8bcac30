import { BaseCommand } from '../_base.js';

export default class MigrateStatus extends BaseCommand<typeof MigrateStatus> {
  static override summary = 'Show applied and pending migrations.';
  static override examples = ['<%= config.bin %> migrate status --json'];

  async run(): Promise<{ applied: string[]; pending: string[] }> {
    const status = await this.container.db.migrateStatus();
    this.say(`Applied: ${status.applied.join(', ') || 'none'}\nPending: ${status.pending.join(', ') || 'none'}`);
    return status;
  }
}
