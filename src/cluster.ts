/**
 * `authctl serve` on several cores: a primary process forks `http.processes` workers that each
 * run the ordinary server on the shared port (node:cluster distributes connections round-robin).
 * Each worker is a full server — its own pools, key ring, revocation list (fed by pub/sub and the
 * DB poll, exactly as separate servers of a region are) — so nothing about correctness changes.
 *
 * The primary holds no database connection. It restarts a worker that dies, forwards SIGTERM and
 * SIGINT for a graceful stop, and aggregates every worker's metrics (prom-client's
 * AggregatorRegistry), which it serves on `http.metricsPort` and hands to any worker asked for
 * `/metrics` on the public port — so a scrape sees the whole server, not one process.
 */
import cluster, { type Worker } from 'node:cluster';
import type { Server } from 'node:http';
import { AggregatorRegistry, type Registry } from 'prom-client';
import { startMetricsServer } from './server.js';

const METRICS_REQUEST = 'authctl:metrics-request';
const METRICS_RESPONSE = 'authctl:metrics-response';
/** Set for the one worker that also runs the background jobs (`serve --with-workers`). */
export const JOBS_ENV = 'AUTHCTL_CLUSTER_JOBS';

interface MetricsMessage {
  type: string;
  id: number;
  text?: string;
  error?: string;
}

export interface PrimaryOptions {
  processes: number;
  host: string;
  metricsPort: number | undefined;
  /** Run the background jobs in the first worker. */
  withJobs: boolean;
  /** Lines for the operator (stderr). */
  say: (line: string) => void;
  /** Called once, when every worker listens, with the URL they share. */
  onListening: (url: string) => void;
}

/** True in a process forked by {@link runPrimary}. */
export function isClusterWorker(): boolean {
  return cluster.isWorker;
}

/**
 * Runs the primary until SIGINT/SIGTERM and every worker has stopped. Resolves with the exit code:
 * 0 after a signal, 1 when a worker fails before it ever listened (a config or port problem that
 * restarting would only repeat).
 */
export async function runPrimary(opts: PrimaryOptions): Promise<number> {
  const aggregator = new AggregatorRegistry();
  const render = () => aggregator.clusterMetrics();
  let stopping = false;
  let announced = false;
  let failure: number | undefined;
  const listened = new WeakSet<Worker>();
  const jobsWorker = new WeakSet<Worker>();
  let alive = 0;

  const fork = (jobs: boolean): void => {
    const worker = cluster.fork(jobs ? { [JOBS_ENV]: '1' } : {});
    alive += 1;
    if (jobs) jobsWorker.add(worker);
  };

  cluster.on('message', (worker, message: MetricsMessage) => {
    if (message?.type !== METRICS_REQUEST) return;
    render().then(
      (text) => worker.send({ type: METRICS_RESPONSE, id: message.id, text }),
      (err: Error) => worker.send({ type: METRICS_RESPONSE, id: message.id, error: err.message }),
    );
  });

  cluster.on('listening', (worker, address) => {
    listened.add(worker);
    if (announced || Object.values(cluster.workers ?? {}).some((w) => w !== undefined && !listened.has(w))) return;
    announced = true;
    const host =
      address.address === '0.0.0.0' || address.address === null ? '127.0.0.1' : address.address.includes(':') ? `[${address.address}]` : address.address;
    opts.onListening(`http://${host}:${address.port}`);
  });

  const done = new Promise<void>((resolve) => {
    cluster.on('exit', (worker, code, signal) => {
      alive -= 1;
      const jobs = jobsWorker.has(worker);
      if (!stopping && !listened.has(worker)) {
        // Never got as far as listening: the next one would fail the same way.
        failure = code ?? 1;
        opts.say(`a server process exited during start-up (${signal ?? `exit code ${code}`}); stopping`);
        stop();
      } else if (!stopping) {
        opts.say(`a server process died (${signal ?? `exit code ${code}`}); starting a new one`);
        fork(jobs);
      }
      if (alive === 0 && stopping) resolve();
    });
  });

  let metricsServer: Server | undefined;
  const stop = () => {
    if (stopping) return;
    stopping = true;
    for (const worker of Object.values(cluster.workers ?? {})) worker?.process.kill('SIGTERM');
  };
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);

  for (let i = 0; i < opts.processes; i++) fork(opts.withJobs && i === 0);
  if (opts.metricsPort !== undefined) metricsServer = await startMetricsServer(render, opts.host, opts.metricsPort);

  await done;
  await new Promise<void>((resolve) => (metricsServer ? metricsServer.close(() => resolve()) : resolve()));
  return failure ?? 0;
}

/**
 * In a worker: answer the primary's aggregation requests from this process's registry, and make
 * `render()` (the public `/metrics`) return the aggregate of all workers, fetched from the primary.
 */
export function joinClusterMetrics(metrics: { registry: Registry; render: () => Promise<string> }): void {
  // The constructor installs prom-client's worker-side listener; the registry is ours, not global.
  new AggregatorRegistry();
  AggregatorRegistry.setRegistries([metrics.registry]);
  const pending = new Map<number, { resolve: (text: string) => void; reject: (err: Error) => void }>();
  let next = 0;
  process.on('message', (message: MetricsMessage) => {
    if (message?.type !== METRICS_RESPONSE) return;
    const waiter = pending.get(message.id);
    pending.delete(message.id);
    if (message.error !== undefined) waiter?.reject(new Error(message.error));
    else waiter?.resolve(message.text ?? '');
  });
  metrics.render = () =>
    new Promise<string>((resolve, reject) => {
      const id = next++;
      pending.set(id, { resolve, reject });
      process.send!({ type: METRICS_REQUEST, id });
    });
}

/** In a worker that has stopped serving: closes the IPC channel, so the process can exit. */
export function leaveCluster(): void {
  if (cluster.isWorker && cluster.worker?.isConnected()) cluster.worker.disconnect();
}
