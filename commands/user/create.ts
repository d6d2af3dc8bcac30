import { Args, Flags } from '@oclif/core';
import { toAdminUserView, type AdminUserView } from '../../src/core/users/user-service.js';
import { BaseCommand } from '../_base.js';
import { obtainPassword } from '../_io.js';

export default class UserCreate extends BaseCommand<typeof UserCreate> {
  static override summary = 'Create a user.';
  static override description = 'The password is asked for at a prompt, or read from standard input with --password-stdin; never passed as a flag.';
  static override examples = ['<%= config.bin %> user create alice', 'printf %s "$PASSWORD" | <%= config.bin %> user create alice --password-stdin --json'];
  static override args = { username: Args.string({ required: true, description: 'Username (normalized: NFKC, case-folded).' }) };
  static override flags = { 'password-stdin': Flags.boolean({ summary: 'Read the password from standard input.' }) };

  async run(): Promise<AdminUserView> {
    const password = await obtainPassword(this.flags['password-stdin']);
    const user = toAdminUserView(await this.container.users.register(this.args.username, password));
    this.say(`Created user ${user.username} (${user.id}).`);
    return user;
  }
}
