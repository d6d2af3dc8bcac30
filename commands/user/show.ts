import { Args } from '@oclif/core';
import type { UserDetails } from '../../src/admin/users.js';
import { details } from '../../src/cli/table.js';
import { BaseCommand } from '../_base.js';
import { table } from '../_io.js';
import { passkeyTable } from './_passkeys.js';
import { USER_ARG } from './_user.js';

export default class UserShow extends BaseCommand<typeof UserShow> {
  static override summary = 'Show one user, with the number of live sessions, their provider identities and their passkeys.';
  static override description =
    'By id, username or e-mail address (usernames are matched after normalization and addresses case-insensitively, so case does not matter). ' +
    'Shows the address, whether it is verified and since when, each provider identity (provider, subject, the address it gave, created, last used) ' +
    'and each passkey (id, name, created, last used, synced or device-bound, backed up, AAGUID). ' +
    'Never shows the password hash.';
  static override examples = [
    '<%= config.bin %> user show alice',
    '<%= config.bin %> user show alice@example.com',
    '<%= config.bin %> user show 0192f0c4-7d1e-7c3a-9b1e-3f2a1c0d4e5f --json',
  ];
  static override args = { user: Args.string({ required: true, description: USER_ARG }) };

  async run(): Promise<UserDetails> {
    const view = await this.container.admin.users.show(this.args.user);
    const { identities, passkeys, ...user } = view;
    this.say(details(user));
    this.say(
      identities.length
        ? `\nidentities\n${table(identities as unknown as Array<Record<string, unknown>>, ['provider', 'subject', 'email', 'createdAt', 'lastUsedAt'])}`
        : '\nidentities  -',
    );
    this.say(passkeys.length ? `\npasskeys\n${passkeyTable(passkeys)}` : '\npasskeys  -');
    return view;
  }
}
