import { Flags } from '@oclif/core';
import { toSessionView, type SessionView } from '../../src/admin/sessions.js';
import { BaseCommand } from '../_base.js';
import { table } from '../_io.js';

export default class SessionList extends BaseCommand<typeof SessionList> {
  static override summary = "List a user's live sessions.";
  static override description =
    'Live means neither revoked nor past its absolute lifetime. Shows when each session was created and last refreshed, its client (user agent, IP) and when it expires; never any token.';
  static override examples = [
    '<%= config.bin %> session list --user alice',
    '<%= config.bin %> session list --user 0192f0c4-7d1e-7c3a-9b1e-3f2a1c0d4e5f --json',
  ];
  static override flags = { user: Flags.string({ char: 'u', summary: 'User id or username.', required: true }) };

  async run(): Promise<{ user: { id: string; username: string }; sessions: SessionView[] }> {
    const user = await this.container.users.find(this.flags.user);
    const now = new Date();
    const sessions = (await this.container.sessions.listForUser(user.id)).map((s) => toSessionView(s, now));
    this.say(
      sessions.length
        ? table(sessions as unknown as Array<Record<string, unknown>>, ['id', 'state', 'createdAt', 'lastUsedAt', 'expiresAt', 'ip', 'userAgent'], {
            stateColumns: ['state'],
          })
        : `${user.username} has no live sessions.`,
    );
    return { user: { id: user.id, username: user.username }, sessions };
  }
}
