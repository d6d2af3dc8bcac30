import type { KeyInfo } from '../../src/core/keys/key-ring.js';
import { BaseCommand } from '../_base.js';
import { table } from '../_io.js';

export default class KeysList extends BaseCommand<typeof KeysList> {
  static override summary = 'List signing keys and their state (pending, active, retiring, retired).';
  static override description =
    'Every key in the database with its state: pending (published, signs after keys.activationDelay), active (signs new tokens), retiring (only verifies tokens it signed until retiresAt) and retired (no longer published). Public information only: never private key material.';
  static override examples = ['<%= config.bin %> keys list', '<%= config.bin %> keys list --json'];

  async run(): Promise<{ keys: KeyInfo[] }> {
    await this.container.keys.load();
    const keys = this.container.keys.list();
    this.say(
      keys.length
        ? table(keys as unknown as Array<Record<string, unknown>>, ['kid', 'alg', 'region', 'state', 'activatesAt', 'retiresAt'], { stateColumns: ['state'] })
        : 'No signing keys yet: the first server start creates one (or run `authctl keys rotate`).',
    );
    return { keys };
  }
}
