/**
 * Mail bench: how fast one worker delivers queued mail into a local SMTP catcher.
 *
 *   npm run bench:mail -- [--messages 2000] [--latency 40] [--pg-url URL]
 *
 * 1. Drain: `--messages` test messages are enqueued (one transaction each) while no worker runs;
 *    then one worker (`startWorker`, as `authctl worker` runs it) is started and timed until the
 *    catcher has them all: delivered messages/s.
 * 2. Latency: with the worker idle, `--latency` messages one after another, each timed from its
 *    transaction's commit to its arrival at the catcher (p50/p99; bounded below by the worker's
 *    idle poll, 2 s).
 *
 * The catcher is an smtp-server in this process that only reads each message and notes its
 * Message-ID (no parsing), so the figure is the worker's, not the catcher's. Creates and drops its
 * own database.
 */
import type { AddressInfo } from 'node:net';
import { cpus } from 'node:os';
import { parseArgs } from 'node:util';
import { adminQuery } from './lib/env.js';
import { SMTPServer } from 'smtp-server';
import { loadConfig } from '../src/config/load.js';
import { buildContainer } from '../src/container.js';
import { startWorker } from '../src/jobs/worker.js';
import { migrate, shutdown } from '../src/runtime.js';

const { values } = parseArgs({
  options: {
    messages: { type: 'string', default: '2000' },
    latency: { type: 'string', default: '40' },
    'pg-url': { type: 'string', default: process.env.AUTHCTL_BENCH_PG_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres' },
  },
});
const messages = Number(values.messages);
const latencySamples = Number(values.latency);
if (!Number.isInteger(messages) || messages < 1 || !Number.isInteger(latencySamples) || latencySamples < 0) {
  console.error('usage: npm run bench:mail -- [--messages N ≥ 1] [--latency N ≥ 0] [--pg-url URL]');
  process.exit(2);
}

const admin = (sql: string) => adminQuery(values['pg-url'], sql);

/** A catcher that notes when each Message-ID arrived, and nothing else. */
async function startCatcher(): Promise<{ url: string; arrivals: Map<string, number>; onArrival: (cb: () => void) => void; close(): Promise<void> }> {
  const arrivals = new Map<string, number>();
  let listener: (() => void) | undefined;
  const server = new SMTPServer({
    disabledCommands: ['STARTTLS', 'AUTH'],
    authOptional: true,
    logger: false,
    closeTimeout: 500,
    onData(stream, _session, callback) {
      let head = '';
      stream.on('data', (chunk: Buffer) => {
        if (head.length < 8192) head += chunk.toString('latin1');
      });
      stream.on('end', () => {
        const id = /^Message-ID:\s*(<[^>]+>)/im.exec(head)?.[1];
        if (id) arrivals.set(id, performance.now());
        listener?.();
        callback();
      });
    },
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
  return {
    url: `smtp://127.0.0.1:${(server.server.address() as AddressInfo).port}`,
    arrivals,
    onArrival: (cb) => (listener = cb),
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

function percentile(sorted: number[], p: number): number {
  if (!sorted.length) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)]!;
}

async function main(): Promise<void> {
  const database = `authctl_bench_mail_${Date.now()}_${process.pid}`;
  await admin(`create database "${database}"`);
  const url = new URL(values['pg-url']);
  url.pathname = `/${database}`;
  const catcher = await startCatcher();
  const container = buildContainer(
    loadConfig({
      env: {},
      cwd: '/nonexistent',
      overrides: {
        database: { url: url.toString() },
        log: { level: 'warn' },
        mail: { transport: 'smtp', smtpUrl: catcher.url, from: 'bench <no-reply@bench.localhost>' },
      },
    }),
  );
  try {
    await migrate(container);
    const enqueue = (i: number) =>
      container.db.transaction((trx) => container.mail.outbox.enqueue(trx, { kind: 'test', to: `user${i}@bench.localhost`, data: {} }));

    console.log(`· enqueueing ${messages} messages (one transaction each, no worker running)`);
    const enqueueStarted = performance.now();
    const ids: string[] = [];
    for (let i = 0; i < messages; i += 16) {
      ids.push(...(await Promise.all(Array.from({ length: Math.min(16, messages - i) }, (_, k) => enqueue(i + k)))));
    }
    const enqueueSeconds = (performance.now() - enqueueStarted) / 1000;

    const wanted = new Set(ids.map((id) => `<mail.${id}@bench.localhost>`));
    const drained = new Promise<void>((resolve) => {
      catcher.onArrival(() => {
        if ([...wanted].every((id) => catcher.arrivals.has(id))) resolve();
      });
    });
    const cpuBefore = process.cpuUsage();
    const started = performance.now();
    const worker = await startWorker(container, container.jobs);
    await drained;
    const drainSeconds = (performance.now() - started) / 1000;
    const cpu = process.cpuUsage(cpuBefore);

    console.log(`· latency: ${latencySamples} messages one at a time, commit → arrival`);
    const latencies: number[] = [];
    for (let i = 0; i < latencySamples; i++) {
      const arrived = new Promise<void>((resolve) => catcher.onArrival(resolve));
      const committed = performance.now();
      const id = await enqueue(messages + i);
      await arrived;
      const at = catcher.arrivals.get(`<mail.${id}@bench.localhost>`);
      if (at !== undefined) latencies.push(at - committed);
    }
    await worker.stop();
    latencies.sort((a, b) => a - b);

    const report = {
      node: process.version,
      cpus: cpus().length,
      cpuModel: cpus()[0]?.model.trim() ?? '?',
      messages,
      enqueuePerSecond: Math.round(messages / enqueueSeconds),
      drainSeconds: Number(drainSeconds.toFixed(2)),
      deliveredPerSecond: Math.round(messages / drainSeconds),
      workerProcessCpuPct: Math.round(((cpu.user + cpu.system) / 1000 / (drainSeconds * 1000)) * 100),
      latencyMs: {
        samples: latencies.length,
        p50: Math.round(percentile(latencies, 50)),
        p99: Math.round(percentile(latencies, 99)),
        max: Math.round(latencies.at(-1) ?? NaN),
      },
    };
    console.log(`\nmail delivery, one worker process, SMTP catcher on loopback (${report.cpus} × ${report.cpuModel}, Node ${report.node})`);
    console.log(`  enqueue (a transaction each, 16 at a time): ${report.enqueuePerSecond} messages/s`);
    console.log(
      `  drain of ${messages} queued messages: ${report.drainSeconds} s = ${report.deliveredPerSecond} delivered messages/s (this process: ${report.workerProcessCpuPct} % of one core, catcher included)`,
    );
    console.log(`  commit → arrival, idle worker: p50 ${report.latencyMs.p50} ms, p99 ${report.latencyMs.p99} ms (${report.latencyMs.samples} messages)`);
    console.log(JSON.stringify(report));
  } finally {
    await shutdown(container);
    await catcher.close();
    await admin(`drop database if exists "${database}" with (force)`);
  }
}

await main();
