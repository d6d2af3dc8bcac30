import { Args } from '@oclif/core';
import type { PasskeyListing } from '../../../src/admin/passkeys.js';
import { userLabel } from '../../../src/model/user.js';
import { BaseCommand } from '../../_base.js';
import { passkeyTable } from '../_passkeys.js';
import { USER_ARG } from '../_user.js';

export default class UserPasskeysList extends BaseCommand<typeof UserPasskeysList> {
  static override summary = "List a user's passkeys.";
  static override description =
    'Shows each live passkey: id, the name the user gave it, when it was created and last used, whether it is synced (a passkey provider copies it between devices) or bound to one device, whether it is backed up now, and its AAGUID (the authenticator model). ' +
    'Never shows a public key or a credential id.';
  static override examples = ['<%= config.bin %> user passkeys list alice', '<%= config.bin %> user passkeys list alice@example.com --json'];
  static override args = { user: Args.string({ required: true, description: USER_ARG }) };

  async run(): Promise<PasskeyListing> {
    const listing = await this.container.admin.passkeys.list(this.args.user);
    this.say(listing.passkeys.length ? passkeyTable(listing.passkeys) : `${userLabel(listing.user)} has no passkey.`);
    return listing;
  }
}
