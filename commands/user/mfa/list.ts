import { Args } from '@oclif/core';
import type { MfaListing } from '../../../src/admin/mfa.js';
import { userLabel } from '../../../src/model/user.js';
import { BaseCommand } from '../../_base.js';
import { table } from '../../_io.js';
import { USER_ARG } from '../_user.js';

export default class UserMfaList extends BaseCommand<typeof UserMfaList> {
  static override summary = "List a user's second factors and how many recovery codes are left.";
  static override description =
    'Shows each TOTP factor (id, status, when it was created and confirmed) and whether the user’s logins ask for a second factor now. Never shows a secret or a code.';
  static override examples = ['<%= config.bin %> user mfa list alice', '<%= config.bin %> user mfa list alice@example.com --json'];
  static override args = { user: Args.string({ required: true, description: USER_ARG }) };

  async run(): Promise<MfaListing> {
    const listing = await this.container.admin.mfa.list(this.args.user);
    const name = userLabel(listing.user);
    this.say(
      listing.factors.length
        ? `${table(listing.factors as unknown as Array<Record<string, unknown>>, ['id', 'type', 'status', 'createdAt', 'confirmedAt'], { stateColumns: ['status'] })}\n` +
            `MFA ${listing.mfaEnabled ? 'on' : 'off'} for ${name}; ${listing.recoveryCodesLeft} recovery code(s) left.`
        : `${name} has no second factor.`,
    );
    return listing;
  }
}
