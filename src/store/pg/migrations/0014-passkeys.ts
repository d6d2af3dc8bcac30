import type { Knex } from 'knex';

/**
 * Passkeys (README "Passkeys"; docs/api.md#passkeys): WebAuthn credentials of a user.
 *
 * - `passkeys`: one row per credential — its id as the authenticator gave it (base64url, unique
 *   among live passkeys), the COSE public key, the signature counter, transports, the AAGUID,
 *   backup eligibility and state, and the name the user gave it. A removed passkey keeps its row
 *   (`removed_at`) so that a late change from another region cannot bring it back; the cleanup
 *   job deletes it 30 days later. Replicated (the capture trigger of 0003-replication): a
 *   traveller signs in with the same passkey in every region; the counter merges to the highest
 *   either region saw.
 * - `sessions.passkey_id`: the passkey that signed a session in (its first step, or a password
 *   login's second; null otherwise). Removing the passkey revokes those sessions
 *   (`passkey_removed`). No foreign key: a session may replicate before its passkey does. Set at
 *   the login and kept by refreshes, like `idp`; it travels with the row (to_jsonb), and a peer
 *   before this migration sends none (read as null).
 *
 * The ceremonies' challenges are sealed (stored nowhere until spent) and single-use through
 * `mfa_token_uses`, as mfaTokens and the provider flow's states are.
 */
export async function up(knex: Knex): Promise<void> {
  await knex.schema.createTable('passkeys', (t) => {
    t.uuid('id').primary();
    t.uuid('user_id').notNullable().references('id').inTable('users').onDelete('CASCADE');
    t.text('credential_id').notNullable();
    // base64url, as the credential id: the row goes over the wire as JSON (to_jsonb).
    t.text('public_key').notNullable();
    t.bigInteger('counter').notNullable().defaultTo(0);
    t.specificType('transports', 'text[]').notNullable().defaultTo('{}');
    t.uuid('aaguid').notNullable();
    // WebAuthn's BE and BS flags: a multi-device (synced) credential, and whether it is backed up now.
    t.boolean('backup_eligible').notNullable();
    t.boolean('backed_up').notNullable();
    t.text('name').notNullable();
    t.text('home_region').notNullable();
    t.timestamp('created_at', { useTz: true }).notNullable();
    t.timestamp('updated_at', { useTz: true }).notNullable();
    t.timestamp('last_used_at', { useTz: true }).nullable();
    t.timestamp('removed_at', { useTz: true }).nullable();
    t.bigInteger('version').notNullable().defaultTo(1);
  });
  // "Whose credential is this": asked at every passkey sign-in.
  await knex.raw('create unique index passkeys_credential_idx on passkeys (credential_id) where removed_at is null');
  await knex.raw('create index passkeys_user_idx on passkeys (user_id) where removed_at is null');
  await knex.schema.alterTable('sessions', (t) => {
    t.uuid('passkey_id').nullable();
  });
  for (const op of ['insert', 'update']) {
    await knex.raw(
      `create trigger passkeys_replicate_${op} after ${op} on passkeys referencing new table as new_rows
         for each statement execute function authctl_replication_capture()`,
    );
  }
}

export async function down(knex: Knex): Promise<void> {
  for (const op of ['insert', 'update']) await knex.raw(`drop trigger if exists passkeys_replicate_${op} on passkeys`);
  await knex.schema.dropTableIfExists('passkeys');
  await knex.schema.alterTable('sessions', (t) => {
    t.dropColumn('passkey_id');
  });
}
