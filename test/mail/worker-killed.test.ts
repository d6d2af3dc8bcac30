import type { ChildProcessWithoutNullStreams } from 'node:child_process';
import { expect } from 'chai';
import { buildContainer, type Container } from '../../src/container.js';
import { JobQueue } from '../../src/jobs/job-queue.js';
import { startWorker, type RunningWorker } from '../../src/jobs/worker.js';
import { migrate, shutdown } from '../../src/runtime.js';
import { testConfig } from '../helpers/app.js';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';
import { LogCapture } from '../helpers/log-capture.js';
import { spawnCli } from '../cli/run-cli.js';
import { waitUntil } from '../jobs/setup.js';
import { TestSmtpServer, type Received } from './support.js';

/**
 * At-least-once: a worker killed (SIGKILL) after the SMTP server took the message but before the
 * job was marked done. The job stays active until `mail.jobTimeoutSeconds`, then another worker
 * retries it, and the recipient gets a second, identical copy: same Message-ID, subject and body.
 */
describe('mail: a worker killed mid-send', function () {
  this.timeout(90_000);
  let db: TestDatabase;
  let container: Container;
  let smtp: TestSmtpServer;
  let child: ChildProcessWithoutNullStreams | undefined;
  let childExit: Promise<NodeJS.Signals | null> | undefined;
  let rescuer: RunningWorker | undefined;
  let childOutput = '';
  const mailEnv = (): Record<string, string> => ({
    AUTHCTL_MAIL_TRANSPORT: 'smtp',
    AUTHCTL_SMTP_URL: smtp.url,
    AUTHCTL_MAIL_FROM: 'authctl tests <no-reply@example.test>',
  });

  before(async function () {
    db = await createTestDatabase('mail_killed');
    smtp = await TestSmtpServer.start({
      // The first copy: recorded (the server has it), then the worker dies before it hears "250".
      onMessage: async (received: Received) => {
        if (smtp.received.indexOf(received) === 0 && child) {
          child.kill('SIGKILL');
          await childExit;
        }
        return undefined;
      },
    });
    const config = testConfig(db.url, {
      mail: {
        transport: 'smtp',
        smtpUrl: smtp.url,
        from: 'authctl tests <no-reply@example.test>',
        jobTimeoutSeconds: 2,
        retryDelaySeconds: 1,
        retryDelayMaxSeconds: 2,
      },
    });
    container = buildContainer(config);
    await migrate(container);
  });

  after(async function () {
    if (child && child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    await rescuer?.stop();
    await shutdown(container);
    await smtp?.close();
    await db?.drop();
  });

  it('is still delivered, at least once: the duplicate has the same Message-ID, subject and body', async function () {
    // 1. `authctl worker`, a process of its own, the only worker.
    child = spawnCli(['worker', '--stop-timeout', '1'], { databaseUrl: db.url, env: { AUTHCTL_SECRET: undefined, AUTHCTL_LOG_LEVEL: 'info', ...mailEnv() } });
    childExit = new Promise((resolve) => child!.on('exit', (_code, signal) => resolve(signal)));
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => (childOutput += chunk));
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => (childOutput += chunk));
    await waitUntil(() => /"event":"worker\.started"/.test(childOutput), `the worker to start:\n${childOutput}`, 30_000);
    expect(childOutput).to.match(/"queues":\[[^\]]*"mail"/);

    // 2. One message, enqueued in a transaction.
    const jobId = await container.db.transaction((trx) =>
      container.mail.outbox.enqueue(trx, { kind: 'test', to: 'erin@example.test', data: { requestedAt: new Date().toISOString() } }),
    );

    // 3. The server takes it; the worker is killed before it can mark the job done.
    await smtp.waitFor(1);
    expect(await childExit).to.equal('SIGKILL');
    const [stuck] = await container.jobs.findJobs('mail', { id: jobId });
    expect(stuck, 'left active by the dead worker').to.include({ state: 'active', retryCount: 0 });

    // 4. Another worker takes it over once the attempt has outlived mail.jobTimeoutSeconds (2 s).
    const logs = new LogCapture();
    const log = logs.logger({ level: 'info' });
    const queue = new JobQueue({ config: container.config, log, superviseIntervalSeconds: 1 });
    const started = Date.now();
    rescuer = await startWorker({ ...container, log }, queue, { pollingIntervalSeconds: 0.5, stopTimeoutMs: 2_000 });
    const [first, second] = await smtp.waitFor(2, 30_000);
    expect(Date.now() - started, 'taken over within timeout + supervision + retry delay').to.be.below(20_000);

    // What a duplicate looks like: a second, identical copy (only the Date header may differ).
    expect(second!.parsed.messageId).to.equal(`<mail.${jobId}@example.test>`);
    expect(second!.parsed.messageId).to.equal(first!.parsed.messageId);
    expect(second!.parsed.subject).to.equal(first!.parsed.subject);
    expect(second!.parsed.text).to.equal(first!.parsed.text);
    expect(second!.parsed.html).to.equal(first!.parsed.html);
    expect(second!.envelopeTo).to.deep.equal(['erin@example.test']);

    await waitUntil(async () => (await container.jobs.findJobs('mail', { id: jobId }))[0]?.state === 'completed', 'the job to complete');
    await logs.settle();
    expect(logs.events('mail.sent').filter((e) => e.jobId === jobId)).to.have.length(1);
    expect(logs.events('mail.sent')[0]).to.deep.include({ attempt: 2, messageId: `<mail.${jobId}@example.test>` });
  });
});
