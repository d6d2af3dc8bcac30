import type { Knex } from 'knex';

/**
 * One-time codes and second factors (README "One-time codes and second factors").
 *
 * - `email_challenges` gains the purpose `login` (an e-mailed sign-in code). Its `user_id` may be
 *   null: with `identity.otpSignup` a code may go to an address that has no account yet, and the
 *   account is created when the code is used.
 * - `users.password_hash` may be null: an account created by an e-mailed code has no password
 *   until its owner sets one (a password login to it fails like a wrong password, in the same time).
 * - `sessions.auth_time` and `sessions.amr`: when the user last proved who they are in this
 *   session, and how (RFC 8176 values: `pwd`, `otp`, `mfa`); access tokens carry them as
 *   `auth_time`, `amr` and `acr` (`aal2` when `amr` has `mfa`), refreshes keep them, and
 *   `POST /v1/auth/reauthenticate` renews them. Null on sessions from before this migration:
 *   read as the session's `created_at` and `["pwd"]`.
 * - `mfa_factors`: a user's TOTP authenticators. `secret_sealed` is the RFC 6238 secret sealed
 *   under the server secret (AES-256-GCM, as the signing keys' private halves), never stored in
 *   the clear. `pending` until confirmed with a first code; `last_used_step` is the newest time
 *   step accepted (a code is accepted once: a step at or below it is refused). A removed factor
 *   keeps its row (`removed_at`) so that a late change from another region cannot bring it back.
 * - `mfa_recovery_codes`: one row per recovery code, `code_hash` an argon2id hash (look-up secrets
 *   under 112 bits are stored with a password hash, NIST SP 800-63B §5.1.2.2). Used or replaced
 *   codes end (`ended_at`, `end_reason`) and never come back.
 * - `mfa_token_uses`: the `mfaToken`s of two-step logins that have been used (they are
 *   single-use; the token itself is sealed and carries no row until it is used). Kept until the
 *   token's expiry.
 *
 * All four tables replicate (the capture trigger of 0003-replication): a factor enrolled in one
 * region is asked for in every region, and a code or token used in one is refused in the others
 * once the change arrives (docs/consistency.md says what the lag allows).
 */
export async function up(knex: Knex): Promise<void> {
  await knex.raw('alter table email_challenges drop constraint email_challenges_purpose_check');
  await knex.raw(`alter table email_challenges add constraint email_challenges_purpose_check check (purpose in ('verify', 'change', 'reset', 'login'))`);
  await knex.raw('alter table email_challenges alter column user_id drop not null');
  await knex.raw('alter table users alter column password_hash drop not null');

  await knex.schema.alterTable('sessions', (t) => {
    t.timestamp('auth_time', { useTz: true }).nullable();
    t.specificType('amr', 'text[]').nullable();
  });

  await knex.schema.createTable('mfa_factors', (t) => {
    t.uuid('id').primary();
    t.uuid('user_id').notNullable().references('id').inTable('users').onDelete('CASCADE');
    t.text('type').notNullable();
    t.text('secret_sealed').notNullable();
    t.text('status').notNullable();
    t.text('home_region').notNullable();
    t.timestamp('created_at', { useTz: true }).notNullable();
    t.timestamp('confirmed_at', { useTz: true }).nullable();
    t.bigInteger('last_used_step').nullable();
    t.timestamp('removed_at', { useTz: true }).nullable();
    t.bigInteger('version').notNullable().defaultTo(1);
    t.check(`type in ('totp')`, [], 'mfa_factors_type_check');
    t.check(`status in ('pending', 'active')`, [], 'mfa_factors_status_check');
  });
  // "The live factors of this user": asked at every login.
  await knex.raw('create index mfa_factors_user_idx on mfa_factors (user_id) where removed_at is null');

  await knex.schema.createTable('mfa_recovery_codes', (t) => {
    t.uuid('id').primary();
    t.uuid('user_id').notNullable().references('id').inTable('users').onDelete('CASCADE');
    t.text('code_hash').notNullable();
    t.text('home_region').notNullable();
    t.timestamp('created_at', { useTz: true }).notNullable();
    t.timestamp('ended_at', { useTz: true }).nullable();
    // used | replaced (regenerated) | reset (an administrator removed the user's factors)
    t.text('end_reason').nullable();
    t.bigInteger('version').notNullable().defaultTo(1);
    t.check(`end_reason in ('used', 'replaced', 'reset')`, [], 'mfa_recovery_codes_end_reason_check');
  });
  await knex.raw('create index mfa_recovery_codes_user_idx on mfa_recovery_codes (user_id) where ended_at is null');

  await knex.schema.createTable('mfa_token_uses', (t) => {
    t.uuid('id').primary();
    t.uuid('user_id').nullable().references('id').inTable('users').onDelete('CASCADE');
    t.text('home_region').notNullable();
    t.timestamp('used_at', { useTz: true }).notNullable();
    t.timestamp('expires_at', { useTz: true }).notNullable();
  });
  await knex.raw('create index mfa_token_uses_expires_idx on mfa_token_uses (expires_at)');

  for (const table of ['mfa_factors', 'mfa_recovery_codes', 'mfa_token_uses']) {
    for (const op of ['insert', 'update']) {
      await knex.raw(
        `create trigger ${table}_replicate_${op} after ${op} on ${table} referencing new table as new_rows
           for each statement execute function authctl_replication_capture()`,
      );
    }
  }
}

export async function down(knex: Knex): Promise<void> {
  for (const table of ['mfa_factors', 'mfa_recovery_codes', 'mfa_token_uses']) {
    for (const op of ['insert', 'update']) await knex.raw(`drop trigger if exists ${table}_replicate_${op} on ${table}`);
  }
  await knex.schema.dropTableIfExists('mfa_token_uses');
  await knex.schema.dropTableIfExists('mfa_recovery_codes');
  await knex.schema.dropTableIfExists('mfa_factors');
  await knex.schema.alterTable('sessions', (t) => {
    t.dropColumn('amr');
    t.dropColumn('auth_time');
  });
  // Accounts without a password (created by an e-mailed code) cannot go back to the schema where
  // one is required: they get a hash no password matches.
  await knex.raw(`update users set password_hash = '!' where password_hash is null`);
  await knex.raw('alter table users alter column password_hash set not null');
  await knex.raw('delete from email_challenges where user_id is null or purpose = ?', ['login']);
  await knex.raw('alter table email_challenges alter column user_id set not null');
  await knex.raw('alter table email_challenges drop constraint email_challenges_purpose_check');
  await knex.raw(`alter table email_challenges add constraint email_challenges_purpose_check check (purpose in ('verify', 'change', 'reset'))`);
}
