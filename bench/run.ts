/**
 * `npm run bench [-- scenario…] [--duration S] [--connections N]`: a real `authctl serve` (child
 * process) on real PostgreSQL, driven over loopback by N concurrent request loops per scenario.
 * Prints req/s, p50/p95/p99 and CPU of server and load generator; writes JSON to bench/results/.
 */
import { spawn } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import pg from 'pg';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: {
    duration: { type: 'string', default: '10' },
    connections: { type: 'string', default: '16' },
    'pg-url': { type: 'string', default: process.env.AUTHCTL_BENCH_PG_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres' },
    // Redis for the server's cache; a URL nobody answers shows the region running on PostgreSQL alone.
    redis: { type: 'string' },
  },
});
const durationMs = Number(values.duration) * 1000;
const connections = Number(values.connections);
const scenarios = positionals.length ? positionals : ['login', 'refresh', 'me'];
const PASSWORD = 'bench password 0123';

interface Result {
  scenario: string;
  requests: number;
  errors: number;
  rps: number;
  p50: number;
  p95: number;
  p99: number;
  serverCpuPct: number;
  loadCpuPct: number;
}

function percentile(sorted: number[], p: number): number {
  return sorted.length ? sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]! : 0;
}

/** CPU seconds used so far by a process (utime + stime from /proc). */
function cpuSeconds(pid: number): number {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
  return (Number(fields[11]) + Number(fields[12])) / 100;
}

async function post(url: string, body: unknown, token?: string): Promise<Response> {
  return fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...(token ? { authorization: `Bearer ${token}` } : {}) },
    body: JSON.stringify(body),
  });
}

/** Hit ratio per cache kind, from the server's `authctl_cache_lookups_total` counter. */
async function cacheRatios(base: string): Promise<Record<string, string>> {
  const text = await (await fetch(`${base}/metrics`)).text();
  const counts: Record<string, Record<string, number>> = {};
  for (const m of text.matchAll(/^authctl_cache_lookups_total\{([^}]*)\} (\d+)/gm)) {
    const labels = new Map([...m[1]!.matchAll(/(\w+)="([^"]*)"/g)].map((l) => [l[1]!, l[2]!] as const));
    (counts[labels.get('kind') ?? '?'] ??= {})[labels.get('result') ?? '?'] = Number(m[2]);
  }
  return Object.fromEntries(
    Object.entries(counts).map(([kind, c]) => {
      const total = (c.hit ?? 0) + (c.miss ?? 0) + (c.error ?? 0);
      return [kind, `${(((c.hit ?? 0) / Math.max(total, 1)) * 100).toFixed(1)} % hits of ${total} (${c.error ?? 0} errors)`];
    }),
  );
}

async function main(): Promise<void> {
  const dbName = `authctl_bench_${Date.now()}`;
  const admin = new pg.Client({ connectionString: values['pg-url'] });
  await admin.connect();
  await admin.query(`create database ${dbName}`);
  const dbUrl = new URL(values['pg-url']);
  dbUrl.pathname = `/${dbName}`;
  const env = { ...process.env, AUTHCTL_DATABASE_URL: dbUrl.toString(), AUTHCTL_SECRET: 'bench-secret-0123456789abcdefghijklmnopqrstuvwxyz', AUTHCTL_LOG_LEVEL: 'error', AUTHCTL_PORT: '18099', ...(values.redis ? { AUTHCTL_REDIS_URL: values.redis, AUTHCTL_CACHE_PREFIX: `bench-${Date.now()}` } : {}) };
  const cli = (args: string[]) => spawn(process.execPath, [join(root, 'bin/run.js'), ...args], { env, stdio: ['ignore', 'ignore', 'inherit'] });
  await new Promise((resolve) => cli(['migrate']).on('exit', resolve));
  const server = cli(['serve']);
  const base = 'http://127.0.0.1:18099';
  for (let i = 0; i < 100; i++) {
    if (await fetch(`${base}/readyz`).then((r) => r.ok, () => false)) break;
    await new Promise((r) => setTimeout(r, 200));
  }

  // One user per connection; each connection carries its own session and refresh chain.
  const users = Array.from({ length: connections }, (_, i) => `bench${i}`);
  for (const u of users) await post(`${base}/v1/auth/register`, { username: u, password: PASSWORD });
  const sessions = await Promise.all(users.map(async (u) => (await (await post(`${base}/v1/auth/login`, { username: u, password: PASSWORD })).json()) as { accessToken: string; refreshToken: string }));

  const results: Result[] = [];
  for (const scenario of scenarios) {
    const latencies: number[] = [];
    let errors = 0;
    const deadline = performance.now() + durationMs;
    const serverCpu0 = cpuSeconds(server.pid!);
    const loadCpu0 = process.cpuUsage();
    const t0 = performance.now();
    await Promise.all(
      users.map(async (username, i) => {
        const state = sessions[i]!;
        while (performance.now() < deadline) {
          const start = performance.now();
          let res: Response;
          if (scenario === 'login') res = await post(`${base}/v1/auth/login`, { username, password: PASSWORD });
          else if (scenario === 'refresh') res = await post(`${base}/v1/auth/refresh`, { refreshToken: state.refreshToken });
          else res = await fetch(`${base}/v1/me`, { headers: { authorization: `Bearer ${state.accessToken}` } });
          const body = (await res.json()) as { refreshToken?: string; accessToken?: string };
          latencies.push(performance.now() - start);
          if (!res.ok) errors++;
          else if (scenario === 'refresh') {
            state.refreshToken = body.refreshToken!;
            state.accessToken = body.accessToken!;
          }
        }
      }),
    );
    const elapsed = (performance.now() - t0) / 1000;
    const load = process.cpuUsage(loadCpu0);
    latencies.sort((a, b) => a - b);
    results.push({
      scenario,
      requests: latencies.length,
      errors,
      rps: Math.round(latencies.length / elapsed),
      p50: +percentile(latencies, 50).toFixed(2),
      p95: +percentile(latencies, 95).toFixed(2),
      p99: +percentile(latencies, 99).toFixed(2),
      serverCpuPct: Math.round(((cpuSeconds(server.pid!) - serverCpu0) / elapsed) * 100),
      loadCpuPct: Math.round(((load.user + load.system) / 1e6 / elapsed) * 100),
    });
  }

  const cache = await cacheRatios(base);
  server.kill('SIGTERM');
  await new Promise((resolve) => server.on('exit', resolve));
  await admin.query(`drop database ${dbName} with (force)`);
  await admin.end();

  console.log(`\n${connections} connections, ${durationMs / 1000} s per scenario, loopback, real PostgreSQL, cache: ${values.redis ?? 'in-process'}\n`);
  console.table(results);
  console.log('cache lookups (from /metrics):', cache);
  const file = join(root, 'bench/results', `${new Date().toISOString().replace(/[:.]/g, '-')}.json`);
  writeFileSync(file, JSON.stringify({ at: new Date().toISOString(), node: process.version, connections, durationMs, cache: { target: values.redis ?? 'memory', ...cache }, results }, null, 2));
  console.log(`written ${file}`);
}

await main();
