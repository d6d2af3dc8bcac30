import { Args, Flags } from '@oclif/core';
import type { KeyInfo } from '../../src/core/keys/key-ring.js';
import { BaseCommand } from '../_base.js';

export default class KeysRetire extends BaseCommand<typeof KeysRetire> {
  static override summary = 'Retire a signing key: it leaves the JWKS once the tokens it signed have expired, or at once with --now.';
  static override description =
    'A retired key no longer verifies anything. By default it stays published for the access-token lifetime plus clock skew, so tokens it already signed keep working until they expire. With --now it is unpublished immediately and every token it signed is refused (the response to a leaked key). The key that signs now cannot be retired: run `authctl keys rotate` first and wait for the new key to become active.';
  static override examples = [
    '<%= config.bin %> keys retire Vb3Y1k8Q2n…',
    '<%= config.bin %> keys retire --now --json -- -BjLTZJbyORF…   # a kid starting with "-" goes after --',
  ];
  static override args = { kid: Args.string({ required: true, description: 'Key id (see `authctl keys list`).' }) };
  static override flags = { now: Flags.boolean({ summary: 'Unpublish at once: every token the key signed is refused from now on.' }) };

  async run(): Promise<{ key: KeyInfo }> {
    const key = await this.container.keys.retire(this.args.kid, { immediately: this.flags.now });
    this.say(`Key ${key.kid} ${key.state === 'retired' ? 'is retired' : `retires at ${key.retiresAt?.toISOString() ?? '-'}`}.`);
    return { key };
  }
}
