import type { Knex } from 'knex';

/**
 * A user's session cut-off: a password change or logout-all revokes every session created before
 * `sessions_revoked_before` (but `sessions_revoked_keep`, the session that made the change). The
 * revocations of the sessions a region knows replicate as usual; the cut-off replicates with the
 * user, so a session another region opened before the change but had not yet shipped (a
 * partition, or just the replication lag) is revoked wherever it turns up.
 */
export async function up(knex: Knex): Promise<void> {
  await knex.schema.alterTable('users', (t) => {
    t.timestamp('sessions_revoked_before', { useTz: true }).nullable();
    t.uuid('sessions_revoked_keep').nullable();
  });
}

export async function down(knex: Knex): Promise<void> {
  await knex.schema.alterTable('users', (t) => {
    t.dropColumn('sessions_revoked_before');
    t.dropColumn('sessions_revoked_keep');
  });
}
