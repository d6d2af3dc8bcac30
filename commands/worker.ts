import { Flags } from '@oclif/core';
import { startWorker, type RunningWorker } from '../src/jobs/worker.js';
import { assertSecretOpensKeys } from '../src/runtime.js';
import { BaseCommand } from './_base.js';

export default class Worker extends BaseCommand<typeof Worker> {
  static override summary = 'Run the background jobs: cleanup (cron), cache sync.';
  static override description = [
    'Runs pg-boss workers against the region database: `cleanup` on jobs.cleanupCron (expired and',
    'revoked sessions, retired signing keys) and `cache-sync` (with a Redis cache). Any number of',
    'workers may run; each job runs once. Needs only the database (`authctl migrate` installs the',
    'job queue). Logs JSON lines on stdout. SIGTERM or SIGINT stops it gracefully: running jobs',
    'finish (up to --stop-timeout), then it exits 0; a second signal exits 1 at once. With a server secret set,',
    "it exits 78 when that secret cannot unseal the region's signing key (mail codes and links derived from it would not verify).",
  ].join(' ');
  static override examples = ['<%= config.bin %> worker', 'AUTHCTL_DATABASE_URL=postgres://… <%= config.bin %> worker --stop-timeout 60'];
  static override enableJsonFlag = false;
  static override flags = {
    'stop-timeout': Flags.integer({ summary: 'Seconds to wait for running jobs on shutdown.', default: 30, min: 1, max: 3600 }),
  };

  protected override logStream = 'stdout' as const;

  async run(): Promise<void> {
    const { container } = this;
    // Listen for the signals first: a supervisor that reads "worker started" may stop us at once,
    // and a signal with no listener yet would kill the process without a graceful stop.
    const stopped = new Promise<NodeJS.Signals>((resolve) => {
      process.once('SIGINT', resolve);
      process.once('SIGTERM', resolve);
    });
    const worker: RunningWorker = await startWorker(container, container.jobs, { stopTimeoutMs: this.flags['stop-timeout'] * 1000 });
    // A worker signs nothing, but mails codes and links MACed with the server secret: one that is
    // not the region's (it cannot open the region's key) would send codes the servers refuse.
    if (container.config.secret) {
      try {
        await container.keys.load();
        assertSecretOpensKeys(container);
      } catch (err) {
        await worker.stop();
        throw err;
      }
    }
    this.logToStderr(`authctl worker running for region ${container.config.region} (${worker.queues.join(', ')})`);
    const signal = await stopped;
    container.log.info('shutting down', { event: 'worker.signal', signal });
    // Running jobs are then abandoned: pg-boss retries them once they expire.
    const force = () => {
      container.log.warn('second signal: exiting without waiting for running jobs', { event: 'worker.forced' });
      process.exit(1);
    };
    process.once('SIGINT', force);
    process.once('SIGTERM', force);
    try {
      await worker.stop();
    } finally {
      process.off('SIGINT', force);
      process.off('SIGTERM', force);
    }
  }
}
