import type { ServiceClientView } from '../../src/core/clients/client-service.js';
import { BaseCommand } from '../_base.js';
import { table } from '../_io.js';

export default class ClientList extends BaseCommand<typeof ClientList> {
  static override summary = 'List service clients (never their secrets).';
  static override description =
    'Every client of the region, its own and those replicated from peers, oldest first: id, name, scopes, home region, creation and last secret rotation. Secrets and their hashes are never shown.';
  static override examples = ['<%= config.bin %> client list', '<%= config.bin %> client list --json'];

  async run(): Promise<{ clients: ServiceClientView[] }> {
    const clients = await this.container.clients.list();
    this.say(
      clients.length
        ? table(
            clients.map((c) => ({ ...c, scopes: c.scopes.join(',') })),
            ['id', 'name', 'scopes', 'homeRegion', 'createdAt', 'secretRotatedAt'],
          )
        : 'No service clients (create one with `authctl client create <name>`).',
    );
    return { clients };
  }
}
