import { confirm } from '@inquirer/prompts';
import { Args, Flags } from '@oclif/core';
import type { ServiceClientView } from '../../src/core/clients/client-service.js';
import { AppError } from '../../src/platform/errors.js';
import { BaseCommand } from '../_base.js';
import { CLIENT_ARG } from './_client.js';

export default class ClientDelete extends BaseCommand<typeof ClientDelete> {
  static override summary = 'Delete a service client: its secret stops working everywhere.';
  static override description =
    'Asks for confirmation at a terminal; without a terminal (scripts), pass --yes. The client is refused at once here, by the region’s ' +
    'other servers within 5 s, and by peer regions once the delete has replicated; a change to it made elsewhere meanwhile cannot bring it back.';
  static override examples = [
    '<%= config.bin %> client delete svc_0123456789abcdef0123456789abcdef',
    '<%= config.bin %> client delete svc_0123456789abcdef0123456789abcdef --yes --json',
  ];
  static override args = { id: Args.string({ required: true, description: CLIENT_ARG }) };
  static override flags = { yes: Flags.boolean({ char: 'y', aliases: ['force'], summary: 'Do not ask for confirmation.' }) };

  async run(): Promise<ServiceClientView & { deleted: true }> {
    const target = await this.container.clients.get(this.args.id);
    if (!this.flags.yes) {
      if (!process.stdin.isTTY) throw new AppError('invalid_request', 'refusing to delete without confirmation: pass --yes');
      if (!(await confirm({ message: `Delete client ${target.name} (${target.id})?`, default: false }))) {
        throw new AppError('invalid_request', 'not deleted');
      }
    }
    await this.container.clients.delete(target.id);
    this.say(`Deleted client ${target.name} (${target.id}).`);
    return { ...target, deleted: true };
  }
}
