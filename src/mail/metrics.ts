import { Counter, type Registry } from 'prom-client';

export type MailResult = 'sent' | 'failed' | 'dead' | 'skipped';

export interface MailMetrics {
  /**
   * `authctl_mail_sent_total{kind,result}`, per delivery attempt: `sent` (the server took it),
   * `failed` (this attempt failed; it will be retried), `dead` (the last attempt failed; the job
   * is dead-lettered), `skipped` (the composer had nothing to send any more).
   */
  sent: Counter<'kind' | 'result'>;
}

/** The mail metrics, on the region's registry. */
export function createMailMetrics(registry: Registry): MailMetrics {
  return {
    sent: new Counter({
      name: 'authctl_mail_sent_total',
      help:
        'Mail delivery attempts by kind and result: sent, failed (will be retried), ' +
        'dead (last attempt failed: dead-lettered), skipped (nothing to send any more).',
      labelNames: ['kind', 'result'] as const,
      registers: [registry],
    }),
  };
}
