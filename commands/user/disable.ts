import { userLabel } from '../../src/model/user.js';
import { Args } from '@oclif/core';
import { toAdminUserView, type AdminUserView } from '../../src/core/users/user-service.js';
import { BaseCommand } from '../_base.js';
import { USER_ARG } from './_user.js';

export default class UserDisable extends BaseCommand<typeof UserDisable> {
  static override summary = 'Disable a user: login is refused and every session is revoked.';
  static override description =
    'The account stays (with its username and e-mail address reserved) but cannot log in; every live session is revoked, so refresh tokens stop at once and access tokens within the revocation poll interval. Undo with `authctl user enable`.';
  static override examples = ['<%= config.bin %> user disable alice'];
  static override args = { user: Args.string({ required: true, description: USER_ARG }) };

  async run(): Promise<{ user: AdminUserView; revokedSessions: number }> {
    const { user, revokedSessions } = await this.container.users.setStatus(this.args.user, 'disabled');
    this.say(`User ${userLabel(user)} is now disabled${revokedSessions ? `; ${revokedSessions} session(s) revoked` : ''}.`);
    return { user: toAdminUserView(user), revokedSessions };
  }
}
