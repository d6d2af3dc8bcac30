import { Args } from '@oclif/core';
import type { CachedSession } from '../../src/store/cache/index.js';
import { BaseCommand } from '../_base.js';

export default class CacheInspect extends BaseCommand<typeof CacheInspect> {
  static override summary = 'Show the cached state of one session.';
  static override description =
    'What Redis holds for one session (state, owner, expiry), to compare with the database when a session behaves unexpectedly. Never shows token material. Exit 3 when the cache has no entry for it.';
  static override examples = ['<%= config.bin %> cache inspect 0192f0c4-7d1e-7c3a-9b1e-3f2a1c0d4e5f --json'];
  static override args = { session: Args.string({ required: true, description: 'Session id.' }) };

  async run(): Promise<{ session: CachedSession; ttlSeconds: number | null }> {
    const { session, ttlSeconds } = await this.container.admin.cache.inspect(this.args.session);
    this.say(
      Object.entries({ ...session, ttlSeconds })
        .map(([k, v]) => `${k.padEnd(11)} ${typeof v === 'number' && k.endsWith('At') ? new Date(v).toISOString() : String(v)}`)
        .join('\n'),
    );
    return { session, ttlSeconds };
  }
}
