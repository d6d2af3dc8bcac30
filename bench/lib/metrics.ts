/** Reads the server's Prometheus /metrics: cache hit ratios, pool waits, query and argon2 times. */
import { round } from './stats.js';

export interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

export function parseMetrics(text: string): Sample[] {
  const samples: Sample[] = [];
  for (const m of text.matchAll(/^([a-zA-Z_:][\w:]*)(?:\{([^}]*)\})? (\S+)$/gm)) {
    const labels: Record<string, string> = {};
    for (const l of (m[2] ?? '').matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)) labels[l[1]!] = l[2]!;
    samples.push({ name: m[1]!, labels, value: Number(m[3]) });
  }
  return samples;
}

export async function scrape(base: string): Promise<Sample[]> {
  const res = await fetch(`${base}/metrics`);
  if (!res.ok) throw new Error(`/metrics answered ${res.status}`);
  return parseMetrics(await res.text());
}

function sum(samples: Sample[], name: string, where: Record<string, string> = {}): number {
  let total = 0;
  for (const s of samples) {
    if (s.name === name && Object.entries(where).every(([k, v]) => s.labels[k] === v)) total += s.value;
  }
  return total;
}

export interface CacheLookups {
  hits: number;
  lookups: number;
  errors: number;
  /** "99.9 % hits of 28,760 (0 errors)" */
  text: string;
}

/** Cache lookups per kind (user, session) between two scrapes, from `authctl_cache_lookups_total`. */
export function cacheLookups(before: Sample[], after: Sample[]): Record<string, CacheLookups> {
  const kinds = new Set(after.filter((s) => s.name === 'authctl_cache_lookups_total').map((s) => s.labels.kind ?? '?'));
  const out: Record<string, CacheLookups> = {};
  for (const kind of kinds) {
    const delta = (result: string) =>
      sum(after, 'authctl_cache_lookups_total', { kind, result }) - sum(before, 'authctl_cache_lookups_total', { kind, result });
    const hits = delta('hit');
    const errors = delta('error');
    const lookups = hits + delta('miss') + errors;
    if (lookups === 0) continue;
    out[kind] = { hits, lookups, errors, text: `${((hits / lookups) * 100).toFixed(1)} % hits of ${lookups.toLocaleString('en-US')} (${errors} errors)` };
  }
  return out;
}

/** Mean of a histogram between two scrapes, in milliseconds, or undefined when nothing was observed. */
export function histogramMeanMs(
  before: Sample[],
  after: Sample[],
  name: string,
  where: Record<string, string> = {},
): { count: number; meanMs: number } | undefined {
  const count = sum(after, `${name}_count`, where) - sum(before, `${name}_count`, where);
  if (count <= 0) return undefined;
  const seconds = sum(after, `${name}_sum`, where) - sum(before, `${name}_sum`, where);
  return { count, meanMs: round((seconds / count) * 1000) };
}

export interface PoolSample {
  /** Acquisitions that waited for a connection (writer pool), max and mean over the samples. */
  pendingMax: number;
  pendingMean: number;
  /** Connections in use (writer pool), max over the samples. */
  usedMax: number;
  samples: number;
}

/**
 * Samples the writer pool gauges every `everyMs` while a load runs. A scrape costs the server a
 * millisecond or two, so twice a second is noise.
 */
export class PoolSampler {
  private readonly pending: number[] = [];
  private readonly used: number[] = [];
  private readonly timer: NodeJS.Timeout;
  private inFlight: Promise<void> = Promise.resolve();

  constructor(base: string, everyMs = 500) {
    this.timer = setInterval(() => {
      this.inFlight = scrape(base).then(
        (samples) => {
          this.pending.push(sum(samples, 'authctl_db_pool_connections', { pool: 'writer', state: 'pending' }));
          this.used.push(sum(samples, 'authctl_db_pool_connections', { pool: 'writer', state: 'used' }));
        },
        () => undefined,
      );
    }, everyMs);
  }

  async stop(): Promise<PoolSample> {
    clearInterval(this.timer);
    await this.inFlight;
    const n = this.pending.length;
    return {
      pendingMax: n ? Math.max(...this.pending) : 0,
      pendingMean: n ? round(this.pending.reduce((a, b) => a + b, 0) / n, 1) : 0,
      usedMax: n ? Math.max(...this.used) : 0,
      samples: n,
    };
  }
}
