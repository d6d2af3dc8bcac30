import { displayPath, locateConfigFile, peersOf, readConfigFile } from '../../src/cli/config-file.js';
import { table } from '../../src/cli/table.js';
import { BaseCommand } from '../_base.js';

interface PeerView {
  name: string;
  url: string;
  /** Where the shared secret comes from: an environment variable, or "inline" (in the file). */
  secretFrom: string;
  /** Whether that environment variable is set here (always true for inline secrets). */
  secretSet: boolean;
}

export default class RegionList extends BaseCommand<typeof RegionList> {
  static override summary = "List this region and its peers from the config file's regions.peers.";
  static override description =
    'Reads the config file only (no database): each peer with its URL and where its shared secret comes from. Secrets are never shown; `secretSet` says whether the environment variable holding one is set in this shell.';
  static override examples = ['<%= config.bin %> region list --config config/eu-west-1.json', '<%= config.bin %> region list --json'];

  // Config-level only: no database, nothing to wait for.
  run(): Promise<{ file: string; region: string; publicUrl: string | null; peers: PeerView[] }> {
    const file = locateConfigFile(this.flags.config);
    const values = readConfigFile(file);
    const peers = peersOf(values).map((peer): PeerView => {
      const envName = /^env:(.+)$/.exec(String(peer.secret))?.[1];
      return { name: peer.name, url: peer.url, secretFrom: envName ?? 'inline', secretSet: envName ? Boolean(process.env[envName]) : true };
    });
    const region = typeof values.region === 'string' ? values.region : 'local';
    const publicUrl = typeof values.publicUrl === 'string' ? values.publicUrl : null;
    this.say(`Region ${region}${publicUrl ? ` (${publicUrl})` : ''}, from ${displayPath(file)}\n`);
    this.say(
      peers.length
        ? table(peers as unknown as Array<Record<string, unknown>>, ['name', 'url', 'secretFrom', 'secretSet'])
        : 'No peers: add one with `authctl region add <name> --url <url>`.',
    );
    return Promise.resolve({ file, region, publicUrl, peers });
  }
}
