import { Args } from '@oclif/core';
import { revokeSessionById } from '../../src/admin/sessions.js';
import { BaseCommand } from '../_base.js';

export default class SessionRevoke extends BaseCommand<typeof SessionRevoke> {
  static override summary = 'Revoke one session.';
  static override description =
    "Ends the session's refresh tokens at once and its access tokens on every server within the revocation poll interval (1 s by default). To end every session of a user: `authctl token revoke --user <user>`.";
  static override examples = [
    '<%= config.bin %> session revoke 0192f0c4-7d1e-7c3a-9b1e-3f2a1c0d4e5f',
    '<%= config.bin %> session revoke 0192f0c4-7d1e-7c3a-9b1e-3f2a1c0d4e5f --json',
  ];
  static override args = { id: Args.string({ required: true, description: 'Session id (see `authctl session list --user <user>`).' }) };

  async run(): Promise<{ id: string; revoked: boolean; revokedSessions: number }> {
    const { id, revoked } = await revokeSessionById(this.container.sessions, this.args.id);
    this.say(revoked ? `Session ${id} revoked.` : `Session ${id} was already revoked or expired.`);
    return { id, revoked, revokedSessions: revoked ? 1 : 0 };
  }
}
