import { Args, Flags } from '@oclif/core';
import {
  displayPath,
  envReference,
  generateSecret,
  locateConfigFile,
  peerSecretEnv,
  peersOf,
  readConfigFile,
  withPeers,
  writeConfigFile,
} from '../../src/cli/config-file.js';
import { AppError } from '../../src/platform/errors.js';
import { BaseCommand } from '../_base.js';

export default class RegionAdd extends BaseCommand<typeof RegionAdd> {
  static override summary = "Add a peer region to the config file's regions.peers.";
  static override description =
    'The peer\'s shared secret signs replication and proxy requests both ways, so both regions need the same value. It is never written to the file: the file gets "env:NAME" (NAME from --secret-env, default AUTHCTL_PEER_<NAME>_SECRET) and the servers read it from that environment variable. With --generate-secret a new secret is printed once, to set here and give to the peer. Servers pick the change up when restarted.';
  static override examples = [
    '<%= config.bin %> region add us-east-1 --url https://auth.us-east-1.example.com --config config/eu-west-1.json',
    '<%= config.bin %> region add us-east-1 --url https://auth.us-east-1.example.com --secret-env US_PEER_SECRET',
    '<%= config.bin %> region add ap-south-1 --url https://auth.ap-south-1.example.com --generate-secret --json',
  ];
  static override args = { name: Args.string({ required: true, description: 'Peer region name (its AUTHCTL_REGION).' }) };
  static override flags = {
    url: Flags.string({ summary: "The peer's public base URL (http or https).", required: true }),
    'secret-env': Flags.string({ summary: 'Environment variable holding the shared secret (default AUTHCTL_PEER_<NAME>_SECRET).' }),
    'generate-secret': Flags.boolean({ summary: 'Generate a new shared secret and print it once (to set here and on the peer).' }),
    force: Flags.boolean({ summary: 'Replace a peer of the same name.' }),
  };

  // Config-level only: no database, nothing to wait for.
  run(): Promise<{ file: string; peer: { name: string; url: string; secretFrom: string }; generatedSecret?: string }> {
    const file = locateConfigFile(this.flags.config);
    const values = readConfigFile(file);
    const name = this.args.name;
    const envName = this.flags['secret-env'] ?? peerSecretEnv(name);
    if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(envName)) throw new AppError('invalid_request', `--secret-env ${envName} is not an environment variable name`);
    if (name === (values.region ?? 'local')) throw new AppError('invalid_request', `${name} is this region itself: a peer must be another region`);
    const peers = peersOf(values);
    if (peers.some((p) => p.name === name) && !this.flags.force) {
      throw new AppError('conflict', `peer ${name} is already configured: remove it first or pass --force to replace it`);
    }
    const peer = { name, url: this.flags.url, secret: envReference(envName) };
    writeConfigFile(file, withPeers(values, [...peers.filter((p) => p.name !== name), peer]));
    const secret = this.flags['generate-secret'] ? generateSecret() : undefined;
    this.say(`Added peer ${name} (${peer.url}) to ${displayPath(file)}; its shared secret is read from ${envName}.`);
    if (secret) {
      this.say(`\nThe shared secret (shown once; set it here and give the same value to ${name}):\n  export ${envName}='${secret}'`);
    } else if (!process.env[envName]) {
      this.say(`\nSet ${envName} to the secret ${name} shares with this region before restarting the servers.`);
    }
    this.say('Restart the servers to apply.');
    return Promise.resolve({ file, peer: { name, url: peer.url, secretFrom: envName }, ...(secret ? { generatedSecret: secret } : {}) });
  }
}
