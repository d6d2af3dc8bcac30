import { Flags } from '@oclif/core';
import type { ConfigInput } from '../src/config/schema.js';
import { requireSecret } from '../src/config/load.js';
import { startWorker, type RunningWorker } from '../src/jobs/worker.js';
import { BaseCommand } from './_base.js';
import { serveUntilSignal } from './_serve.js';

export default class Serve extends BaseCommand<typeof Serve> {
  static override summary = 'Start the HTTP API server.';
  static override description =
    'Starts even while PostgreSQL is down: /readyz answers 503 and database-backed routes 503 `unavailable` until it returns, then the server becomes ready by itself.';
  static override examples = ['<%= config.bin %> serve', 'AUTHCTL_SECRET=… <%= config.bin %> serve --host 0.0.0.0 --port 8080'];
  static override enableJsonFlag = false;
  protected override logStream = 'stdout' as const;
  static override flags = {
    port: Flags.integer({ summary: 'Port to listen on (default: http.port, 8080).', min: 0, max: 65535 }),
    host: Flags.string({ summary: 'Address to bind (default: http.host, 127.0.0.1).' }),
    'with-workers': Flags.boolean({ summary: 'Also run the background jobs in this process (small installs; see `authctl worker`). Needs the database at start.' }),
  };

  protected override configOverrides(): ConfigInput {
    return { http: { port: this.flags.port, host: this.flags.host } };
  }

  async run(): Promise<void> {
    requireSecret(this.settings);
    const { host, port } = this.settings.http;
    let worker: RunningWorker | undefined;
    if (this.flags['with-workers']) {
      // Unlike the server, the workers need the database (and the job queue installed) to start.
      worker = await startWorker(this.container, this.container.jobs, { inProcess: true });
    }
    try {
      await serveUntilSignal(this.container, { host, port }, (server) => this.logToStderr(`authctl serving region ${this.settings.region} on ${server.url}${worker ? ' (with workers)' : ''}`));
    } finally {
      // After the listener closed: requests in flight have finished; then running jobs finish.
      await worker?.stop();
    }
  }
}
