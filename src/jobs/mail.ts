import type { Knex } from 'knex';
import type { MailConfig } from '../config/mail.js';
import type { MailComposers, MailQueue, MailRequest } from '../mail/composers.js';
import type { Mailer } from '../mail/mailer.js';
import type { MailMessages } from '../mail/messages.js';
import type { MailMetrics } from '../mail/metrics.js';
import type { MailTemplates } from '../mail/templates.js';
import { AppError } from '../platform/errors.js';
import type { JobQueue } from './job-queue.js';
import { QUEUES } from './queues.js';

/** Everything mail of a region is made of (the container builds it; workers and `mail test` use it). */
export interface MailServices {
  config: MailConfig;
  /** Null when `mail.transport` is "off". */
  mailer: Mailer | null;
  /** The composers by kind: where later flows add theirs. */
  composers: MailComposers;
  templates: MailTemplates;
  messages: MailMessages;
  /** What flows enqueue with, inside their transaction. */
  outbox: MailOutbox;
  metrics: MailMetrics;
}

/**
 * The mail outbox: a mail job written in the caller's transaction (`jobs.sendInTransaction`), so
 * a message exists if and only if the transaction that made what it is about commits. The job
 * holds references only (checked by `MailComposers.check`); a worker composes and sends it.
 */
export class MailOutbox implements MailQueue {
  constructor(
    private readonly jobs: Pick<JobQueue, 'sendInTransaction'>,
    private readonly composers: MailComposers,
    private readonly transport: MailConfig['transport'],
  ) {}

  get enabled(): boolean {
    return this.transport !== 'off';
  }

  async enqueue(trx: Knex.Transaction, request: MailRequest): Promise<string> {
    if (!this.enabled) {
      throw new AppError(
        'bad_config',
        'mail is off (mail.transport is "off"): set AUTHCTL_MAIL_TRANSPORT=smtp, AUTHCTL_SMTP_URL and AUTHCTL_MAIL_FROM to send mail',
      );
    }
    return this.jobs.sendInTransaction(trx, QUEUES.mail, this.composers.check(request));
  }
}
