import type { EmailRequestData, EmailRequestQueue } from '../core/email/email-flows.js';
import type { JobQueue } from './job-queue.js';
import { QUEUES } from './queues.js';

/**
 * Anonymous requests for a message (forgot, verify/send with `{email}`) as `email-request` jobs:
 * the request path writes one job row whatever account it names, and a worker looks it up
 * (EmailFlows.fulfil) — the same work, and so the same time, for known and unknown accounts.
 */
export class EmailRequestJobs implements EmailRequestQueue {
  constructor(private readonly jobs: Pick<JobQueue, 'send'>) {}

  async enqueue(data: EmailRequestData): Promise<void> {
    await this.jobs.send(QUEUES.emailRequest, data);
  }
}
