import type { Knex } from 'knex';
import { createIndexesConcurrently } from './0007-scale-indexes.js';

/**
 * `user_identities_pair_idx`: every identity row by (provider, subject), removed ones included.
 * The unique index of 0010 covers live rows only; a replicated batch asks which provider
 * accounts have any row here, live or removed (a removed identity must not be brought back by a
 * late copy), and without this index that question reads the whole table once per batch.
 * Built CONCURRENTLY, like 0007.
 */
export const config = { transaction: false };

const INDEXES: Record<string, string> = {
  user_identities_pair_idx: 'on user_identities (provider, subject)',
};

export async function up(knex: Knex): Promise<void> {
  await createIndexesConcurrently(knex, INDEXES);
}

export async function down(knex: Knex): Promise<void> {
  await knex.raw('drop index concurrently if exists user_identities_pair_idx');
}
