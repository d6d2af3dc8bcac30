/** The run's report: ratios against the limits, the console tables, and the JSON file. */
import type { Limit, Limits } from './limits.js';
import type { LoadResult } from './lib/load.js';
import { resultPath, writeJson } from './lib/results.js';
import { round } from './lib/stats.js';

export interface Ratio {
  value: number;
  of: string;
  /** The figure we aim for (not enforced). */
  target?: number;
}

export interface Report {
  at: string;
  /** The build measured (dist/ is compiled from the working tree). */
  revision: { commit: string; uncommitted: string[] };
  node: string;
  cpus: number;
  cpuModel: string;
  connections: number;
  /** Seconds per measured run. */
  duration: number;
  warmup: number;
  cacheTarget: string;
  /** The connection pooler between the server and PostgreSQL (`--pooler`); absent: direct. */
  pooler?: { kind: 'pgbouncer'; poolMode: 'transaction'; serverConnections: number };
  poolMax: number;
  hash: { memoryCost: number; timeCost: number; parallelism: number };
  uvThreadpoolSize: string;
  /** Machine CPU (% of one core) in the second before the run: other work on the box. */
  busyBeforePct: number;
  scenarios: LoadResult[];
  limits?: Limits;
  ratios: Record<string, Ratio>;
  /** Scenarios whose error rate was above 1 %. */
  failed: string[];
}

/** What each scenario's req/s is compared with, and the target where the issue sets one. */
function denominators(
  byName: Map<string, LoadResult>,
  limits: Limits | undefined,
): Record<string, { num: string; value: number | undefined; of: string; target?: number }> {
  return {
    verify_vs_baseline: { num: 'verify', value: byName.get('baseline')?.rps, of: 'GET /bench/baseline req/s (same stack, no auth, no I/O)', target: 0.8 },
    refresh_vs_pg_commits: { num: 'refresh', value: limits?.pg.opsPerS, of: 'single-row UPDATE … RETURNING commits/s (pg, same pool size)', target: 0.7 },
    login_vs_argon2_verify: { num: 'login', value: limits?.argon2.opsPerS, of: 'argon2id verify/s at our parameters', target: 0.8 },
    register_vs_argon2_verify: { num: 'register', value: limits?.argon2.opsPerS, of: 'argon2id verify/s (a hash costs the same)' },
    logout_vs_pg_commits: { num: 'logout', value: limits?.pg.opsPerS, of: 'single-row UPDATE … RETURNING commits/s' },
    introspect_vs_verify: {
      num: 'introspect',
      value: byName.get('verify')?.rps,
      of: 'GET /v1/me req/s (the same token check, without form and client authentication)',
      target: 0.5,
    },
    login_mfa_vs_login: {
      num: 'login-mfa',
      value: byName.get('login')?.rps,
      of: 'POST /v1/auth/login req/s (the password step alone, users without a factor; same run)',
    },
    verify_vs_jose_verify: { num: 'verify', value: limits?.jose.opsPerS, of: 'jose jwtVerify/s (the server skips it for a token it has verified before)' },
  };
}

export function computeRatios(scenarios: LoadResult[], limits: Limits | undefined): Record<string, Ratio> {
  const byName = new Map(scenarios.map((s) => [s.scenario, s]));
  const out: Record<string, Ratio> = {};
  for (const [key, d] of Object.entries(denominators(byName, limits))) {
    const num = byName.get(d.num)?.rps;
    if (num === undefined || !d.value) continue;
    out[key] = { value: round(num / d.value, 3), of: d.of, ...(d.target !== undefined ? { target: d.target } : {}) };
  }
  return out;
}

/** "of limit" column: the scenario's req/s as a fraction of its ceiling. */
function ofLimit(report: Report, scenario: string): string {
  const label: Record<string, [string, string]> = {
    verify: ['verify_vs_baseline', 'baseline'],
    refresh: ['refresh_vs_pg_commits', 'pg commits'],
    login: ['login_vs_argon2_verify', 'argon2'],
    register: ['register_vs_argon2_verify', 'argon2'],
    logout: ['logout_vs_pg_commits', 'pg commits'],
    introspect: ['introspect_vs_verify', 'verify'],
    'login-mfa': ['login_mfa_vs_login', 'login'],
  };
  const entry = label[scenario];
  const ratio = entry ? report.ratios[entry[0]] : undefined;
  return ratio && entry ? `${Math.round(ratio.value * 100)} % ${entry[1]}` : '';
}

function table(head: string[], rows: string[][]): string {
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: string[]) => cells.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join('  ');
  return [line(head), widths.map((w) => '-'.repeat(w)).join('  '), ...rows.map(line)].join('\n');
}

const n = (v: number) => v.toLocaleString('en-US');
const pct = (v: number) => `${v} %`;

