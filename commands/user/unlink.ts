import { Args } from '@oclif/core';
import type { UnlinkResult } from '../../src/admin/users.js';
import { userLabel } from '../../src/model/user.js';
import { BaseCommand } from '../_base.js';
import { cliActor, USER_ARG } from './_user.js';

export default class UserUnlink extends BaseCommand<typeof UserUnlink> {
  static override summary = "Unlink a user's provider account (sign-in with Google or another OpenID Connect provider).";
  static override description =
    'Removes the identities the user has at that provider (in every region once replicated); the provider account then signs in as nobody ' +
    '(a new sign-in with it creates or links an account by the usual rules). ' +
    'Refused (exit 4, last_sign_in_method) when it is the last way the user can sign in: no password, no other identity and no verified address. ' +
    'Logged as identity.unlinked with who ran it.';
  static override examples = ['<%= config.bin %> user unlink alice google', '<%= config.bin %> user unlink alice@example.com google --json'];
  static override args = {
    user: Args.string({ required: true, description: USER_ARG }),
    provider: Args.string({ required: true, description: 'The provider id (identity.providers[].id), as `user show` lists it' }),
  };

  async run(): Promise<UnlinkResult> {
    const result = await this.container.admin.users.unlink(this.args.user, this.args.provider, cliActor());
    this.say(`Unlinked ${result.provider} from ${userLabel(result.user)}.`);
    return result;
  }
}
