import { Args, Flags } from '@oclif/core';
import { toAdminUserView, type AdminUserView } from '../../src/core/users/user-service.js';
import { userLabel } from '../../src/model/user.js';
import { invalidRequest } from '../../src/platform/errors.js';
import { BaseCommand } from '../_base.js';
import { USER_ARG, refuseWhenEmailOff } from './_user.js';

export default class UserSetEmail extends BaseCommand<typeof UserSetEmail> {
  static override summary = "Set or remove a user's e-mail address.";
  static override description =
    'Sets the address without sending anything: it is unverified unless --verified (the user can then ask for a verification message). ' +
    '--remove clears it, which is refused for a user without a username (the address is their only identifier). ' +
    'An address another user holds is refused (exit 4). Sessions are not affected.';
  static override examples = [
    '<%= config.bin %> user set-email alice alice@example.com',
    '<%= config.bin %> user set-email alice alice@example.com --verified --json',
    '<%= config.bin %> user set-email alice --remove',
  ];
  static override args = {
    user: Args.string({ required: true, description: USER_ARG }),
    // ignoreStdin: oclif would otherwise read a missing argument from standard input.
    address: Args.string({ required: false, ignoreStdin: true, description: 'The new address (left out with --remove).' }),
  };
  static override flags = {
    verified: Flags.boolean({ summary: 'Mark the new address verified.', exclusive: ['remove'] }),
    remove: Flags.boolean({ summary: "Remove the user's address instead.", exclusive: ['verified'] }),
  };

  async run(): Promise<AdminUserView> {
    const { address } = this.args;
    const { remove, verified } = this.flags;
    if (remove && address !== undefined) {
      throw invalidRequest([{ path: 'address', message: 'not with --remove' }], 'give either an address or --remove, not both');
    }
    if (!remove && address === undefined) {
      throw invalidRequest([{ path: 'address', message: 'required' }], 'give the new address, or --remove to remove the address');
    }
    if (!remove) refuseWhenEmailOff(this.settings);
    const user = await this.container.users.setEmail(this.args.user, remove ? null : address!, verified);
    const view = toAdminUserView(user);
    this.say(
      view.email === null
        ? `Removed the e-mail address of ${userLabel(user)}.`
        : `E-mail address of ${userLabel(user)} set to ${view.email} (${view.emailVerified ? 'verified' : 'unverified'}).`,
    );
    return view;
  }
}
