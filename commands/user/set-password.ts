import { userLabel } from '../../src/model/user.js';
import { Args, Flags } from '@oclif/core';
import { BaseCommand } from '../_base.js';
import { USER_ARG } from './_user.js';
import { obtainPassword } from '../_io.js';

export default class UserSetPassword extends BaseCommand<typeof UserSetPassword> {
  static override summary = "Set a user's password and revoke all their sessions.";
  static override description =
    'The new password is asked for twice at a prompt, or read from standard input with --password-stdin; never passed as a flag. It must meet the password policy (8–256 characters, not a common password). Every session of the user is revoked.';
  static override examples = [
    '<%= config.bin %> user set-password alice',
    'printf %s "$PASSWORD" | <%= config.bin %> user set-password alice --password-stdin',
  ];
  static override args = { user: Args.string({ required: true, description: USER_ARG }) };
  static override flags = { 'password-stdin': Flags.boolean({ summary: 'Read the password from standard input.' }) };

  async run(): Promise<{ id: string; username: string | null; email: string | null; revokedSessions: number }> {
    const user = await this.container.users.find(this.args.user);
    const password = await obtainPassword(this.flags['password-stdin']);
    const { revokedSessions } = await this.container.users.setPassword(user.id, password);
    this.say(`Password of ${userLabel(user)} changed; ${revokedSessions} session(s) revoked.`);
    return { id: user.id, username: user.username, email: user.email, revokedSessions };
  }
}
