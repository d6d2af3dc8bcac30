import { randomUUID } from 'node:crypto';
import { mailboxAddress, type MailConfig } from '../config/mail.js';
import type { Clock } from '../platform/clock.js';
import { AppError } from '../platform/errors.js';
import type { MailComposers, MailJobData } from './composers.js';
import type { OutgoingMail } from './mailer.js';
import type { MailTemplates } from './templates.js';

export interface MailMessagesOptions {
  composers: MailComposers;
  templates: MailTemplates;
  config: Pick<MailConfig, 'from' | 'productName'>;
  region: string;
  clock: Clock;
}

/**
 * Turns a job's references into the message to send: the kind's composer gives the values, the
 * kind's templates the text. The Message-ID is derived from the job id, so every attempt of one
 * job sends the same Message-ID (a duplicate delivery is recognisable, and mail clients that
 * de-duplicate by Message-ID show it once).
 */
export class MailMessages {
  constructor(private readonly opts: MailMessagesOptions) {}

  /** The message for `job`, or null when its composer says there is nothing to send any more. */
  async build(job: MailJobData, jobId: string | null): Promise<OutgoingMail | null> {
    const { composers, templates, config, region, clock } = this.opts;
    // Checked again at send time: the row may predate a change of the kind's schema.
    const request = composers.check(job);
    const composer = composers.get(request.kind)!;
    const values = await composer.compose(request, { jobId, region, productName: config.productName, now: clock.now() });
    if (values === null) return null;
    const rendered = templates.render(request.kind, { ...values, productName: config.productName });
    return {
      to: request.to,
      ...rendered,
      messageId: messageIdFor(jobId, config.from),
      headers: { 'Auto-Submitted': 'auto-generated', 'X-Authctl-Kind': request.kind },
    };
  }
}

/** `<mail.<job id>@<sender's domain>>`, or a random id for a message sent outside the queue. */
export function messageIdFor(jobId: string | null, from: string | undefined): string {
  if (!from) throw new AppError('bad_config', 'mail.from is not set');
  const address = mailboxAddress(from);
  const domain = address.slice(address.lastIndexOf('@') + 1).toLowerCase();
  return `<${jobId ? `mail.${jobId}` : `direct.${randomUUID()}`}@${domain}>`;
}
