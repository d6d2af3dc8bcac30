import { BaseCommand } from '../_base.js';

export default class CacheFlush extends BaseCommand<typeof CacheFlush> {
  static override summary = "Delete every cache entry under this region's key prefix.";
  static override description = 'Safe at any time: the cache is never the source of truth, and entries are rebuilt on use.';
  static override examples = ['<%= config.bin %> cache flush', '<%= config.bin %> cache flush --json'];

  async run(): Promise<{ deleted: number }> {
    const deleted = await this.container.admin.cache.flush();
    this.say(`Deleted ${deleted} cache entries.`);
    return { deleted };
  }
}
