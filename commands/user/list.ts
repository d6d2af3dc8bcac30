import { Flags } from '@oclif/core';
import { toAdminUserView, type AdminUserView } from '../../src/core/users/user-service.js';
import { BaseCommand } from '../_base.js';
import { table } from '../_io.js';

export default class UserList extends BaseCommand<typeof UserList> {
  static override summary = 'List users, ordered by username.';
  static override description =
    "Pages through users ordered by username: --limit per page; the output's `next` (or the hint after the table) is the --after of the next page. --search matches part of the username, case-insensitively.";
  static override examples = [
    '<%= config.bin %> user list',
    '<%= config.bin %> user list --search ali --limit 20',
    '<%= config.bin %> user list --after alice --json',
  ];
  static override flags = {
    limit: Flags.integer({ summary: 'Page size.', default: 50, min: 1, max: 1000 }),
    after: Flags.string({ summary: 'Start after this username (the `next` of the previous page).' }),
    search: Flags.string({ summary: 'Only usernames containing this text.' }),
  };

  async run(): Promise<{ users: AdminUserView[]; next: string | null }> {
    const rows = await this.container.users.list({ limit: this.flags.limit, after: this.flags.after, search: this.flags.search });
    const users = rows.map(toAdminUserView);
    const next = users.length === this.flags.limit ? users[users.length - 1]!.username : null;
    this.say(
      users.length
        ? table(users as unknown as Array<Record<string, unknown>>, ['username', 'id', 'status', 'homeRegion', 'createdAt'], { stateColumns: ['status'] })
        : 'No users.',
    );
    if (next) this.say(`\nMore: --after ${next}`);
    return { users, next };
  }
}
