/**
 * One measured load: autocannon against the server, with per-connection request state, our own
 * latency percentiles (autocannon's result has no p95) and CPU and /metrics deltas around it.
 */
import autocannon from 'autocannon';
import { CpuMeter, type CpuUsage } from './cpu.js';
import { cacheLookups, histogramMeanMs, PoolSampler, scrape, type CacheLookups, type PoolSample } from './metrics.js';
import { Latencies, round, type LatencySummary } from './stats.js';

export interface LoadTarget {
  base: string;
  serverPid: number;
  /** Our database, to count only its PostgreSQL backends. */
  database: string;
  /** The PgBouncer between the server and PostgreSQL (`--pooler pgbouncer`), for its CPU. */
  poolerPid?: number | undefined;
  connections: number;
  /** Aborting it stops the load at once (an interrupted bench: keep-alive connections would hold the server's shutdown). */
  signal?: AbortSignal | undefined;
}

export interface LoadSpec {
  /** The row name in the report. */
  name: string;
  /** What is measured, for the report: "GET /v1/me". */
  route: string;
  /** The status a successful request answers; anything else counts as an error. */
  expect: number;
  /**
   * The requests connection `i` sends, in a loop. Closures over per-connection state replace
   * autocannon's `context`, which autocannon resets each time the list wraps around.
   */
  connection: (i: number) => autocannon.Request[];
  durationS: number;
  /** Each connection stops after this many responses (a finite pool of one-shot credentials). */
  maxPerConnection?: number;
  /** Told of every response as it arrives (e.g. to split the latencies by what else ran meanwhile). */
  observe?: (status: number, ms: number) => void;
}

export interface LoadResult {
  scenario: string;
  route: string;
  requests: number;
  errors: number;
  errorRate: number;
  /** Status codes other than the expected one, and socket errors/timeouts. */
  unexpected: Record<string, number>;
  elapsedS: number;
  rps: number;
  latencyMs: LatencySummary;
  cpu: CpuUsage;
  cache: Record<string, CacheLookups>;
  pool: PoolSample;
  /** Server-side means over the run, from /metrics histograms. */
  server: { dbQueryMeanMs?: number; dbQueries?: number; argon2MeanMs?: number; argon2Ops?: number };
  notes: string[];
}

/** Runs autocannon once; returns when it is done. No measurement beyond what autocannon gives. */
function cannon(target: LoadTarget, spec: LoadSpec, onResponse?: (status: number, ms: number) => void): Promise<autocannon.Result> {
  let next = 0;
  return new Promise((resolve, reject) => {
    const stop = () => instance.stop();
    const instance = autocannon(
      {
        url: target.base,
        connections: target.connections,
        duration: spec.durationS,
        pipelining: 1,
        timeout: 30,
        // Replaced per connection in setupClient before anything is sent.
        requests: [{ method: 'GET', path: '/healthz' }],
        setupClient(client) {
          client.setRequests(spec.connection(next++ % target.connections));
        },
        ...(spec.maxPerConnection !== undefined ? { maxConnectionRequests: spec.maxPerConnection } : {}),
      },
      (err, result) => {
        target.signal?.removeEventListener('abort', stop);
        if (err) reject(err instanceof Error ? err : new Error(String(err)));
        else resolve(result);
      },
    );
    if (target.signal?.aborted) stop();
    else target.signal?.addEventListener('abort', stop, { once: true });
    if (onResponse) instance.on('response', (_client, status, _bytes, ms) => onResponse(status, ms));
  });
}

/** A short unmeasured run, so that the JIT, the pools and the caches are warm. */
export async function warmUp(target: LoadTarget, spec: LoadSpec, seconds: number): Promise<void> {
  if (seconds > 0) await cannon(target, { ...spec, durationS: seconds });
}

export async function measure(target: LoadTarget, spec: LoadSpec): Promise<LoadResult> {
  const latencies = new Latencies();
  const unexpected: Record<string, number> = {};
  let ok = 0;
  let last = 0;
  const before = await scrape(target.base);
  const pool = new PoolSampler(target.base);
  const cpu = new CpuMeter(target.serverPid, target.database, target.poolerPid);
  const started = performance.now();
  const result = await cannon(target, spec, (status, ms) => {
    last = performance.now();
    latencies.add(ms);
    spec.observe?.(status, ms);
    if (status === spec.expect) ok++;
    else unexpected[status] = (unexpected[status] ?? 0) + 1;
  });
  const usage = cpu.stop();
  const poolSample = await pool.stop();
  const after = await scrape(target.base);

  if (result.errors) unexpected.socket = result.errors - result.timeouts;
  if (result.timeouts) unexpected.timeout = result.timeouts;
  const errors = Object.values(unexpected).reduce((a, b) => a + b, 0);
  const requests = latencies.count;
  // Until the last response: autocannon only notices the end at its next 1 s tick.
  const elapsedS = ((last || performance.now()) - started) / 1000;
  const db = histogramMeanMs(before, after, 'authctl_db_query_duration_seconds', { pool: 'writer' });
  const argon2 = histogramMeanMs(before, after, 'authctl_password_hash_duration_seconds');
  return {
    scenario: spec.name,
    route: spec.route,
    requests,
    errors,
    errorRate: round(errors / Math.max(1, requests + (result.errors ?? 0)), 4),
    unexpected,
    elapsedS: round(elapsedS),
    rps: Math.round(ok / elapsedS),
    latencyMs: latencies.summary(),
    cpu: usage,
    cache: cacheLookups(before, after),
    pool: poolSample,
    server: {
      ...(db ? { dbQueryMeanMs: db.meanMs, dbQueries: db.count } : {}),
      ...(argon2 ? { argon2MeanMs: argon2.meanMs, argon2Ops: argon2.count } : {}),
    },
    // Anything else on these cores during the run (another benchmark, a build) skews it.
    notes: usage.other > 20 ? [`CONTENDED: other processes used ${usage.other} % CPU during this run`] : [],
  };
}

/**
 * A measured load whose operation is a pair of requests (a login and its second step, a
 * passkey's options and its assertion): completed pairs a second and the pairs' latencies, timed
 * by the scenario from the first request's start to the second's answer. `what` names the pair.
 */
export function asPairs(http: LoadResult, pairs: Latencies, what: string): LoadResult {
  return {
    ...http,
    requests: pairs.count,
    rps: Math.round(pairs.count / http.elapsedS),
    latencyMs: pairs.summary(),
    errorRate: round(http.errors / Math.max(1, http.requests), 4),
    notes: [...http.notes, `one request = ${what} (${http.requests} HTTP requests); errors, CPU and server means are per HTTP request`],
  };
}
