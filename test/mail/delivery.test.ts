import { expect } from 'chai';
import pg from 'pg';
import type { ConfigInput } from '../../src/config/schema.js';
import { buildContainer, type Container } from '../../src/container.js';
import { QUEUES } from '../../src/jobs/queues.js';
import { startWorker, type RunningWorker } from '../../src/jobs/worker.js';
import { migrate, shutdown } from '../../src/runtime.js';
import { rejectsWith } from '../helpers/assert.js';
import { testConfig } from '../helpers/app.js';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';
import { assertNoSecrets, LogCapture } from '../helpers/log-capture.js';
import { waitUntil } from '../jobs/setup.js';
import { freePort, smtpError, TestSmtpServer, type Received, type TestSmtpOptions } from './support.js';

const FROM = 'authctl tests <no-reply@example.test>';
/** The sentence of the test message's body: must never reach a log line. */
const BODY_TEXT = 'to check that mail can be delivered';

interface Region {
  db: TestDatabase;
  container: Container;
  worker: RunningWorker;
  logs: LogCapture;
  close(): Promise<void>;
}

/** A migrated region whose worker runs in this process (polling every 0.5 s) and logs to `logs`. */
async function startRegion(label: string, mail: ConfigInput['mail']): Promise<Region> {
  const db = await createTestDatabase(label);
  const logs = new LogCapture();
  const container = buildContainer(testConfig(db.url, { mail, log: { level: 'info' } }), { logSink: logs });
  await migrate(container);
  const worker = await startWorker(container, container.jobs, { pollingIntervalSeconds: 0.5, stopTimeoutMs: 5_000 });
  return {
    db,
    container,
    worker,
    logs,
    async close() {
      await worker.stop();
      await shutdown(container);
      await db.drop();
    },
  };
}

async function jobRows(url: string, queue: string): Promise<Array<{ id: string; data: unknown; output: unknown; state: string }>> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    return (
      await client.query<{ id: string; data: unknown; output: unknown; state: string }>(
        'select id, data, output, state from pgboss.job where name = $1 order by created_on',
        [queue],
      )
    ).rows;
  } finally {
    await client.end();
  }
}

async function counter(container: Container, kind: string, result: string): Promise<number> {
  const metric = await container.metrics.registry.getSingleMetric('authctl_mail_sent_total')?.get();
  return metric?.values.find((v) => v.labels.kind === kind && v.labels.result === result)?.value ?? 0;
}

function to(received: Received): string {
  return received.envelopeTo.join(',');
}

