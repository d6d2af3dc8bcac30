import type { KeyInfo } from '../../src/core/keys/key-ring.js';
import { BaseCommand } from '../_base.js';

export default class KeysRotate extends BaseCommand<typeof KeysRotate> {
  static override summary = 'Add a new signing key; it signs after the activation delay, old keys retire once their tokens expire.';
  static override description =
    'The new key is published in the JWKS at once and starts signing after keys.activationDelay (default 300 s), so verifiers that cache the JWKS learn it first. Older keys stay published until the last token they signed has expired. This is also the response to a leaked signing key (then also revoke sessions as needed).';
  static override examples = ['<%= config.bin %> keys rotate', '<%= config.bin %> keys rotate --json'];

  async run(): Promise<{ key: KeyInfo }> {
    const key = await this.container.keys.rotate();
    this.say(`Added key ${key.kid} (${key.alg}); it signs from ${key.activatesAt.toISOString()}.`);
    return { key };
  }
}
