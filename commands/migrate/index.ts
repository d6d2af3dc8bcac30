import { BaseCommand } from '../_base.js';

export default class Migrate extends BaseCommand<typeof Migrate> {
  static override summary = 'Apply pending database migrations.';
  static override examples = ['<%= config.bin %> migrate', 'AUTHCTL_DATABASE_URL=postgres://… <%= config.bin %> migrate --json'];

  async run(): Promise<{ batch: number; applied: string[] }> {
    const result = await this.container.db.migrateLatest();
    this.say(result.applied.length ? `Applied ${result.applied.join(', ')} (batch ${result.batch}).` : 'Already up to date.');
    return result;
  }
}
