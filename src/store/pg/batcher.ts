/**
 * Group commit for hot single-row writes. While `maxInFlight` statements are running, new
 * requests queue; when a statement returns, everything queued goes out as ONE statement (one
 * round trip, one commit, one WAL flush for many rows). With nothing in flight a request is sent
 * at once, alone: an idle server adds no latency, a busy one trades a little latency for many
 * fewer commits. This is how databases themselves reach high commit rates, applied one level up.
 *
 * Items with the same key never share a batch (each row's compare-and-set must see the previous
 * one's result); a second item for a key already in the batch waits for the next one.
 *
 * @example
 *   const batcher = new Batcher({ maxInFlight: 4, maxBatch: 64, key: (i) => i.id, run: (items) => update(items) });
 *   const row = await batcher.submit(item); // the result `run` returned for this item
 */
export interface BatcherOptions<I, R> {
  /** Statements allowed to run at once (the rest of the pool stays free for other work). */
  maxInFlight: number;
  /** Rows per statement at most. */
  maxBatch: number;
  key: (item: I) => string;
  /** Runs one batch; returns one result per item, in order. A rejection fails the whole batch. */
  run: (items: I[]) => Promise<R[]>;
}

interface Pending<I, R> {
  item: I;
  resolve: (value: R) => void;
  reject: (err: unknown) => void;
}

export class Batcher<I, R> {
  private queue: Array<Pending<I, R>> = [];
  private inFlight = 0;

  constructor(private readonly opts: BatcherOptions<I, R>) {}

  submit(item: I): Promise<R> {
    return new Promise<R>((resolve, reject) => {
      this.queue.push({ item, resolve, reject });
      this.drain();
    });
  }

  private drain(): void {
    while (this.inFlight < this.opts.maxInFlight && this.queue.length > 0) {
      const batch: Array<Pending<I, R>> = [];
      const keys = new Set<string>();
      const later: Array<Pending<I, R>> = [];
      for (const pending of this.queue) {
        const key = this.opts.key(pending.item);
        if (batch.length < this.opts.maxBatch && !keys.has(key)) {
          keys.add(key);
          batch.push(pending);
        } else {
          later.push(pending);
        }
      }
      this.queue = later;
      this.inFlight += 1;
      void this.send(batch);
    }
  }

  private async send(batch: Array<Pending<I, R>>): Promise<void> {
    try {
      const results = await this.opts.run(batch.map((p) => p.item));
      batch.forEach((p, i) => p.resolve(results[i] as R));
    } catch (err) {
      for (const p of batch) p.reject(err);
    } finally {
      this.inFlight -= 1;
      this.drain();
    }
  }
}
