import type { Knex } from 'knex';

/**
 * Two indexes that keep admin reads independent of the number of users:
 * - `users_sort_key_idx`: the order `authctl user list` pages in (username, or the lower-cased
 *   address of a user without one). Without it every page sorts the whole table (0.75 s at a
 *   million users, seconds at ten). The id that breaks ties is left out: keys are unique but for
 *   a username equal to another user's address, so PostgreSQL sorts the few equal ones as it
 *   reads (an incremental sort), and the index is 56 bytes a user instead of 87.
 * - `users_disabled_idx`: disabled users, for the exact count in `authctl stats` (a few rows
 *   where the table has millions).
 * Built CONCURRENTLY (so outside a transaction): registrations and profile changes go on while
 * a large table is indexed. A build that was interrupted leaves an invalid index behind; it is
 * dropped and built again.
 */
export const config = { transaction: false };

const INDEXES: Record<string, string> = {
  users_sort_key_idx: 'on users ((coalesce(username, lower(email))))',
  users_disabled_idx: "on users (id) where status = 'disabled'",
};

export async function up(knex: Knex): Promise<void> {
  await createIndexesConcurrently(knex, INDEXES);
}

export async function down(knex: Knex): Promise<void> {
  for (const name of Object.keys(INDEXES)) await knex.raw(`drop index concurrently if exists ${name}`);
}

/** Builds each index (name → definition) CONCURRENTLY, rebuilding one an interrupted build left invalid. */
export async function createIndexesConcurrently(knex: Knex, indexes: Record<string, string>): Promise<void> {
  for (const [name, definition] of Object.entries(indexes)) {
    const { rows } = await knex.raw<{ rows: Array<{ valid: boolean }> }>(
      `select i.indisvalid as valid from pg_index i join pg_class c on c.oid = i.indexrelid
        where c.relname = ? and c.relnamespace = current_schema()::regnamespace`,
      [name],
    );
    if (rows[0]?.valid) continue;
    if (rows[0]) await knex.raw(`drop index concurrently ${name}`);
    await knex.raw(`create index concurrently ${name} ${definition}`);
  }
}
