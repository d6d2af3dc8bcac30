import { Args } from '@oclif/core';
import { displayPath, locateConfigFile, peersOf, readConfigFile, withPeers, writeConfigFile } from '../../src/cli/config-file.js';
import { AppError } from '../../src/platform/errors.js';
import { BaseCommand } from '../_base.js';

export default class RegionRemove extends BaseCommand<typeof RegionRemove> {
  static override summary = "Remove a peer region from the config file's regions.peers.";
  static override description = 'Servers stop talking to that peer once restarted. The environment variable holding its secret can then be unset.';
  static override examples = ['<%= config.bin %> region remove us-east-1 --config config/eu-west-1.json', '<%= config.bin %> region remove us-east-1 --json'];
  static override args = { name: Args.string({ required: true, description: 'Peer region name.' }) };

  // Config-level only: no database, nothing to wait for.
  run(): Promise<{ file: string; removed: string }> {
    const file = locateConfigFile(this.flags.config);
    const values = readConfigFile(file);
    const peers = peersOf(values);
    if (!peers.some((p) => p.name === this.args.name)) {
      const known = peers.map((p) => p.name).join(', ') || 'none';
      throw new AppError('not_found', `no peer named ${this.args.name} in ${displayPath(file)} (peers: ${known})`);
    }
    writeConfigFile(
      file,
      withPeers(
        values,
        peers.filter((p) => p.name !== this.args.name),
      ),
    );
    this.say(`Removed peer ${this.args.name} from ${displayPath(file)}. Restart the servers to apply.`);
    return Promise.resolve({ file, removed: this.args.name });
  }
}
