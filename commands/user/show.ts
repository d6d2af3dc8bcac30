import { Args } from '@oclif/core';
import type { UserDetails } from '../../src/admin/users.js';
import { details } from '../../src/cli/table.js';
import { BaseCommand } from '../_base.js';
import { USER_ARG } from './_user.js';

export default class UserShow extends BaseCommand<typeof UserShow> {
  static override summary = 'Show one user, with the number of live sessions.';
  static override description =
    'By id, username or e-mail address (usernames are matched after normalization and addresses case-insensitively, so case does not matter). ' +
    'Shows the address, whether it is verified and since when. Never shows the password hash.';
  static override examples = [
    '<%= config.bin %> user show alice',
    '<%= config.bin %> user show alice@example.com',
    '<%= config.bin %> user show 0192f0c4-7d1e-7c3a-9b1e-3f2a1c0d4e5f --json',
  ];
  static override args = { user: Args.string({ required: true, description: USER_ARG }) };

  async run(): Promise<UserDetails> {
    const view = await this.container.admin.users.show(this.args.user);
    this.say(details(view));
    return view;
  }
}
