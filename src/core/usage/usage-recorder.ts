import type { Clock } from '../../platform/clock.js';
import type { UsageRepo, UsageRow } from '../../store/pg/usage-repo.js';
import type { Logger } from '../../platform/logger.js';

/** What the region counts per hour in PostgreSQL (`usage_hourly`), for `authctl stats`. */
export type UsageMetric = 'logins' | 'login_failures' | 'registrations' | 'refreshes' | 'reuse_detections' | 'revocations';

export const USAGE_METRICS: readonly UsageMetric[] = ['logins', 'login_failures', 'registrations', 'refreshes', 'reuse_detections', 'revocations'];

const HOUR_MS = 3_600_000;

/** The start (UTC) of the hour `at` falls in. */
export function hourOf(at: Date | number): Date {
  const ms = typeof at === 'number' ? at : at.getTime();
  return new Date(Math.floor(ms / HOUR_MS) * HOUR_MS);
}

export interface UsageRecorderOptions {
  repo: Pick<UsageRepo, 'add'>;
  clock: Clock;
  log: Logger;
  region: string;
  /** How often `start()` flushes (default 10 s). */
  flushIntervalMs?: number;
}

/**
 * Counts usage events in memory and adds them to PostgreSQL in batches.
 *
 * `record()` sits on the request path: it is synchronous and touches nothing but a Map. `flush()`
 * (every `flushIntervalMs` once started, and from `stop()`) swaps the buffer out first, so events
 * recorded meanwhile land in the next batch, and writes the batch in one upsert. When the write
 * fails (database down), the counts go back into the buffer and ride along with the next flush:
 * nothing is lost while the process lives. One warning per outage, one info line when it ends.
 */
export class UsageRecorder {
  /** hour (epoch ms) → metric → count. */
  private buffer = new Map<number, Map<UsageMetric, number>>();
  private readonly flushIntervalMs: number;
  private timer: NodeJS.Timeout | undefined;
  private readonly inFlight = new Set<Promise<void>>();
  private failing = false;

  constructor(private readonly opts: UsageRecorderOptions) {
    this.flushIntervalMs = opts.flushIntervalMs ?? 10_000;
  }

  /** Counts `n` (default 1) events of `metric` in the current hour. Synchronous; never throws. */
  record(metric: UsageMetric, n = 1): void {
    if (!(n > 0) || !Number.isSafeInteger(n)) return;
    const hour = Math.floor(this.opts.clock.now().getTime() / HOUR_MS) * HOUR_MS;
    let bucket = this.buffer.get(hour);
    if (!bucket) {
      bucket = new Map();
      this.buffer.set(hour, bucket);
    }
    bucket.set(metric, (bucket.get(metric) ?? 0) + n);
  }

  /** Counts not yet written to PostgreSQL, oldest hour first (for tests and shutdown logs). */
  pending(): UsageRow[] {
    return toRows(this.buffer);
  }

  /** Starts flushing every `flushIntervalMs` (the timer never keeps the process alive). Idempotent. */
  start(): void {
    if (this.timer) return;
    this.timer = setInterval(() => void this.flush(), this.flushIntervalMs);
    this.timer.unref();
  }

  /**
   * Writes what was counted so far. Never rejects: on failure the counts are kept for the next
   * flush. Safe to call concurrently (each call writes the batch it swapped out).
   */
  flush(): Promise<void> {
    if (this.buffer.size === 0) return Promise.resolve();
    const batch = this.buffer;
    this.buffer = new Map();
    const work = this.write(batch);
    this.inFlight.add(work);
    void work.finally(() => this.inFlight.delete(work));
    return work;
  }

  /** Stops the timer and writes what is left (waiting for flushes already under way). */
  async stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    await Promise.all([...this.inFlight]);
    await this.flush();
    if (this.buffer.size > 0) {
      this.opts.log.warn('usage counts could not be saved before shutdown and are lost', {
        event: 'usage.lost',
        counts: this.pending().map((r) => ({ hour: r.hour.toISOString(), metric: r.metric, count: r.count })),
      });
    }
  }

  private async write(batch: Map<number, Map<UsageMetric, number>>): Promise<void> {
    try {
      await this.opts.repo.add(this.opts.region, toRows(batch));
      if (this.failing) {
        this.failing = false;
        this.opts.log.info('usage counts are being saved again', { event: 'usage.flush_recovered' });
      }
    } catch (err) {
      // Put the counts back, added to whatever was recorded since the swap.
      for (const [hour, metrics] of batch) {
        let bucket = this.buffer.get(hour);
        if (!bucket) {
          bucket = new Map();
          this.buffer.set(hour, bucket);
        }
        for (const [metric, count] of metrics) bucket.set(metric, (bucket.get(metric) ?? 0) + count);
      }
      if (!this.failing) {
        this.failing = true;
        this.opts.log.warn('usage counts not saved; kept in memory and retried on the next flush', { event: 'usage.flush_failed', err });
      }
    }
  }
}

function toRows(buffer: Map<number, Map<UsageMetric, number>>): UsageRow[] {
  const rows: UsageRow[] = [];
  for (const hour of [...buffer.keys()].sort((a, b) => a - b)) {
    for (const [metric, count] of buffer.get(hour)!) rows.push({ hour: new Date(hour), metric, count });
  }
  return rows;
}
