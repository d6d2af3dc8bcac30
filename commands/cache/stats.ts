import type { CacheStats } from '../../src/store/cache/index.js';
import { BaseCommand } from '../_base.js';

export default class CacheStatsCommand extends BaseCommand<typeof CacheStatsCommand> {
  static override summary = "Show the cache's health, hit ratio, key counts and memory.";
  static override description =
    "For Redis, hits and misses are the server-wide keyspace counters (INFO stats) and key counts are those under this region's key prefix. The in-process cache of `authctl dev` lives inside the server and cannot be inspected from another process.";
  static override examples = ['<%= config.bin %> cache stats', '<%= config.bin %> cache stats --json'];

  async run(): Promise<CacheStats> {
    const { cache } = this.container;
    await this.waitForCache();
    const stats = await cache.stats();
    const ratio = stats.hitRatio === null ? '-' : `${(stats.hitRatio * 100).toFixed(1)} %`;
    this.say(
      [
        `driver       ${stats.driver}`,
        `health       ${stats.health}`,
        `hits         ${stats.hits}`,
        `misses       ${stats.misses}`,
        `hit ratio    ${ratio}`,
        `sessions     ${stats.keys.sessions}`,
        `users        ${stats.keys.users}`,
        `memory       ${stats.memoryBytes === null ? '-' : `${(stats.memoryBytes / 1_048_576).toFixed(1)} MiB`}`,
      ].join('\n'),
    );
    return stats;
  }
}
