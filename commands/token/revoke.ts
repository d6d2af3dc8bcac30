import { Flags } from '@oclif/core';
import { revokeSessionById } from '../../src/admin/sessions.js';
import { BaseCommand } from '../_base.js';

export default class TokenRevoke extends BaseCommand<typeof TokenRevoke> {
  static override summary = 'Revoke a session, or every session of a user.';
  static override description =
    "Revocation ends the session's refresh tokens at once and its access tokens on every server within the revocation poll interval (1 s by default).";
  static override examples = [
    '<%= config.bin %> token revoke --session 0192f0c4-7d1e-7c3a-9b1e-3f2a1c0d4e5f',
    '<%= config.bin %> token revoke --user alice --json',
  ];
  static override flags = {
    session: Flags.string({ summary: 'Session id.', exactlyOne: ['session', 'user'] }),
    user: Flags.string({ summary: 'User id or username: revoke all their sessions.', exactlyOne: ['session', 'user'] }),
  };

  async run(): Promise<{ revokedSessions: number; sessionIds?: string[] }> {
    if (this.flags.session !== undefined) {
      const { id, revoked } = await revokeSessionById(this.container.sessions, this.flags.session);
      this.say(revoked ? `Session ${id} revoked.` : `Session ${id} was already revoked or expired.`);
      return { revokedSessions: revoked ? 1 : 0 };
    }
    const user = await this.container.users.find(this.flags.user!);
    const revoked = await this.container.sessions.revokeAllForUser(user.id, 'admin');
    this.say(`${revoked.length} session(s) of ${user.username} revoked.`);
    return { revokedSessions: revoked.length, sessionIds: revoked.map((s) => s.id) };
  }
}
