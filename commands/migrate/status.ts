import { JobQueue, type JobSchemaStatus } from '../../src/jobs/job-queue.js';
import { BaseCommand } from '../_base.js';

export default class MigrateStatus extends BaseCommand<typeof MigrateStatus> {
  static override summary = 'Show applied and pending migrations, and the job queue schema version.';
  static override description = "Which of authctl's migrations are applied and which are pending, read from the database (knex_migrations). Changes nothing.";
  static override examples = ['<%= config.bin %> migrate status --json'];

  async run(): Promise<{ applied: string[]; pending: string[]; jobs: JobSchemaStatus }> {
    const status = await this.container.db.migrateStatus();
    const jobs = await new JobQueue({ config: this.settings, log: this.container.log }).status();
    const jobsLine = jobs.installed
      ? `pg-boss schema ${jobs.schema} at version ${jobs.version ?? '?'}${jobs.expected !== null && jobs.version !== jobs.expected ? ` (expected ${jobs.expected}: run \`authctl migrate\`)` : ''}`
      : `not installed (run \`authctl migrate\`)`;
    this.say(`Applied: ${status.applied.join(', ') || 'none'}\nPending: ${status.pending.join(', ') || 'none'}\nJob queue: ${jobsLine}`);
    return { ...status, jobs };
  }
}
