import type { Knex } from 'knex';

/**
 * Service clients (README "Service clients, introspection and revocation"): the credentials a
 * back-end service presents to `/oauth/introspect` and `/oauth/revoke`.
 *
 * - `service_clients`: one row per client. `secret_hash` is SHA-256 of the secret (never the
 *   secret; why not argon2 or an HMAC: src/core/clients/client-secret.ts). Every write bumps
 *   `version`, the merge rule's first key (src/core/replication/merge.ts, `clientWins`).
 * - Clients replicate whole (the hash included, so a service can call any region): inserts and
 *   updates through the capture trigger of 0003-replication, deletes through their own trigger,
 *   which ships `service_clients_deleted` and leaves a tombstone in `service_client_tombstones`
 *   (ids are text here, where `replication_tombstones` holds user uuids), so a late rotation from
 *   another region cannot bring a deleted client back. Tombstones are pruned with the users'
 *   (30 days).
 */
export async function up(knex: Knex): Promise<void> {
  await knex.schema.createTable('service_clients', (t) => {
    t.text('id').primary();
    t.text('name').notNullable();
    t.specificType('scopes', 'text[]').notNullable();
    t.text('secret_hash').notNullable();
    t.text('home_region').notNullable();
    t.timestamp('created_at', { useTz: true }).notNullable();
    t.timestamp('updated_at', { useTz: true }).notNullable();
    t.timestamp('secret_rotated_at', { useTz: true }).notNullable();
    t.bigInteger('version').notNullable().defaultTo(1);
    // At least one scope is the service's rule (a create); a client replicated from a later
    // version keeps only the scopes this one knows, which may be none (it can then do nothing).
    t.check(`scopes <@ array['introspect', 'revoke']::text[]`, [], 'service_clients_scopes_check');
  });

  await knex.schema.createTable('service_client_tombstones', (t) => {
    t.text('id').primary();
    t.timestamp('deleted_at', { useTz: true }).notNullable();
  });

  await knex.raw(`
    create function authctl_replication_capture_client_delete() returns trigger language plpgsql as $$
    begin
      insert into service_client_tombstones (id, deleted_at) select o.id, clock_timestamp() from old_rows o on conflict (id) do nothing;
      if current_setting('authctl.applying', true) = 'on' then return null; end if;
      insert into replication_outbox (peer, entity, payload)
        select p.name, 'service_clients_deleted', jsonb_build_object('id', o.id) from old_rows o cross join replication_peers p;
      return null;
    end $$`);
  for (const op of ['insert', 'update']) {
    await knex.raw(
      `create trigger service_clients_replicate_${op} after ${op} on service_clients referencing new table as new_rows
         for each statement execute function authctl_replication_capture()`,
    );
  }
  await knex.raw(
    `create trigger service_clients_replicate_delete after delete on service_clients referencing old table as old_rows
       for each statement execute function authctl_replication_capture_client_delete()`,
  );
}

export async function down(knex: Knex): Promise<void> {
  for (const op of ['insert', 'update', 'delete']) await knex.raw(`drop trigger if exists service_clients_replicate_${op} on service_clients`);
  await knex.raw('drop function if exists authctl_replication_capture_client_delete()');
  await knex.schema.dropTableIfExists('service_client_tombstones');
  await knex.schema.dropTableIfExists('service_clients');
}
