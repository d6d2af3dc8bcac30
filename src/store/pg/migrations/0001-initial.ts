import type { Knex } from 'knex';

/**
 * Users, sessions (one row per refresh-token family, not per token) and signing keys.
 * Every replicated row carries `home_region` and a `version` so that a later replication step
 * can merge rows from other regions by "higher version wins".
 */
export async function up(knex: Knex): Promise<void> {
  await knex.schema.createTable('users', (t) => {
    t.uuid('id').primary();
    // Stored already NFKC-normalized and case-folded; uniqueness is on that form.
    t.text('username').notNullable().unique({ indexName: 'users_username_key' });
    t.text('password_hash').notNullable();
    t.text('status').notNullable().defaultTo('active');
    t.text('home_region').notNullable();
    t.timestamp('created_at', { useTz: true }).notNullable();
    t.timestamp('updated_at', { useTz: true }).notNullable();
    t.timestamp('password_changed_at', { useTz: true }).notNullable();
    t.bigInteger('version').notNullable().defaultTo(1);
    t.check(`status in ('active', 'disabled')`, [], 'users_status_check');
  });

  await knex.schema.createTable('sessions', (t) => {
    t.uuid('id').primary();
    // SET NULL, not CASCADE: deleting a user first revokes the sessions, and the revoked rows
    // must outlive the user long enough for every server's revocation poll to see them.
    t.uuid('user_id').nullable().references('id').inTable('users').onDelete('SET NULL');
    t.text('home_region').notNullable();
    t.bigInteger('counter').notNullable();
    t.timestamp('created_at', { useTz: true }).notNullable();
    t.timestamp('last_used_at', { useTz: true }).notNullable();
    t.timestamp('rotated_at', { useTz: true }).notNullable();
    t.timestamp('expires_at', { useTz: true }).notNullable();
    t.timestamp('revoked_at', { useTz: true }).nullable();
    t.text('revoke_reason').nullable();
    t.text('user_agent').nullable();
    t.text('ip').nullable();
    t.bigInteger('version').notNullable().defaultTo(1);
    t.index(['user_id'], 'sessions_user_id_idx');
    t.index(['expires_at'], 'sessions_expires_at_idx');
  });
  // The revocation feed polls "revoked since T": a partial index keeps that cheap.
  await knex.raw('create index sessions_revoked_at_idx on sessions (revoked_at) where revoked_at is not null');

  await knex.schema.createTable('signing_keys', (t) => {
    t.text('kid').primary();
    t.text('alg').notNullable();
    t.jsonb('public_jwk').notNullable();
    // AES-256-GCM under a key derived from the server secret; null for keys of other regions.
    t.text('private_jwk_encrypted').nullable();
    t.text('home_region').notNullable();
    t.timestamp('created_at', { useTz: true }).notNullable();
    // Published from creation, signs from activates_at, leaves the JWKS at retires_at.
    t.timestamp('activates_at', { useTz: true }).notNullable();
    t.timestamp('retires_at', { useTz: true }).nullable();
    t.bigInteger('version').notNullable().defaultTo(1);
  });
}

export async function down(knex: Knex): Promise<void> {
  await knex.schema.dropTableIfExists('signing_keys');
  await knex.schema.dropTableIfExists('sessions');
  await knex.schema.dropTableIfExists('users');
}
