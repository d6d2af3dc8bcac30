import { Args } from '@oclif/core';
import type { PasskeyRemoveResult } from '../../../src/admin/passkeys.js';
import { userLabel } from '../../../src/model/user.js';
import { BaseCommand } from '../../_base.js';
import { cliActor, USER_ARG } from '../_user.js';

export default class UserPasskeysRemove extends BaseCommand<typeof UserPasskeysRemove> {
  static override summary = "Remove one of a user's passkeys (a lost or stolen device).";
  static override description =
    'The passkey signs in as nobody from then on, in every region once replicated; the device may still hold it, but authctl no longer accepts it. ' +
    'The sessions it signed in end with it (revoked as passkey_removed), the others stay. ' +
    'Unlike the user’s own removal, this is not refused when it is the last way the user can sign in: support acts on purpose (give the user a way back, e.g. `authctl user set-password`). ' +
    'Logged as passkey.removed with who ran it. Exit 3 when the user, or a live passkey of theirs with that id, does not exist.';
  static override examples = [
    '<%= config.bin %> user passkeys remove alice 0192f0c4-7d1e-7c3a-9b1e-3f2a1c0d4e5f',
    '<%= config.bin %> user passkeys remove alice@example.com 0192f0c4-7d1e-7c3a-9b1e-3f2a1c0d4e5f --json',
  ];
  static override args = {
    user: Args.string({ required: true, description: USER_ARG }),
    id: Args.string({ required: true, description: 'The passkey id, as `authctl user passkeys list <user>` shows it' }),
  };

  async run(): Promise<PasskeyRemoveResult> {
    const result = await this.container.admin.passkeys.remove(this.args.user, this.args.id, cliActor());
    const ended = result.sessionsRevoked === 1 ? '1 session' : `${result.sessionsRevoked} sessions`;
    this.say(
      `Removed passkey ${result.passkey.id}${result.passkey.name ? ` ("${result.passkey.name}")` : ''} of ${userLabel(result.user)}; ended ${ended} it signed in.`,
    );
    return result;
  }
}
