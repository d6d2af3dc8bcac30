import { confirm } from '@inquirer/prompts';
import { Args, Flags } from '@oclif/core';
import type { MfaResetResult } from '../../../src/admin/mfa.js';
import { userLabel } from '../../../src/model/user.js';
import { AppError } from '../../../src/platform/errors.js';
import { BaseCommand } from '../../_base.js';
import { cliActor, USER_ARG } from '../_user.js';

export default class UserMfaReset extends BaseCommand<typeof UserMfaReset> {
  static override summary = "Remove a user's second factors and recovery codes, and revoke their sessions.";
  static override description =
    'For a user who lost their authenticator and their recovery codes: every factor is removed, every recovery code ends and every session is revoked, in one transaction (in every region once replicated). ' +
    'The user logs in with the password alone afterwards (with identity.mfa "required": and enrols again). Logged as mfa.reset with who ran it. ' +
    'Asks for confirmation at a terminal; without a terminal (scripts), pass --yes.';
  static override examples = ['<%= config.bin %> user mfa reset alice', '<%= config.bin %> user mfa reset alice --yes --json'];
  static override args = { user: Args.string({ required: true, description: USER_ARG }) };
  static override flags = { yes: Flags.boolean({ char: 'y', summary: 'Do not ask for confirmation.' }) };

  async run(): Promise<MfaResetResult> {
    const target = await this.container.users.find(this.args.user);
    if (!this.flags.yes) {
      if (!process.stdin.isTTY) throw new AppError('invalid_request', 'refusing to reset second factors without confirmation: pass --yes');
      if (!(await confirm({ message: `Remove every second factor of ${userLabel(target)} (${target.id}) and revoke their sessions?`, default: false }))) {
        throw new AppError('invalid_request', 'nothing reset');
      }
    }
    const result = await this.container.admin.mfa.reset(target.id, cliActor());
    this.say(
      `Reset second factors of ${userLabel(target)}: ${result.removedFactors} factor(s) removed, ${result.endedRecoveryCodes} recovery code(s) ended, ${result.revokedSessions} session(s) revoked.`,
    );
    return result;
  }
}
