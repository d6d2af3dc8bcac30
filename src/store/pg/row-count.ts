import type { Knex } from 'knex';
import { guard } from './errors.js';

/** A number of rows: counted, or PostgreSQL's planner estimate. */
export interface RowCount {
  count: number;
  /** True when `count` is the planner's estimate, not a count. */
  estimated: boolean;
}

/**
 * Counts of fewer rows than this (as the planner estimates them) are made exactly; larger ones
 * are the estimate. Counting 100,000 rows costs ~20 ms; counting 10 million reads the whole
 * table or index (seconds, and buffer cache pushed out), for a figure already stale by the time
 * it is shown.
 */
export const EXACT_COUNT_BELOW = 100_000;

/**
 * The number of rows of `from` (`table [where …]`, knex bindings): exact while the planner
 * estimates fewer than `exactBelow` of them, else that estimate. The planner scales the row
 * density of the last ANALYZE (autovacuum's, or a manual one) to the table's current size, so
 * the estimate follows growth between analyzes; for a filter it applies the column statistics.
 * Asking costs one EXPLAIN (a plan, no execution), whatever the table's size. A count under the
 * threshold must have an index to run on (or a small table): `from` is chosen accordingly by the
 * callers.
 */
export async function countRows(ex: Knex, from: string, bindings: Record<string, Knex.Value> = {}, exactBelow: number = EXACT_COUNT_BELOW): Promise<RowCount> {
  type Plan = { rows: Array<{ 'QUERY PLAN': Array<{ Plan: { 'Plan Rows': number } }> }> };
  const plan = await guard(ex.raw<Plan>(`explain (format json) select 1 from ${from}`, bindings));
  const estimate = Math.round(plan.rows[0]?.['QUERY PLAN'][0]?.Plan['Plan Rows'] ?? 0);
  if (estimate >= exactBelow) return { count: estimate, estimated: true };
  const counted = await guard(ex.raw<{ rows: Array<{ count: string }> }>(`select count(*) as count from ${from}`, bindings));
  return { count: Number(counted.rows[0]?.count ?? 0), estimated: false };
}
