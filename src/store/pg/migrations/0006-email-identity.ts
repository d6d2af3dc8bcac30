import type { Knex } from 'knex';

/**
 * E-mail identity (docs/architecture.md#e-mail-identity).
 *
 * - `users.username` becomes optional (`identity.username: "optional"`): a user has a username,
 *   an address, or both (the check below). Unique as before; PostgreSQL lets many rows be null.
 * - `users.email`: the address as normalized by src/core/users/email.ts (trimmed, domain
 *   lower-cased and IDNA-encoded, the local part as typed); unique case-insensitively through
 *   `lower(email)`. `email_verified_at`: when the address was last proven (a code, a link or a
 *   reset). Both replicate with the user.
 * - `email_challenges`: one row per verification, address change or password reset sent. The
 *   row holds no secret: the code and the link are MACs of its id under the server secret, so a
 *   reader of the database (or of a backup) can reset nobody's password. It records what makes a
 *   challenge single-use (`ended_at`, `end_reason`), the wrong tries (`attempts`) and its expiry,
 *   and replicates to every region (the capture trigger of 0003-replication), so a message sent by
 *   one region can be used in any other.
 */
export async function up(knex: Knex): Promise<void> {
  await knex.schema.alterTable('users', (t) => {
    t.text('email').nullable();
    t.timestamp('email_verified_at', { useTz: true }).nullable();
  });
  await knex.raw('alter table users alter column username drop not null');
  await knex.raw('create unique index users_email_key on users (lower(email))');
  await knex.raw(`alter table users add constraint users_identifier_check check (username is not null or email is not null)`);

  await knex.schema.createTable('email_challenges', (t) => {
    t.uuid('id').primary();
    t.uuid('user_id').notNullable().references('id').inTable('users').onDelete('CASCADE');
    // verify: prove the user's current address; change: prove a new one, which then replaces it;
    // reset: a password reset.
    t.text('purpose').notNullable();
    t.text('email').notNullable();
    t.text('home_region').notNullable();
    t.timestamp('created_at', { useTz: true }).notNullable();
    t.timestamp('expires_at', { useTz: true }).notNullable();
    t.integer('attempts').notNullable().defaultTo(0);
    t.timestamp('ended_at', { useTz: true }).nullable();
    // used | replaced (a newer one of the purpose was sent) | exhausted (too many wrong codes) | superseded (the password or address changed)
    t.text('end_reason').nullable();
    t.bigInteger('version').notNullable().defaultTo(1);
    t.check(`purpose in ('verify', 'change', 'reset')`, [], 'email_challenges_purpose_check');
  });
  // "The live challenge of this purpose for this address" (code entry) and "…of this user" (replacing older ones).
  await knex.raw('create index email_challenges_email_idx on email_challenges (lower(email), purpose, created_at desc) where ended_at is null');
  await knex.raw('create index email_challenges_user_idx on email_challenges (user_id, purpose) where ended_at is null');
  await knex.raw('create index email_challenges_expires_idx on email_challenges (expires_at)');
  for (const op of ['insert', 'update']) {
    await knex.raw(
      `create trigger email_challenges_replicate_${op} after ${op} on email_challenges referencing new table as new_rows
         for each statement execute function authctl_replication_capture()`,
    );
  }
}

export async function down(knex: Knex): Promise<void> {
  for (const op of ['insert', 'update']) await knex.raw(`drop trigger if exists email_challenges_replicate_${op} on email_challenges`);
  await knex.schema.dropTableIfExists('email_challenges');
  await knex.raw('alter table users drop constraint if exists users_identifier_check');
  await knex.raw('drop index if exists users_email_key');
  // Users with no username cannot go back to the schema where it is required.
  await knex.raw(`update users set username = 'user-' || id where username is null`);
  await knex.raw('alter table users alter column username set not null');
  await knex.schema.alterTable('users', (t) => {
    t.dropColumn('email_verified_at');
    t.dropColumn('email');
  });
}
