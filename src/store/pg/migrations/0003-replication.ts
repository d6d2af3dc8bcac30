import type { Knex } from 'knex';

/**
 * Replication between regions (docs/architecture.md#replication-between-regions): a transactional outbox filled by triggers.
 *
 * - `replication_peers`: the peers of the region's config (synced at start) and, per peer, the
 *   shipper's state: back-off, last success, last error and recent lag samples.
 * - `replication_outbox`: one row per (peer, changed row). Statement-level triggers with
 *   transition tables write them in the transaction of the change itself, so a change and its
 *   outbox rows commit or vanish together, and the hot refresh UPDATE gains no round trip (a
 *   batch of N rotations adds one INSERT … SELECT inside the same statement execution).
 *   With no peers configured the triggers insert nothing.
 * - `replication_applied`: batches applied from each origin, so a re-delivered batch is skipped.
 * - `replication_tombstones`: users deleted here or by a peer, never resurrected by a late change.
 *
 * Rows applied from a peer are written with `authctl.applying = on` (transaction-local) and are
 * not captured again: each region ships only its own changes, to every peer directly.
 */
export async function up(knex: Knex): Promise<void> {
  await knex.schema.createTable('replication_peers', (t) => {
    t.text('name').primary();
    t.text('url').notNullable();
    t.integer('attempts').notNullable().defaultTo(0);
    t.timestamp('next_attempt_at', { useTz: true }).nullable();
    t.timestamp('last_success_at', { useTz: true }).nullable();
    t.text('last_error').nullable();
    t.timestamp('last_error_at', { useTz: true }).nullable();
    // Change commit → applied on the peer, in milliseconds, newest first (bounded).
    t.specificType('recent_lag_ms', 'integer[]').notNullable().defaultTo('{}');
  });

  await knex.schema.createTable('replication_outbox', (t) => {
    t.bigIncrements('id').primary();
    t.text('peer').notNullable().references('name').inTable('replication_peers').onDelete('CASCADE');
    t.text('entity').notNullable();
    t.jsonb('payload').notNullable();
    t.timestamp('created_at', { useTz: true }).notNullable().defaultTo(knex.raw('clock_timestamp()'));
    t.integer('attempts').notNullable().defaultTo(0);
    t.timestamp('leased_until', { useTz: true }).nullable();
    t.timestamp('dead_at', { useTz: true }).nullable();
    t.text('last_error').nullable();
  });
  await knex.raw('create index replication_outbox_pending_idx on replication_outbox (peer, id) where dead_at is null');
  // "Is a batch for this peer in flight?" — answered from the few leased rows only.
  await knex.raw('create index replication_outbox_leased_idx on replication_outbox (peer, leased_until) where leased_until is not null');

  await knex.schema.createTable('replication_applied', (t) => {
    t.text('origin').notNullable();
    t.text('batch_id').notNullable();
    t.timestamp('applied_at', { useTz: true }).notNullable();
    t.primary(['origin', 'batch_id'], { constraintName: 'replication_applied_pkey' });
  });

  // Deleted users, so that a change to one arriving later from another region (made there before
  // it learned of the delete) cannot bring the user back. Pruned after 30 days.
  await knex.schema.createTable('replication_tombstones', (t) => {
    t.uuid('id').primary();
    t.timestamp('deleted_at', { useTz: true }).notNullable();
  });

  // Users replicate whole (a traveller logs in anywhere, so the password hash goes too); signing
  // keys without their private half, which never leaves its region.
  await knex.raw(`
    create function authctl_replication_capture() returns trigger language plpgsql as $$
    begin
      if TG_OP = 'DELETE' then
        insert into replication_tombstones (id, deleted_at) select o.id, clock_timestamp() from old_rows o on conflict (id) do nothing;
      end if;
      if current_setting('authctl.applying', true) = 'on' then return null; end if;
      if TG_OP = 'DELETE' then
        insert into replication_outbox (peer, entity, payload)
          select p.name, TG_TABLE_NAME || '_deleted', jsonb_build_object('id', o.id) from old_rows o cross join replication_peers p;
      else
        insert into replication_outbox (peer, entity, payload)
          select p.name, TG_TABLE_NAME, to_jsonb(n) - 'private_jwk_encrypted' from new_rows n cross join replication_peers p;
      end if;
      return null;
    end $$`);
  for (const table of ['users', 'sessions', 'signing_keys']) {
    for (const op of ['insert', 'update']) {
      await knex.raw(
        `create trigger ${table}_replicate_${op} after ${op} on ${table} referencing new table as new_rows for each statement execute function authctl_replication_capture()`,
      );
    }
  }
  // Deleting a user must reach every region (else the user could still log in there). Sessions
  // and keys are deleted by each region's own cleanup, so their deletes are not shipped.
  await knex.raw(
    `create trigger users_replicate_delete after delete on users referencing old table as old_rows for each statement execute function authctl_replication_capture()`,
  );
}

export async function down(knex: Knex): Promise<void> {
  for (const table of ['users', 'sessions', 'signing_keys']) {
    for (const op of ['insert', 'update']) await knex.raw(`drop trigger if exists ${table}_replicate_${op} on ${table}`);
  }
  await knex.raw('drop trigger if exists users_replicate_delete on users');
  await knex.raw('drop function if exists authctl_replication_capture()');
  await knex.schema.dropTableIfExists('replication_tombstones');
  await knex.schema.dropTableIfExists('replication_applied');
  await knex.schema.dropTableIfExists('replication_outbox');
  await knex.schema.dropTableIfExists('replication_peers');
}
