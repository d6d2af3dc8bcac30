import type { Knex } from 'knex';

/**
 * Brute-force counters in PostgreSQL (src/security/limiter-store.ts): the insurance of the
 * Redis counters, so login throttling keeps holding while Redis is down. The layout is the one
 * rate-limiter-flexible's RateLimiterPostgres reads and writes (`expire` in epoch milliseconds);
 * it deletes expired rows itself. Not replicated: each region throttles its own traffic.
 */
export async function up(knex: Knex): Promise<void> {
  await knex.schema.createTable('rate_limits', (t) => {
    t.string('key', 255).primary();
    t.integer('points').notNullable().defaultTo(0);
    t.bigInteger('expire');
  });
}

export async function down(knex: Knex): Promise<void> {
  await knex.schema.dropTableIfExists('rate_limits');
}
