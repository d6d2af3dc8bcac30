import type { Knex } from 'knex';

/**
 * Sign-in through OpenID Connect providers (README "Sign in with Google and other providers").
 *
 * - `user_identities`: the provider accounts of a user, one row per (provider, subject). A live
 *   pair belongs to one user (the partial unique index); a removed identity keeps its row
 *   (`removed_at`) so that a late change from another region cannot bring it back, and the pair
 *   may then be linked again (a new row). Replicated (the capture trigger of 0003-replication).
 * - `sessions.idp`: the provider a session was signed in through (null for a password, a code or
 *   a session from before this migration); access tokens carry it as `idp`, refreshes keep it.
 *
 * The OIDC flow's sealed state and one-time codes are single-use through `mfa_token_uses`, as
 * the mfaTokens are (their ids are UUIDv7s and never collide): a use in one region is refused in
 * the others once the change arrives.
 */
export async function up(knex: Knex): Promise<void> {
  await knex.schema.createTable('user_identities', (t) => {
    t.uuid('id').primary();
    t.uuid('user_id').notNullable().references('id').inTable('users').onDelete('CASCADE');
    t.text('provider').notNullable();
    t.text('subject').notNullable();
    t.text('email').nullable();
    t.boolean('email_verified').notNullable().defaultTo(false);
    t.text('home_region').notNullable();
    t.timestamp('created_at', { useTz: true }).notNullable();
    t.timestamp('last_used_at', { useTz: true }).notNullable();
    t.timestamp('removed_at', { useTz: true }).nullable();
    t.bigInteger('version').notNullable().defaultTo(1);
  });
  // "Who is this provider account": asked at every provider sign-in.
  await knex.raw('create unique index user_identities_subject_idx on user_identities (provider, subject) where removed_at is null');
  await knex.raw('create index user_identities_user_idx on user_identities (user_id) where removed_at is null');

  await knex.schema.alterTable('sessions', (t) => {
    t.text('idp').nullable();
  });

  for (const op of ['insert', 'update']) {
    await knex.raw(
      `create trigger user_identities_replicate_${op} after ${op} on user_identities referencing new table as new_rows
         for each statement execute function authctl_replication_capture()`,
    );
  }
}

export async function down(knex: Knex): Promise<void> {
  for (const op of ['insert', 'update']) await knex.raw(`drop trigger if exists user_identities_replicate_${op} on user_identities`);
  await knex.schema.dropTableIfExists('user_identities');
  await knex.schema.alterTable('sessions', (t) => {
    t.dropColumn('idp');
  });
}
