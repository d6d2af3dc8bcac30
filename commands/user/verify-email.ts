import { Args } from '@oclif/core';
import { toAdminUserView, type AdminUserView } from '../../src/core/users/user-service.js';
import { userLabel } from '../../src/model/user.js';
import { BaseCommand } from '../_base.js';
import { USER_ARG } from './_user.js';

export default class UserVerifyEmail extends BaseCommand<typeof UserVerifyEmail> {
  static override summary = "Mark a user's e-mail address verified.";
  static override description =
    'For an address checked some other way: the user need not enter a code or follow a link. A user without an address is refused (exit 2).';
  static override examples = ['<%= config.bin %> user verify-email alice', '<%= config.bin %> user verify-email bob@example.com --json'];
  static override args = { user: Args.string({ required: true, description: USER_ARG }) };

  async run(): Promise<AdminUserView> {
    const user = await this.container.users.markEmailVerified(this.args.user);
    this.say(`E-mail address ${user.email} of ${userLabel(user)} is verified.`);
    return toAdminUserView(user);
  }
}
