import { Args, Flags } from '@oclif/core';
import type { ClientScope, IssuedClientSecret } from '../../src/core/clients/client-service.js';
import { BaseCommand } from '../_base.js';
import { secretLines } from './_client.js';

export default class ClientCreate extends BaseCommand<typeof ClientCreate> {
  static override summary = 'Create a service client: a client id and a secret for /oauth/introspect and /oauth/revoke.';
  static override description =
    'Prints the client id and the secret; the secret is shown this once (only a SHA-256 of it is stored). ' +
    '--scope (repeatable) says what the client may call: introspect (RFC 7662), revoke (RFC 7009); introspect alone by default. ' +
    'The client replicates to every peer region, so the service may call any region.';
  static override examples = [
    '<%= config.bin %> client create billing-api',
    '<%= config.bin %> client create gateway --scope introspect --scope revoke',
    '<%= config.bin %> client create gateway --scope introspect --json',
  ];
  static override args = { name: Args.string({ required: true, description: 'A name people recognise the client by (not unique).' }) };
  static override flags = {
    scope: Flags.string({
      summary: 'What the client may do (repeatable): introspect, revoke. Default: introspect.',
      // Checked by the service (invalid_request, exit 2, naming the scopes there are), not by oclif's `options`.
      multiple: true,
    }),
  };

  async run(): Promise<IssuedClientSecret> {
    const scopes = (this.flags.scope ?? ['introspect']) as ClientScope[];
    const issued = await this.container.clients.create(this.args.name, scopes);
    this.say(`Created client ${issued.client.name} (${issued.client.id}), scopes: ${issued.client.scopes.join(', ')}.\n`);
    this.say(secretLines(issued));
    return issued;
  }
}
