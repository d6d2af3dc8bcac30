import type { Knex } from 'knex';
import { FOREIGN_HASH_SQL, HASH_CLASS_SQL } from '../hash-classes.js';
import { createIndexesConcurrently } from './0007-scale-indexes.js';

/**
 * `users_foreign_hash_idx`: the users whose password hash is not authctl's argon2id (imported
 * with a bcrypt, scrypt or PBKDF2 hash and not logged in since), keyed by the hash's format and
 * cost (`$2b$10$`, `$pbkdf2-sha256$i=27500$`). `authctl stats` counts them by format and each
 * server finds one sample per format and cost for its failure floor (README "Password hash
 * formats") on it, without reading the table. The index shrinks as the hashes are replaced at
 * login, to nothing once every imported user has logged in. Built CONCURRENTLY, like 0007.
 */
export const config = { transaction: false };

const INDEXES: Record<string, string> = {
  users_foreign_hash_idx: `on users ((${HASH_CLASS_SQL})) where ${FOREIGN_HASH_SQL}`,
};

export async function up(knex: Knex): Promise<void> {
  await createIndexesConcurrently(knex, INDEXES);
}

export async function down(knex: Knex): Promise<void> {
  await knex.raw('drop index concurrently if exists users_foreign_hash_idx');
}