describe('mail delivery through the queue: outbox → mail job → worker → SMTP', function () {
  this.timeout(60_000);
  let region: Region;
  let smtp: TestSmtpServer;
  let port: number;
  /** Every message any incarnation of the SMTP server took, in order. */
  const inbox: Received[] = [];
  const deferred = new Set<string>();

  const smtpOptions = (): TestSmtpOptions => ({
    port,
    onMessage: (received) => {
      inbox.push(received);
      return received.envelopeTo.some((a) => deferred.has(a)) ? smtpError(451, 'Greylisted, try again later') : undefined;
    },
  });

  before(async function () {
    port = await freePort();
    smtp = await TestSmtpServer.start(smtpOptions());
    region = await startRegion('mail_delivery', {
      transport: 'smtp',
      smtpUrl: `smtp://127.0.0.1:${port}`,
      from: FROM,
      timeoutMs: 2_000,
      // Short retries so the retry and dead-letter cases finish in seconds.
      retryLimit: 2,
      retryDelaySeconds: 1,
      retryDelayMaxSeconds: 2,
    });
  });

  after(async function () {
    await region?.close();
    await smtp?.close();
  });

  const enqueue = (address: string) =>
    region.container.db.transaction((trx) => region.container.mail.outbox.enqueue(trx, { kind: 'test', to: address, data: {} }));
  const arrivedFor = (address: string) => inbox.filter((m) => to(m) === address && !deferred.has(address));

  it('migrate installs the mail queue: exponential back-off capped at mail.retryDelayMaxSeconds, then the dead-letter queue', async function () {
    const client = new pg.Client({ connectionString: region.db.url });
    await client.connect();
    try {
      const { rows } = await client.query(
        'select retry_limit, retry_delay, retry_backoff, retry_delay_max, expire_seconds, dead_letter from pgboss.queue where name = $1',
        [QUEUES.mail],
      );
      expect(rows).to.deep.equal([
        { retry_limit: 2, retry_delay: 1, retry_backoff: true, retry_delay_max: 2, expire_seconds: 120, dead_letter: QUEUES.deadLetter },
      ]);
    } finally {
      await client.end();
    }
  });

  it('a message enqueued in a committed transaction arrives once, parsed as sent; its job row holds references only', async function () {
    const jobId = await enqueue('alice@example.test');
    await waitUntil(() => arrivedFor('alice@example.test').length === 1, 'the message to arrive');
    const [got] = arrivedFor('alice@example.test');
    expect(got!.parsed.subject).to.equal('authctl: test message');
    expect(got!.parsed.text).to.contain('This is a test message from authctl (region local)');
    expect(got!.parsed.html).to.contain('<strong>authctl</strong>');
    expect(got!.parsed.messageId).to.equal(`<mail.${jobId}@example.test>`);
    expect(got!.parsed.headers.get('auto-submitted')).to.equal('auto-generated');
    expect(got!.parsed.headers.get('x-authctl-kind')).to.equal('test');
    expect(got!.envelopeFrom).to.equal('no-reply@example.test');

    // What anyone with database access can read: the kind, the recipient, no-secret references.
    await waitUntil(async () => (await jobRows(region.db.url, QUEUES.mail)).some((j) => j.id === jobId && j.state === 'completed'), 'the job to complete');
    const row = (await jobRows(region.db.url, QUEUES.mail)).find((j) => j.id === jobId)!;
    expect(row.data).to.deep.equal({ kind: 'test', to: 'alice@example.test', data: {} });
    expect(row.output, 'nothing else is stored with it').to.equal(null);

    await region.logs.settle();
    const [sent] = region.logs.events('mail.sent').filter((e) => e.jobId === jobId);
    expect(sent).to.deep.include({
      level: 'info',
      kind: 'test',
      jobId,
      messageId: `<mail.${jobId}@example.test>`,
      domain: 'example.test',
      attempt: 1,
      transport: 'smtp',
    });
    expect(await counter(region.container, 'test', 'sent')).to.be.at.least(1);
  });

  it('a rolled-back transaction sends nothing and leaves no job', async function () {
    const failure = new Error('the change is rolled back');
    let rolledBackJob = '';
    try {
      await region.container.db.writer.transaction(async (trx) => {
        rolledBackJob = await region.container.mail.outbox.enqueue(trx, { kind: 'test', to: 'rolled-back@example.test', data: {} });
        throw failure;
      });
    } catch (err) {
      expect(err).to.equal(failure);
    }
    expect(rolledBackJob).to.match(/^[0-9a-f-]{36}$/);
    // A later committed message arrives: the worker ran past the rolled-back one, which never existed.
    await enqueue('after-rollback@example.test');
    await waitUntil(() => arrivedFor('after-rollback@example.test').length === 1, 'the committed message');
    expect(inbox.filter((m) => to(m) === 'rolled-back@example.test')).to.deep.equal([]);
    expect((await jobRows(region.db.url, QUEUES.mail)).map((j) => j.id)).not.to.include(rolledBackJob);
  });

  it('a backlog drains at once (batches of 10 in flight, no idle poll between them), each message exactly once', async function () {
    const addresses = Array.from({ length: 30 }, (_, i) => `backlog-${i}@example.test`);
    const started = Date.now();
    await region.container.db.transaction(async (trx) => {
      for (const address of addresses) await region.container.mail.outbox.enqueue(trx, { kind: 'test', to: address, data: {} });
    });
    await waitUntil(() => addresses.every((a) => arrivedFor(a).length > 0), 'the backlog to arrive', 15_000);
    // One job per idle poll (0.5 s here) would take 15 s.
    expect(Date.now() - started).to.be.below(6_000);
    await new Promise((resolve) => setTimeout(resolve, 500));
    for (const address of addresses) expect(arrivedFor(address), address).to.have.length(1);
  });

  it('refuses at enqueue what a job row must not hold, and a kind nobody composes', async function () {
    const outbox = region.container.mail.outbox;
    const tryEnqueue = (request: Parameters<typeof outbox.enqueue>[1]) => region.container.db.transaction((trx) => outbox.enqueue(trx, request));
    expect((await rejectsWith(tryEnqueue({ kind: 'test', to: 'bob@example.test', data: { code: '123456' } }), 'invalid_request')).detail).to.match(
      /data\.code looks like a secret/,
    );
    expect((await rejectsWith(tryEnqueue({ kind: 'welcome', to: 'bob@example.test', data: {} }), 'invalid_request')).detail).to.match(
      /no mail of kind "welcome"/,
    );
    expect((await rejectsWith(tryEnqueue({ kind: 'test', to: 'not an address', data: {} }), 'invalid_request')).detail).to.match(/recipient/);
  });

  it('SMTP down when the message is enqueued: it is retried and arrives once the server is back', async function () {
    await smtp.close();
    const started = Date.now();
    const jobId = await enqueue('while-down@example.test');
    await waitUntil(() => region.logs.events('mail.failed').some((e) => e.jobId === jobId), 'a failed attempt', 10_000);
    const [failed] = region.logs.events('mail.failed').filter((e) => e.jobId === jobId);
    expect(failed).to.deep.include({ level: 'warn', kind: 'test', jobId, domain: 'example.test', attempt: 1, retryLimit: 2, reason: 'unavailable' });
    expect(failed!.smtp).to.deep.include({ code: 'ECONNREFUSED' });
    expect(await counter(region.container, 'test', 'failed')).to.be.at.least(1);

    smtp = await TestSmtpServer.start(smtpOptions());
    await waitUntil(() => arrivedFor('while-down@example.test').length === 1, 'the retried message', 15_000);
    expect(Date.now() - started, 'delivered within the retry horizon').to.be.below(15_000);
    expect(arrivedFor('while-down@example.test')[0]!.parsed.messageId).to.equal(`<mail.${jobId}@example.test>`);
    await region.logs.settle();
    expect(region.logs.events('mail.sent').filter((e) => e.jobId === jobId)[0]).to.deep.include({ attempt: 2 });
  });

  it('a message the server keeps deferring is dead-lettered after the retries: mail.dead logged once, counted, kept for an operator', async function () {
    const address = 'always-deferred@example.test';
    deferred.add(address);
    const jobId = await enqueue(address);
    let deadId = '';
    await waitUntil(
      async () => {
        const [dead] = await region.container.jobs.findJobs(QUEUES.deadLetter, { data: { to: address } });
        deadId = dead?.id ?? '';
        return dead !== undefined;
      },
      'the job to reach dead-letter',
      20_000,
    );
    await region.logs.settle();
    expect(
      inbox.filter((m) => to(m) === address),
      'three attempts reached the server',
    ).to.have.length(3);
    expect(
      region.logs
        .events('mail.failed')
        .filter((e) => e.jobId === jobId)
        .map((e) => e.attempt),
    ).to.deep.equal([1, 2]);
    const dead = region.logs.events('mail.dead').filter((e) => e.jobId === jobId);
    expect(dead, 'logged once').to.have.length(1);
    expect(dead[0]).to.deep.include({
      level: 'error',
      kind: 'test',
      attempt: 3,
      reason: 'unavailable',
      domain: 'example.test',
      messageId: `<mail.${jobId}@example.test>`,
    });
    expect(dead[0]!.smtp).to.deep.include({ responseCode: 451 });
    expect(region.logs.events('job.dead_lettered').map((e) => e.jobId)).to.include(jobId);
    expect(await counter(region.container, 'test', 'dead')).to.equal(1);

    const [kept] = await region.container.jobs.findJobs(QUEUES.deadLetter, { id: deadId });
    expect(kept).to.include({ state: 'created', sourceName: QUEUES.mail, sourceId: jobId });
    expect(kept!.data).to.deep.equal({ kind: 'test', to: address, data: {} });
    // The stored error names the domain, not the address or the server's reply.
    expect(JSON.stringify(kept!.sourceOutput ?? {}))
      .to.contain('example.test')
      .and.not.contain('always-deferred@');
  });

  it('no log line holds a recipient address, a subject or a body; the counter is on /metrics', async function () {
    await region.logs.settle();
    const addresses = inbox.flatMap((m) => m.envelopeTo);
    expect(addresses.length).to.be.at.least(5);
    assertNoSecrets(region.logs.lines, [
      ...[...new Set(addresses)].map((a): [string, string] => [`address ${a}`, a]),
      ['subject', 'authctl: test message'],
      ['body', BODY_TEXT],
    ]);
    const exposition = await region.container.metrics.render();
    expect(exposition).to.match(/^authctl_mail_sent_total\{kind="test",result="sent",region="local"\} \d+$/m);
    expect(exposition).to.match(/^authctl_mail_sent_total\{kind="test",result="dead",region="local"\} 1$/m);
  });
});

