import { Args, Flags } from '@oclif/core';
import { emailKey, normalizeEmail } from '../../src/core/users/email.js';
import { toAdminUserView, type AdminUserView } from '../../src/core/users/user-service.js';
import { userLabel, type UserRecord } from '../../src/model/user.js';
import { AppError } from '../../src/platform/errors.js';
import { BaseCommand } from '../_base.js';
import { obtainPassword } from '../_io.js';
import { refuseWhenEmailOff } from './_user.js';

const emailTaken = () => new AppError('email_taken', 'that e-mail address is already in use');

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
      await this.refuseTakenAddress(normalizeEmail(email));
    }
    const password = await obtainPassword(this.flags['password-stdin']);
    let user = await this.container.users.register({ username, email, password });
    // With identity.requireVerifiedEmail, sign-up answers a taken address with a user that was
    // never stored (so that sign-up tells nobody which addresses have accounts): an admin is told.
    user = await this.stored(user);
    if (verified) user = await this.container.users.markEmailVerified(user.id);
    const view = toAdminUserView(user);
    const address = view.email === null ? '' : `, e-mail ${view.email} (${view.emailVerified ? 'verified' : 'unverified'})`;
    this.say(`Created user ${userLabel(user)} (${user.id})${address}.`);
    return view;
  }

  private async refuseTakenAddress(address: string): Promise<void> {
    let holder: UserRecord;
    try {
      holder = await this.container.users.find(address);
    } catch (err) {
      if (err instanceof AppError && err.code === 'not_found') return;
      throw err;
    }
    if (holder.email !== null && emailKey(holder.email) === emailKey(address)) throw emailTaken();
  }

  private async stored(user: UserRecord): Promise<UserRecord> {
    try {
      return await this.container.users.get(user.id);
    } catch (err) {
      if (err instanceof AppError && err.code === 'not_found' && user.email !== null) throw emailTaken();
      throw err;
    }
  }
}
