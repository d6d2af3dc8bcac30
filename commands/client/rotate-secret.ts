import { Args } from '@oclif/core';
import type { IssuedClientSecret } from '../../src/core/clients/client-service.js';
import { BaseCommand } from '../_base.js';
import { CLIENT_ARG, secretLines } from './_client.js';

export default class ClientRotateSecret extends BaseCommand<typeof ClientRotateSecret> {
  static override summary = "Replace a service client's secret; the old one stops working.";
  static override description =
    'Prints the new secret, this once. The old secret is refused at once by this process, by the region’s other servers within 5 s ' +
    '(their reload interval), and by peer regions once the change has replicated (plus the same 5 s).';
  static override examples = [
    '<%= config.bin %> client rotate-secret svc_0123456789abcdef0123456789abcdef',
    '<%= config.bin %> client rotate-secret svc_0123456789abcdef0123456789abcdef --json',
  ];
  static override args = { id: Args.string({ required: true, description: CLIENT_ARG }) };

  async run(): Promise<IssuedClientSecret> {
    const issued = await this.container.clients.rotateSecret(this.args.id);
    this.say(`New secret for client ${issued.client.name} (${issued.client.id}); the old one no longer works.\n`);
    this.say(secretLines(issued));
    return issued;
  }
}
