import { Args } from '@oclif/core';
import { toAdminUserView, type AdminUserView } from '../../src/core/users/user-service.js';
import { details } from '../../src/cli/table.js';
import { BaseCommand } from '../_base.js';

export default class UserShow extends BaseCommand<typeof UserShow> {
  static override summary = 'Show one user, with the number of live sessions.';
  static override description = 'By id or username (usernames are matched after normalization, so case does not matter). Never shows the password hash.';
  static override examples = ['<%= config.bin %> user show alice', '<%= config.bin %> user show 0192f0c4-7d1e-7c3a-9b1e-3f2a1c0d4e5f --json'];
  static override args = { user: Args.string({ required: true, description: 'User id or username.' }) };

  async run(): Promise<AdminUserView & { activeSessions: number }> {
    const user = await this.container.users.find(this.args.user);
    const activeSessions = (await this.container.sessions.listForUser(user.id)).length;
    const view = { ...toAdminUserView(user), activeSessions };
    this.say(details(view));
    return view;
  }
}