export function printReport(report: Report): void {
  const out: string[] = [];
  out.push(
    '',
    `authctl bench ${report.at} — ${report.revision.commit}${report.revision.uncommitted.length ? ` + ${report.revision.uncommitted.length} uncommitted file(s) in src/commands` : ''}, node ${report.node}, ${report.cpus} cores (${report.cpuModel}), server and load generator on the same cores`,
    `${report.connections} connections, ${report.duration} s per run (+${report.warmup} s warm-up), loopback; cache: ${report.cacheTarget}; pg pool max ${report.poolMax}${report.pooler ? ` through PgBouncer (${report.pooler.poolMode} pooling, ${report.pooler.serverConnections} server connections)` : ', direct'}; argon2id m=${report.hash.memoryCost} KiB t=${report.hash.timeCost} p=${report.hash.parallelism}; UV_THREADPOOL_SIZE ${report.uvThreadpoolSize}`,
    `CPU columns are % of ONE core (machine max = ${report.cpus * 100} %); postgres = our database's backends + shared background processes; "other" = machine − the rest (${report.busyBeforePct} % busy before the run).`,
    '',
  );
  out.push(
    table(
      ['scenario', 'req/s', 'of limit', 'p50 ms', 'p95 ms', 'p99 ms', 'requests', 'errors', 'server', 'load', 'postgres', 'redis', 'machine', 'other'],
      report.scenarios.map((s) => [
        s.scenario,
        n(s.rps),
        ofLimit(report, s.scenario),
        s.latencyMs.p50.toFixed(1),
        s.latencyMs.p95.toFixed(1),
        s.latencyMs.p99.toFixed(1),
        n(s.requests),
        s.errors ? `${n(s.errors)} (${(s.errorRate * 100).toFixed(2)} %)` : '0',
        pct(s.cpu.server),
        pct(s.cpu.loadgen),
        pct(s.cpu.postgres),
        pct(s.cpu.redis),
        pct(s.cpu.machine),
        pct(s.cpu.other),
      ]),
    ),
  );
  out.push('');
  for (const s of report.scenarios) {
    const parts = [`${s.route}, ${s.elapsedS} s`];
    if (Object.keys(s.unexpected).length) parts.push(`unexpected: ${JSON.stringify(s.unexpected)}`);
    for (const [kind, c] of Object.entries(s.cache)) parts.push(`${kind} cache ${c.text}`);
    if (s.pool.samples) parts.push(`writer pool: used ≤ ${s.pool.usedMax}, waiting ≤ ${s.pool.pendingMax} (mean ${s.pool.pendingMean})`);
    if (s.server.dbQueryMeanMs !== undefined) parts.push(`db query mean ${s.server.dbQueryMeanMs} ms × ${n(s.server.dbQueries ?? 0)}`);
    if (s.cpu.pooler !== undefined) parts.push(`pgbouncer CPU ${pct(s.cpu.pooler)} (in none of the columns)`);
    if (s.server.argon2MeanMs !== undefined) parts.push(`argon2 mean ${s.server.argon2MeanMs} ms × ${n(s.server.argon2Ops ?? 0)}`);
    out.push(`  ${s.scenario}: ${[...parts, ...s.notes].join('; ')}`);
  }
  if (report.limits) {
    const l = report.limits;
    out.push('', 'Limits (in the bench process, server idle, concurrency = connections):', '');
    out.push(
      table(
        ['limit', 'ops/s', 'p50 ms', 'p99 ms', 'bench CPU', 'postgres', 'machine', 'other'],
        (
          [
            [`jose jwtVerify ${l.jose.alg}`, l.jose],
            [`argon2id verify m=${l.argon2.memoryCost} t=${l.argon2.timeCost} p=${l.argon2.parallelism} (threadpool ${l.argon2.uvThreadpoolSize})`, l.argon2],
            [`pg UPDATE … RETURNING, pool max ${l.pg.poolMax}`, l.pg],
          ] as Array<[string, Limit]>
        ).map(([name, x]) => [
          name,
          n(x.opsPerS),
          x.latencyMs.p50.toFixed(2),
          x.latencyMs.p99.toFixed(2),
          pct(x.cpu.loadgen),
          pct(x.cpu.postgres),
          pct(x.cpu.machine),
          pct(x.cpu.other),
        ]),
      ),
    );
  }
  if (Object.keys(report.ratios).length) {
    out.push('', 'Ratios:');
    for (const [key, r] of Object.entries(report.ratios)) {
      const target = r.target === undefined ? '' : ` (target ≥ ${Math.round(r.target * 100)} %: ${r.value >= r.target ? 'met' : 'NOT met'})`;
      out.push(`  ${key.padEnd(26)} ${`${(r.value * 100).toFixed(1)} %`.padStart(8)} of ${r.of}${target}`);
    }
  }
  if (report.failed.length) out.push('', `FAILED: error rate above 1 % in ${report.failed.join(', ')}`);
  console.log(out.join('\n'));
}

export function writeReport(dir: string, report: Report): string {
  return writeJson(resultPath(dir, '', report.at), report);
}
