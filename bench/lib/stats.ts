/** Latency samples in milliseconds, kept whole (a 10 s run is at most a few hundred thousand). */
export class Latencies {
  private values = new Float64Array(1 << 14);
  private n = 0;

  get count(): number {
    return this.n;
  }

  add(ms: number): void {
    if (this.n === this.values.length) {
      const grown = new Float64Array(this.values.length * 2);
      grown.set(this.values);
      this.values = grown;
    }
    this.values[this.n++] = ms;
  }

  summary(): LatencySummary {
    const sorted = this.values.slice(0, this.n).sort();
    const at = (p: number) => (this.n === 0 ? 0 : round(sorted[Math.min(this.n - 1, Math.ceil((p / 100) * this.n) - 1)]!));
    let sum = 0;
    for (const v of sorted) sum += v;
    return { p50: at(50), p95: at(95), p99: at(99), max: this.n ? round(sorted[this.n - 1]!) : 0, mean: this.n ? round(sum / this.n) : 0 };
  }
}

export interface LatencySummary {
  p50: number;
  p95: number;
  p99: number;
  max: number;
  mean: number;
}

/** Two decimals: enough for milliseconds. */
export function round(value: number, digits = 2): number {
  const f = 10 ** digits;
  return Math.round(value * f) / f;
}

/** Runs `concurrency` loops of `op` for `seconds`, recording each call's latency. */
export async function closedLoop(
  concurrency: number,
  seconds: number,
  op: (worker: number) => Promise<unknown>,
): Promise<{ ops: number; elapsedS: number; latency: LatencySummary; errors: number }> {
  const latencies = new Latencies();
  let errors = 0;
  const started = performance.now();
  const deadline = started + seconds * 1000;
  let last = started;
  await Promise.all(
    Array.from({ length: concurrency }, async (_, worker) => {
      while (performance.now() < deadline) {
        const t = performance.now();
        try {
          await op(worker);
        } catch {
          errors++;
        }
        last = performance.now();
        latencies.add(last - t);
      }
    }),
  );
  const elapsedS = (last - started) / 1000;
  return { ops: latencies.count, elapsedS, latency: latencies.summary(), errors };
}