describe('mail.transport "log": the message is written to the log on purpose, recipient and subject only', function () {
  this.timeout(30_000);
  let region: Region;

  before(async function () {
    region = await startRegion('mail_log', { transport: 'log', from: FROM });
  });

  after(async function () {
    await region?.close();
  });

  it('logs mail.logged with recipient and subject, never the body, and completes the job', async function () {
    const jobId = await region.container.db.transaction((trx) =>
      region.container.mail.outbox.enqueue(trx, { kind: 'test', to: 'carol@example.test', data: {} }),
    );
    await waitUntil(async () => {
      await region.logs.settle();
      return region.logs.events('mail.sent').some((e) => e.jobId === jobId);
    }, 'the message to be logged');
    const [logged] = region.logs.events('mail.logged');
    expect(logged).to.deep.include({ level: 'info', to: 'carol@example.test', subject: 'authctl: test message', messageId: `<mail.${jobId}@example.test>` });
    expect(region.logs.events('mail.sent').find((e) => e.jobId === jobId)).to.deep.include({ transport: 'log' });
    assertNoSecrets(region.logs.lines, [['body', BODY_TEXT]]);
    expect(await counter(region.container, 'test', 'sent')).to.equal(1);
  });
});

describe('mail.transport "off" (the default)', function () {
  it('has no mailer, registers no mail handler, and refuses to enqueue with bad_config', async function () {
    this.timeout(30_000);
    const region = await startRegion('mail_off', undefined);
    try {
      expect(region.container.mail.mailer).to.equal(null);
      expect(region.container.mail.outbox.enabled).to.equal(false);
      expect(region.worker.queues).not.to.include(QUEUES.mail);
      const err = await rejectsWith(
        region.container.db.transaction((trx) => region.container.mail.outbox.enqueue(trx, { kind: 'test', to: 'dave@example.test', data: {} })),
        'bad_config',
      );
      expect(err.detail).to.match(/mail is off/);
      expect(await jobRows(region.db.url, QUEUES.mail)).to.deep.equal([]);
    } finally {
      await region.close();
    }
  });
});
