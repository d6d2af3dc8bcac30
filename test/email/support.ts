import type { ConfigInput } from '../../src/config/schema.js';
import { startWorker, type RunningWorker } from '../../src/jobs/worker.js';
import { startTestApp, type TestApp } from '../helpers/app.js';
import { LogCapture } from '../helpers/log-capture.js';
import { waitUntil } from '../jobs/setup.js';
import { TestSmtpServer, type Received } from '../mail/support.js';

export const FROM = 'authctl tests <no-reply@example.test>';

/** A region with e-mail identity on: the HTTP app, its worker (polling every 0.5 s) and a real SMTP server. */
export interface EmailRegion {
  app: TestApp;
  smtp: TestSmtpServer;
  worker: RunningWorker;
  logs: LogCapture;
  close(): Promise<void>;
}

export async function startEmailRegion(label: string, overrides: ConfigInput = {}, smtp?: TestSmtpServer): Promise<EmailRegion> {
  const server = smtp ?? (await TestSmtpServer.start());
  const logs = new LogCapture();
  const app = await startTestApp(label, {
    logSink: logs,
    overrides: {
      log: { level: 'info' },
      ...overrides,
      identity: { email: 'optional', ...overrides.identity },
      mail: { transport: 'smtp', smtpUrl: `smtp://127.0.0.1:${server.port}`, from: FROM, retryDelaySeconds: 1, retryDelayMaxSeconds: 2, ...overrides.mail },
    },
  });
  const worker = await startWorker(app.container, app.container.jobs, { pollingIntervalSeconds: 0.5, stopTimeoutMs: 5_000 });
  return {
    app,
    smtp: server,
    worker,
    logs,
    async close() {
      await worker.stop();
      await app.close();
      if (!smtp) await server.close();
    },
  };
}

/** The code and link of a message (the 6 digits on a line of their own, the first http link). */
export function codeAndLink(mail: Received): { code: string; link: string; token: string } {
  const text = mail.parsed.text ?? '';
  const code = /^\s*(\d{6})\s*$/m.exec(text)?.[1];
  const link = /(https?:\/\/\S+)/.exec(text)?.[1];
  if (!code || !link) throw new Error(`no code or link in: ${text}`);
  return { code, link, token: new URL(link).searchParams.get('token') ?? '' };
}

/** Waits for a message to `to` whose subject matches, after `since` messages were received. */
export async function nextMail(smtp: TestSmtpServer, to: string, subject: RegExp, since = 0, timeoutMs = 15_000): Promise<Received> {
  let found: Received | undefined;
  await waitUntil(
    () => {
      found = smtp.received.slice(since).find((m) => m.envelopeTo.includes(to) && subject.test(m.parsed.subject ?? ''));
      return found !== undefined;
    },
    `a message to ${to} matching ${subject}`,
    timeoutMs,
  );
  return found!;
}
