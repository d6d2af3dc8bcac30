import type { Db } from './db.js';
import { guard } from './errors.js';

/** One hourly counter increment: `count` more `metric` events in the hour starting at `hour`. */
export interface UsageRow {
  /** The start of the hour (UTC). */
  hour: Date;
  metric: string;
  count: number;
}

/** All SQL on `usage_hourly` (migration 0002-usage). */
export class UsageRepo {
  constructor(private readonly db: Db) {}

  /**
   * Adds `rows` to the region's counters in ONE statement: a multi-row insert that, on an existing
   * (region, hour, metric), adds to the stored count. Concurrent adds from several servers never
   * lose an update (each conflicting row is locked and re-read by PostgreSQL). Rows naming the
   * same counter are merged first (one statement cannot update a row twice), and rows are sent in
   * key order so that two concurrent batches lock shared rows in the same order (no deadlock).
   */
  async add(region: string, rows: readonly UsageRow[]): Promise<void> {
    const merged = new Map<string, { region: string; hour: Date; metric: string; count: number }>();
    for (const row of rows) {
      if (!Number.isSafeInteger(row.count) || row.count < 0)
        throw new RangeError(`usage count for ${row.metric} must be a non-negative integer, got ${row.count}`);
      if (row.count === 0) continue;
      const key = `${row.hour.getTime().toString().padStart(16, '0')}\u0000${row.metric}`;
      const existing = merged.get(key);
      if (existing) existing.count += row.count;
      else merged.set(key, { region, hour: row.hour, metric: row.metric, count: row.count });
    }
    if (merged.size === 0) return;
    const values = [...merged.entries()].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)).map(([, v]) => v);
    const knex = this.db.writer;
    await guard(
      knex('usage_hourly')
        .insert(values)
        .onConflict(['region', 'hour', 'metric'])
        .merge({ count: knex.raw('usage_hourly.count + excluded.count') }),
    );
  }

  /**
   * Per-metric totals over the hour buckets starting at or after `since` (so pass an hour-aligned
   * `since`), for one region or, with `undefined`, every region in this database. Metrics with no
   * rows are absent.
   */
  async sum(region: string | undefined, since: Date): Promise<Record<string, number>> {
    const result = await this.db.read((k) =>
      k.raw<{ rows: Array<{ metric: string; total: string }> }>(
        `select metric, sum(count) as total
           from usage_hourly
          where hour >= :since ${region === undefined ? '' : 'and region = :region'}
          group by metric`,
        region === undefined ? { since } : { since, region },
      ),
    );
    const rows = result.rows;
    return Object.fromEntries(rows.map((r) => [r.metric, Number(r.total)]));
  }

  /** Deletes the buckets of hours that started before `before` (every region); returns how many. */
  async deleteBefore(before: Date): Promise<number> {
    return guard(this.db.writer('usage_hourly').where('hour', '<', before).delete());
  }
}
