import type { Logger } from '../platform/logger.js';
import type { Mailer, OutgoingMail, SentMail } from './mailer.js';

/**
 * `mail.transport: "log"`: each message becomes one log line with its recipient and subject,
 * on purpose — for a region that has no mail server yet. Never the body: bodies carry codes and
 * links, and logs are read by more people than mailboxes are.
 */
export class LogMailer implements Mailer {
  readonly transport = 'log' as const;
  readonly endpoint = 'the log';

  constructor(private readonly log: Logger) {}

  async send(message: OutgoingMail): Promise<SentMail> {
    this.log.info('mail written to the log instead of sent (mail.transport is "log")', {
      event: 'mail.logged',
      to: message.to,
      subject: message.subject,
      messageId: message.messageId,
    });
    return Promise.resolve({ messageId: message.messageId });
  }

  async verify(): Promise<void> {
    await Promise.resolve();
  }

  close(): void {}
}
