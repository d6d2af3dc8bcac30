import type { Db } from './db.js';
import { guard } from './errors.js';

/**
 * One batch of the cleanup job: deletes at most `limit` rows of `table` whose `column` is before
 * `before`, by id, in one short statement; returns how many. The job calls it until a batch
 * comes back short. Deletes do not replicate: each region deletes its own copies.
 */
export function deleteBatchBefore(db: Db, table: string, column: string, before: Date, limit: number): Promise<number> {
  const w = db.writer;
  return guard(
    w(table)
      .whereIn('id', w(table).select('id').where(column, '<', before).limit(limit))
      .delete(),
  );
}
