import type { MailConfig } from '../config/mail.js';
import type { Logger } from '../platform/logger.js';
import { LogMailer } from './log-mailer.js';
import type { Mailer } from './mailer.js';
import { SmtpMailer } from './smtp-mailer.js';

/** The Mailer `mail.transport` names; null for "off". Opens nothing. */
export function createMailer(config: MailConfig, log: Logger): Mailer | null {
  switch (config.transport) {
    case 'off':
      return null;
    case 'log':
      return new LogMailer(log);
    case 'smtp':
      return new SmtpMailer({
        url: config.smtpUrl!,
        from: config.from!,
        replyTo: config.replyTo,
        tlsCaFile: config.tlsCaFile,
        tlsRejectUnauthorized: config.tlsRejectUnauthorized,
        requireTls: config.requireTls,
        timeoutMs: config.timeoutMs,
        log,
      });
  }
}
