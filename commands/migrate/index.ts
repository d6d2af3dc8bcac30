import type { InstallResult } from '../../src/jobs/job-queue.js';
import { BaseCommand } from '../_base.js';
import { migrate } from '../../src/runtime.js';

export default class Migrate extends BaseCommand<typeof Migrate> {
  static override summary = 'Apply pending database migrations and install the job queue.';
  static override description =
    "Applies authctl's migrations, then creates or upgrades pg-boss's schema (jobs.schema, default `pgboss`) and the job queues. Servers and workers never run DDL themselves.";
  static override examples = ['<%= config.bin %> migrate', 'AUTHCTL_DATABASE_URL=postgres://… <%= config.bin %> migrate --json'];

  async run(): Promise<{ batch: number; applied: string[]; jobs: InstallResult }> {
    const { jobs, ...result } = await migrate(this.container);
    this.say(result.applied.length ? `Applied ${result.applied.join(', ')} (batch ${result.batch}).` : 'Already up to date.');
    this.say(`Job queue: pg-boss schema ${jobs.schema}, version ${jobs.version ?? '?'}; queues ${jobs.queues.join(', ')}.`);
    if (jobs.asyncPending > 0) this.say(`${jobs.asyncPending} pg-boss upgrade step(s) still pending: run \`authctl migrate\` again to finish them.`);
    return { ...result, jobs };
  }
}
