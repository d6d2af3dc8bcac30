import type { MailJobData } from '../../mail/composers.js';
import { recipientDomain, type Mailer } from '../../mail/mailer.js';
import type { MailMessages } from '../../mail/messages.js';
import type { MailMetrics } from '../../mail/metrics.js';
import { smtpFailure } from '../../mail/smtp-mailer.js';
import { isAppError } from '../../platform/errors.js';
import type { Logger } from '../../platform/logger.js';
import type { JobInfo } from '../job-queue.js';

export interface MailHandlerDeps {
  mailer: Mailer;
  messages: MailMessages;
  metrics: MailMetrics;
  log: Logger;
  /** The registered kinds: the metric's `kind` label never takes another value. */
  kinds: () => readonly string[];
}

/**
 * Sends one `mail` job: composes it from its references, hands it to the mailer, counts and logs
 * the outcome (`mail.sent`, `mail.failed`, `mail.dead`, `mail.skipped`) with the kind, job id,
 * Message-ID and the recipient's domain only — never the address, subject or body. A failure
 * throws a summary without the server's reply (it may quote the address), so pg-boss retries;
 * on the last attempt the job is dead-lettered.
 */
export async function runMail(deps: MailHandlerDeps, data: MailJobData, job: JobInfo): Promise<{ messageId: string } | { skipped: true }> {
  const { mailer, messages, metrics, log } = deps;
  const kind = deps.kinds().includes(data.kind) ? data.kind : 'unknown';
  const domain = recipientDomain(typeof data.to === 'string' ? data.to : '');
  const attempt = job.retryCount + 1;
  const final = job.retryCount >= job.retryLimit;
  let messageId: string | undefined;
  try {
    const message = await messages.build(data, job.id);
    if (!message) {
      metrics.sent.inc({ kind, result: 'skipped' });
      log.info('mail not sent: nothing to send any more', { event: 'mail.skipped', kind, jobId: job.id, domain, attempt });
      return { skipped: true };
    }
    messageId = message.messageId;
    const sent = await mailer.send(message, { signal: job.signal });
    metrics.sent.inc({ kind, result: 'sent' });
    log.info('mail sent', { event: 'mail.sent', kind, jobId: job.id, messageId: sent.messageId, domain, attempt, transport: mailer.transport });
    return { messageId: sent.messageId };
  } catch (err) {
    const reason = isAppError(err) ? err.code : 'error';
    const smtp = smtpFailure(err);
    metrics.sent.inc({ kind, result: final ? 'dead' : 'failed' });
    const meta = {
      kind,
      jobId: job.id,
      ...(messageId ? { messageId } : {}),
      domain,
      attempt,
      retryLimit: job.retryLimit,
      reason,
      ...(Object.keys(smtp).length ? { smtp } : {}),
    };
    if (final) log.error('mail not delivered: last attempt failed; the job is dead-lettered', { event: 'mail.dead', ...meta });
    else log.warn('mail not delivered; will retry', { event: 'mail.failed', ...meta });
    const summary = [reason, smtp.code, smtp.responseCode, smtp.command].filter((part) => part !== undefined && part !== '').join(' ');
    // Not the caught error as cause: its text may quote the recipient, and pg-boss stores what is thrown.
    // eslint-disable-next-line preserve-caught-error
    throw new Error(`mail of kind ${kind} not delivered to a recipient at ${domain || 'an invalid address'} (${summary})`);
  }
}
