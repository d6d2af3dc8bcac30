import { Flags } from '@oclif/core';
import type { MigrationStatus } from '../../src/admin/admin.js';
import { BaseCommand } from '../_base.js';

/** `migrate status --check` with something to apply: a pipeline's gate, apart from 69 (database down). */
const PENDING_EXIT_CODE = 1;

export default class MigrateStatus extends BaseCommand<typeof MigrateStatus> {
  static override summary = 'Show applied and pending migrations, and the job queue schema version.';
  static override description = [
    "Which of authctl's migrations are applied and which are pending, read from the database (knex_migrations). Changes nothing.",
    `With --check (for CI): exit 0 when the database is up to date, ${PENDING_EXIT_CODE} when a migration is pending or the job queue`,
    'is not installed or not at the expected version (what `authctl migrate` would do is printed), 69 when PostgreSQL cannot be reached.',
  ].join(' ');
  static override examples = ['<%= config.bin %> migrate status --json', '<%= config.bin %> migrate status --check   # in a pipeline, before a rollout'];
  static override flags = {
    check: Flags.boolean({ summary: `Exit ${PENDING_EXIT_CODE} when anything is pending (CI gate); 0 when up to date.` }),
  };

  async run(): Promise<MigrationStatus & { upToDate: boolean }> {
    const status = await this.container.admin.migrations();
    const { jobs } = status;
    const jobsCurrent = jobs.installed && (jobs.expected === null || jobs.version === jobs.expected);
    const jobsLine = jobs.installed
      ? `pg-boss schema ${jobs.schema} at version ${jobs.version ?? '?'}${jobsCurrent ? '' : ` (expected ${jobs.expected}: run \`authctl migrate\`)`}`
      : `not installed (run \`authctl migrate\`)`;
    const upToDate = status.pending.length === 0 && jobsCurrent;
    this.say(`Applied: ${status.applied.join(', ') || 'none'}\nPending: ${status.pending.join(', ') || 'none'}\nJob queue: ${jobsLine}`);
    if (this.flags.check) {
      this.say(upToDate ? 'Up to date.' : 'Not up to date: run `authctl migrate`.');
      if (!upToDate) process.exitCode = PENDING_EXIT_CODE;
    }
    return { ...status, upToDate };
  }
}
