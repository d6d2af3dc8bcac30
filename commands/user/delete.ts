import { userLabel } from '../../src/model/user.js';
import { confirm } from '@inquirer/prompts';
import { Args, Flags } from '@oclif/core';
import { AppError } from '../../src/platform/errors.js';
import { BaseCommand } from '../_base.js';
import { USER_ARG } from './_user.js';

export default class UserDelete extends BaseCommand<typeof UserDelete> {
  static override summary = 'Delete a user and revoke every session of theirs.';
  static override description =
    "Asks for confirmation at a terminal; without a terminal (scripts), pass --yes. The user's sessions are revoked in the same transaction, so no token of theirs is accepted afterwards.";
  static override examples = ['<%= config.bin %> user delete alice', '<%= config.bin %> user delete alice --yes --json'];
  static override args = { user: Args.string({ required: true, description: USER_ARG }) };
  static override flags = { yes: Flags.boolean({ char: 'y', summary: 'Do not ask for confirmation.' }) };

  async run(): Promise<{ id: string; username: string | null; email: string | null; deleted: true; revokedSessions: number }> {
    const target = await this.container.users.find(this.args.user);
    if (!this.flags.yes) {
      if (!process.stdin.isTTY) throw new AppError('invalid_request', 'refusing to delete without confirmation: pass --yes');
      if (!(await confirm({ message: `Delete user ${userLabel(target)} (${target.id})?`, default: false }))) {
        throw new AppError('invalid_request', 'not deleted');
      }
    }
    const { revokedSessions } = await this.container.users.delete(target.id);
    this.say(`Deleted user ${userLabel(target)}; ${revokedSessions} session(s) revoked.`);
    return { id: target.id, username: target.username, email: target.email, deleted: true, revokedSessions };
  }
}
