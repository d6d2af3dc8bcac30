/**
 * The cleanup job under traffic: a real `authctl worker` runs the pg-boss `cleanup` job (its
 * cron pushed out of the way, so the pass measured is the one this bench sends) while refresh
 * load runs against the server. The job's own `cleanup.done` log line gives its duration and
 * what it deleted; every refresh response is stamped, so the latency of those answered while
 * the job ran is told apart from the rest of the run.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { JobQueue } from '../../src/jobs/job-queue.js';
import { QUEUES } from '../../src/jobs/queues.js';
import { createLogger } from '../../src/platform/logger.js';
import type { CpuUsage } from './cpu.js';
import { startWorker, type Cleanup, type Environment } from './env.js';
import { measure, type LoadSpec, type LoadTarget } from './load.js';
import { Latencies, round, type LatencySummary } from './stats.js';

/** Never, in practice: the cron must not start a pass of its own before or during the measured one. */
const NO_CRON = '0 0 1 1 *';

export interface CleanupDone {
  /** When the pass ended (the log line's timestamp), ms since the epoch. */
  endedAt: number;
  durationMs: number;
  deletedSessions: number;
  batches: number;
}

export interface CleanupWorker {
  pid: number;
  /** Sends one `cleanup` job and resolves when the worker has logged its `cleanup.done`. */
  runJob(timeoutMs: number): Promise<CleanupDone>;
}

/** Starts `authctl worker` for `env`'s region with `jobs.cleanupBatchSize` = `batchSize`, and waits until it works its queues. */
export async function startCleanupWorker(opts: { env: Environment; cleanup: Cleanup; batchSize: number }): Promise<CleanupWorker> {
  const dir = mkdtempSync(join(tmpdir(), 'authctl-bench-'));
  opts.cleanup.add(`removing ${dir}`, () => rmSync(dir, { recursive: true, force: true }));
  const configFile = join(dir, 'authctl.json');
  writeFileSync(configFile, JSON.stringify({ jobs: { cleanupCron: NO_CRON, cleanupBatchSize: opts.batchSize } }));

  const waiting: Array<{ event: string; resolve: (entry: Record<string, unknown>) => void }> = [];
  const next = (event: string, timeoutMs: number) =>
    new Promise<Record<string, unknown>>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`authctl worker: no ${event} within ${timeoutMs / 1000} s`)), timeoutMs);
      waiting.push({
        event,
        resolve: (entry) => {
          clearTimeout(timer);
          resolve(entry);
        },
      });
    });
  const started = next('worker.started', 60_000);
  const worker = startWorker({
    processEnv: opts.env.processEnv,
    cleanup: opts.cleanup,
    env: { AUTHCTL_CONFIG: configFile, AUTHCTL_LOG_LEVEL: 'info' },
    onLine: (line) => {
      let entry: Record<string, unknown>;
      try {
        entry = JSON.parse(line) as Record<string, unknown>;
      } catch {
        return;
      }
      const i = waiting.findIndex((w) => w.event === entry.event);
      if (i >= 0) waiting.splice(i, 1)[0]!.resolve(entry);
    },
  });
  await started;

  const queue = new JobQueue({ config: opts.env.config, log: createLogger({ level: 'silent', region: opts.env.config.region }) });
  opts.cleanup.add('stopping the bench job producer', () => queue.stop());
  return {
    pid: worker.pid,
    async runJob(timeoutMs) {
      const done = next('cleanup.done', timeoutMs);
      await queue.send(QUEUES.cleanup, {});
      const entry = await done;
      const deleted = entry.deleted as { sessions?: number } | undefined;
      return {
        endedAt: Date.parse(String(entry.timestamp)),
        durationMs: Number(entry.durationMs),
        deletedSessions: Number(deleted?.sessions ?? 0),
        batches: Number(entry.batches ?? 0),
      };
    },
  };
}

export interface LatencyWindow extends LatencySummary {
  requests: number;
  /** Responses other than the expected status. */
  errors: number;
  /** Successful responses per second over the window. */
  rps: number;
}

export interface CleanupUnderLoad {
  cleanup: CleanupDone;
  /** Load average (1, 5, 15 min) when the load started. */
  loadAvg: number[];
  /** The responses answered while the job ran. */
  during: LatencyWindow;
  /** The whole load run (a second or two before the job, and one after). */
  run: LatencyWindow;
  cpu: CpuUsage;
}

/**
 * Runs `spec` (its duration ignored: it lasts as long as the pass) and, a second into it, the
 * cleanup job on `worker`; stops the load a second after the job is done.
 */
export async function measureCleanupUnderLoad(opts: {
  target: LoadTarget;
  spec: LoadSpec;
  worker: CleanupWorker;
  timeoutMs?: number;
}): Promise<CleanupUnderLoad> {
  const stamps: number[] = [];
  const latencies: number[] = [];
  const statuses: number[] = [];
  const stop = new AbortController();
  const signal = opts.target.signal ? AbortSignal.any([opts.target.signal, stop.signal]) : stop.signal;
  const loadAvg = loadavg().map((x) => round(x));
  const load = measure(
    { ...opts.target, signal },
    {
      ...opts.spec,
      durationS: Math.ceil((opts.timeoutMs ?? 3_600_000) / 1000) + 10,
      observe: (status, ms) => {
        stamps.push(Date.now());
        latencies.push(ms);
        statuses.push(status);
      },
    },
  );
  let cleanup: CleanupDone;
  try {
    await new Promise((r) => setTimeout(r, 1_000));
    cleanup = await opts.worker.runJob(opts.timeoutMs ?? 3_600_000);
    await new Promise((r) => setTimeout(r, 1_000));
  } finally {
    stop.abort();
  }
  const result = await load;
  const startedAt = cleanup.endedAt - cleanup.durationMs;
  const window = (from: number, to: number): LatencyWindow => {
    const l = new Latencies();
    let errors = 0;
    for (let i = 0; i < stamps.length; i++) {
      // A response stamped at t was in flight from t − latency.
      if (stamps[i]! < from || stamps[i]! - latencies[i]! > to) continue;
      l.add(latencies[i]!);
      if (statuses[i] !== opts.spec.expect) errors++;
    }
    return { requests: l.count, errors, rps: Math.round((l.count - errors) / Math.max((to - from) / 1000, 0.001)), ...l.summary() };
  };
  return {
    cleanup,
    loadAvg,
    during: window(startedAt, cleanup.endedAt),
    run: window(stamps[0] ?? 0, stamps[stamps.length - 1] ?? 0),
    cpu: result.cpu,
  };
}
