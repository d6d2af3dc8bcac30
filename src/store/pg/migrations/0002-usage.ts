import type { Knex } from 'knex';

/**
 * Hourly usage counters (logins, refreshes, …) per region, so `authctl stats` can report traffic
 * from the database alone, without a running server or Redis. Servers add to them in batches
 * (UsageRecorder: one multi-row upsert every few seconds); the cleanup job deletes rows after
 * 30 days. Not replicated: each region counts its own traffic.
 */
export async function up(knex: Knex): Promise<void> {
  await knex.schema.createTable('usage_hourly', (t) => {
    t.text('region').notNullable();
    // The start of the hour (UTC) the counts belong to.
    t.timestamp('hour', { useTz: true }).notNullable();
    t.text('metric').notNullable();
    t.bigInteger('count').notNullable();
    t.primary(['region', 'hour', 'metric'], { constraintName: 'usage_hourly_pkey' });
  });
  // `stats` sums "since T" over every region and cleanup deletes "before T": both by hour.
  await knex.raw('create index usage_hourly_hour_idx on usage_hourly (hour)');
}

export async function down(knex: Knex): Promise<void> {
  await knex.schema.dropTableIfExists('usage_hourly');
}
