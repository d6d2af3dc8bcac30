import { Flags } from '@oclif/core';
import type { UserPage } from '../../src/admin/users.js';
import { BaseCommand } from '../_base.js';
import { table } from '../_io.js';

export default class UserList extends BaseCommand<typeof UserList> {
  static override summary = 'List users, ordered by username.';
  static override description =
    'Pages through users ordered by username (users without one by their e-mail address, lower-cased): --limit per page; ' +
    "the output's `next` (or the hint after the table) is the --after of the next page. " +
    '--search matches part of the username or of the address, case-insensitively.';
  static override examples = [
    '<%= config.bin %> user list',
    '<%= config.bin %> user list --search ali --limit 20',
    '<%= config.bin %> user list --search @example.com',
    '<%= config.bin %> user list --after alice --json',
  ];
  static override flags = {
    limit: Flags.integer({ summary: 'Page size.', default: 50, min: 1, max: 1000 }),
    after: Flags.string({ summary: 'Start after this username or address (the `next` of the previous page).' }),
    search: Flags.string({ summary: 'Only users whose username or e-mail address contains this text.' }),
  };

  async run(): Promise<UserPage> {
    const { users, next } = await this.container.admin.users.list({ limit: this.flags.limit, after: this.flags.after, search: this.flags.search });
    // The e-mail column where addresses are in use (identity.email on, or users that have one).
    const withEmail = this.settings.identity.email !== 'off' || users.some((u) => u.email !== null);
    this.say(
      users.length
        ? table(
            users.map((u) => ({ ...u, email: u.email === null ? null : `${u.email}${u.emailVerified ? '' : ' (unverified)'}` })),
            ['username', ...(withEmail ? ['email'] : []), 'id', 'status', 'homeRegion', 'createdAt'],
            { stateColumns: ['status'] },
          )
        : 'No users.',
    );
    if (next) this.say(`\nMore: --after ${next}`);
    return { users, next };
  }
}
