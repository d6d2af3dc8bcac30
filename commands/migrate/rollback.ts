import { Flags } from '@oclif/core';
import { BaseCommand } from '../_base.js';

export default class MigrateRollback extends BaseCommand<typeof MigrateRollback> {
  static override summary = 'Revert the last batch of migrations (or all with --all).';
  static override description =
    "Reverts authctl's own migrations only. The job queue (pg-boss's schema, jobs.schema) is left in place, jobs included; to remove it as well: `drop schema pgboss cascade`.";
  static override examples = ['<%= config.bin %> migrate rollback', '<%= config.bin %> migrate rollback --all'];
  static override flags = {
    all: Flags.boolean({ summary: 'Revert every migration (drops all authctl tables).' }),
  };

  async run(): Promise<{ batch: number; reverted: string[] }> {
    const result = await this.container.db.migrateRollback(this.flags.all);
    this.say(result.reverted.length ? `Reverted ${result.reverted.join(', ')}.` : 'Nothing to roll back.');
    return result;
  }
}
