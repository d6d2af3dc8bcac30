import { Args } from '@oclif/core';
import { paint } from '../../src/cli/table.js';
import { isMailAddress } from '../../src/config/mail.js';
import { AppError } from '../../src/platform/errors.js';
import { BaseCommand } from '../_base.js';

export interface MailTestResult {
  to: string;
  messageId: string;
  transport: 'smtp' | 'log';
  /** `host:port` of the SMTP server (never its credentials), or "the log". */
  server: string;
  /** The server's final reply, when it gave one. */
  response: string | null;
}

export default class MailTest extends BaseCommand<typeof MailTest> {
  static override summary = 'Send a test message to an address now, through the configured SMTP server (not through the queue).';
  static override description =
    'Composes the `test` message (no secrets in it) and sends it directly with the region\'s mail settings, so the answer of the SMTP server is seen at once: prints the Message-ID it was sent with. Exit 69 when the server cannot be reached or defers the message, 78 when mail is not configured (mail.transport "off", or mail.smtpUrl / mail.from missing) or the server refuses the login, the certificate or the sender, 2 when it refuses the recipient. Needs no database.';
  static override examples = [
    '<%= config.bin %> mail test admin@example.com',
    'AUTHCTL_CONFIG=config/eu-west-1.json <%= config.bin %> mail test admin@example.com --json',
  ];
  static override args = { address: Args.string({ required: true, description: 'Where to send it, e.g. admin@example.com.' }) };

  async run(): Promise<MailTestResult> {
    const to = this.args.address.trim();
    if (!isMailAddress(to)) throw new AppError('invalid_request', `${this.args.address} is not an e-mail address (e.g. admin@example.com)`);
    const { mail } = this.container;
    if (!mail.mailer) {
      throw new AppError(
        'bad_config',
        'mail is off (mail.transport is "off"): set AUTHCTL_MAIL_TRANSPORT=smtp, AUTHCTL_SMTP_URL (smtp://user:password@host:587 or smtps://…:465) and AUTHCTL_MAIL_FROM, or mail.* in the config file',
      );
    }
    mail.templates.load();
    const message = await mail.messages.build({ kind: 'test', to, data: { requestedAt: new Date().toISOString() } }, null);
    const sent = await mail.mailer.send(message!);
    const result: MailTestResult = {
      to,
      messageId: sent.messageId,
      transport: mail.mailer.transport,
      server: mail.mailer.endpoint,
      response: sent.response ?? null,
    };
    this.say(
      mail.mailer.transport === 'log'
        ? `${paint('green', '✔')} Written to the log (mail.transport is "log"), not sent. Message-ID ${sent.messageId}`
        : `${paint('green', '✔')} Sent to ${to} through ${result.server}${sent.response ? ` (${sent.response})` : ''}.\n  Message-ID ${sent.messageId}`,
    );
    return result;
  }
}
