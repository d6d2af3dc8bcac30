import { Args, Flags } from '@oclif/core';
import { normalizeEmail } from '../../src/core/users/email.js';
import { toAdminUserView, type AdminUserView } from '../../src/core/users/user-service.js';
import { userLabel } from '../../src/model/user.js';
import { BaseCommand } from '../_base.js';
import { obtainPassword } from '../_io.js';
import { refuseWhenEmailOff } from './_user.js';

export default class UserCreate extends BaseCommand<typeof UserCreate> {
  static override summary = 'Create a user.';
  static override description =
    'The password is asked for at a prompt, or read from standard input with --password-stdin; never passed as a flag. ' +
    'With --email the user gets that address, unverified unless --verified (a verification message is sent when mail is set up); ' +
    'the username may then be left out where identity.username is "optional". Addresses need identity.email "optional" or "required".';
  static override examples = [
    '<%= config.bin %> user create alice',
    'printf %s "$PASSWORD" | <%= config.bin %> user create alice --password-stdin --json',
    '<%= config.bin %> user create alice --email alice@example.com --verified',
    '<%= config.bin %> user create --email bob@example.com',
  ];
  static override args = {
    // ignoreStdin: oclif would otherwise read a missing argument from standard input — the password.
    username: Args.string({
      required: false,
      ignoreStdin: true,
      description: 'Username (normalized: NFKC, case-folded). Optional with --email where identity.username is "optional".',
    }),
  };
  static override flags = {
    email: Flags.string({ summary: "The user's e-mail address." }),
    verified: Flags.boolean({ summary: 'Mark the --email address verified at once (no verification message needed).', dependsOn: ['email'] }),
    'password-stdin': Flags.boolean({ summary: 'Read the password from standard input.' }),
  };

  async run(): Promise<AdminUserView> {
    const { username } = this.args;
    const { email, verified } = this.flags;
    // Refused before the password is asked for: an address that cannot be given, or is not one.
    if (email !== undefined) {
      refuseWhenEmailOff(this.settings);
      normalizeEmail(email);
    }
    const password = await obtainPassword(this.flags['password-stdin']);
    // One transaction; a taken address is email_taken for an admin; --verified sends no verification.
    const user = await this.container.users.register({ username, email, password }, { asAdmin: true, emailVerified: verified });
    const view = toAdminUserView(user);
    const address = view.email === null ? '' : `, e-mail ${view.email} (${view.emailVerified ? 'verified' : 'unverified'})`;
    this.say(`Created user ${userLabel(user)} (${user.id})${address}.`);
    return view;
  }
}
