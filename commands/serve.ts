import { Flags } from '@oclif/core';
import type { ConfigInput } from '../src/config/schema.js';
import { requireSecret } from '../src/config/load.js';
import { isClusterWorker, joinClusterMetrics, JOBS_ENV, leaveCluster, runPrimary } from '../src/cluster.js';
import { startWorker, type RunningWorker } from '../src/jobs/worker.js';
import { BaseCommand } from './_base.js';
import { serveUntilSignal } from './_serve.js';

export default class Serve extends BaseCommand<typeof Serve> {
  static override summary = 'Start the HTTP API server.';
  static override description =
    'Starts even while PostgreSQL is down: /readyz answers 503 and database-backed routes 503 `unavailable` until it returns, then the server becomes ready by itself. ' +
    "Exits 78 before it listens when AUTHCTL_SECRET (with AUTHCTL_PREVIOUS_SECRET) cannot unseal the region's signing key.";
  static override examples = [
    '<%= config.bin %> serve',
    'AUTHCTL_SECRET=… <%= config.bin %> serve --host 0.0.0.0 --port 8080',
    '<%= config.bin %> serve --processes 4   # one server process per core, one port',
  ];
  static override enableJsonFlag = false;
  protected override logStream = 'stdout' as const;
  static override flags = {
    port: Flags.integer({ summary: 'Port to listen on (default: http.port, 8080).', min: 0, max: 65535 }),
    host: Flags.string({ summary: 'Address to bind (default: http.host, 127.0.0.1).' }),
    processes: Flags.integer({ summary: 'Server processes sharing the port, e.g. one per core (default: http.processes, 1).', min: 1, max: 64 }),
    'with-workers': Flags.boolean({
      summary: 'Also run the background jobs in this process (small installs; see `authctl worker`). Needs the database at start.',
    }),
  };

  protected override configOverrides(): ConfigInput {
    return { http: { port: this.flags.port, host: this.flags.host, processes: this.flags.processes } };
  }

  async run(): Promise<void> {
    requireSecret(this.settings);
    const { host, port, processes, metricsPort } = this.settings.http;
    if (processes > 1 && !isClusterWorker()) {
      const withJobs = this.flags['with-workers'];
      const code = await runPrimary({
        processes,
        host,
        port,
        metricsPort,
        withJobs,
        say: (line) => this.logToStderr(`authctl: ${line}`),
        onListening: (url) =>
          this.logToStderr(`authctl serving region ${this.settings.region} on ${url} (${processes} processes${withJobs ? ', with workers' : ''})`),
      });
      if (code !== 0) this.exit(code);
      return;
    }
    if (isClusterWorker()) joinClusterMetrics(this.container.metrics);
    let worker: RunningWorker | undefined;
    // In a cluster, only the worker the primary chose runs the jobs.
    if (this.flags['with-workers'] && (!isClusterWorker() || process.env[JOBS_ENV] === '1')) {
      // Unlike the server, the workers need the database (and the job queue installed) to start.
      worker = await startWorker(this.container, this.container.jobs, { inProcess: true });
    }
    try {
      await serveUntilSignal(this.container, { host, port, metricsServer: !isClusterWorker() }, (server) => {
        if (!isClusterWorker()) this.logToStderr(`authctl serving region ${this.settings.region} on ${server.url}${worker ? ' (with workers)' : ''}`);
      });
    } finally {
      // After the listener closed: requests in flight have finished; then running jobs finish.
      await worker?.stop();
      // A cluster worker's IPC channel to the primary would keep it alive: let go of it.
      leaveCluster();
    }
  }
}
