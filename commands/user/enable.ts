import { userLabel } from '../../src/model/user.js';
import { Args } from '@oclif/core';
import { toAdminUserView, type AdminUserView } from '../../src/core/users/user-service.js';
import { BaseCommand } from '../_base.js';
import { USER_ARG } from './_user.js';

export default class UserEnable extends BaseCommand<typeof UserEnable> {
  static override summary = 'Enable a disabled user.';
  static override description = 'Lets a disabled user log in again. Sessions revoked while disabled stay revoked.';
  static override examples = ['<%= config.bin %> user enable alice'];
  static override args = { user: Args.string({ required: true, description: USER_ARG }) };

  async run(): Promise<{ user: AdminUserView; revokedSessions: number }> {
    const { user, revokedSessions } = await this.container.users.setStatus(this.args.user, 'active');
    this.say(`User ${userLabel(user)} is now active${revokedSessions ? `; ${revokedSessions} session(s) revoked` : ''}.`);
    return { user: toAdminUserView(user), revokedSessions };
  }
}
