/**
 * Replication bench: two regions (A, B) on this machine, each with its own database and HTTP
 * server, A shipping to B with the workers' shipper. Measures
 * 1. replication lag (change committed in A → applied in B), p50/p99, under refresh + logout load on A;
 * 2. how long B takes to catch up after being down: A builds a backlog while B's port is dead,
 *    then B comes back and we time the drain.
 *
 *   npm run bench:replication -- [--duration 10] [--connections 16] [--outage 10]
 */
import { parseArgs } from 'node:util';
import { backlogOf, listen, startRegions, stopRegions, type RegionNode as Node } from './lib/regions.js';

const { values } = parseArgs({
  options: {
    duration: { type: 'string', default: '10' },
    connections: { type: 'string', default: '16' },
    outage: { type: 'string', default: '10' },
    'pg-url': { type: 'string', default: process.env.AUTHCTL_BENCH_PG_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres' },
  },
});
const durationMs = Number(values.duration) * 1000;
const connections = Number(values.connections);
const outageMs = Number(values.outage) * 1000;

async function post(url: string, body: unknown, token?: string): Promise<{ status: number; json: Record<string, unknown> }> {
  const res = await fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...(token ? { authorization: `Bearer ${token}` } : {}) },
    body: JSON.stringify(body),
  });
  const text = await res.text();
  return { status: res.status, json: text ? (JSON.parse(text) as Record<string, unknown>) : {} };
}

/** Refresh chains on A, one per connection; every 20th step logs the session out and starts a new one. */
async function load(a: Node, untilMs: number): Promise<{ refreshes: number; logouts: number; errors: number }> {
  const counts = { refreshes: 0, logouts: 0, errors: 0 };
  const password = 'bench replication password';
  await Promise.all(
    Array.from({ length: connections }, async (_, i) => {
      const username = `repl-${i}-${Math.random().toString(36).slice(2, 8)}`;
      await post(`${a.url}/v1/auth/register`, { username, password });
      let session = (await post(`${a.url}/v1/auth/login`, { username, password })).json;
      let step = 0;
      while (Date.now() < untilMs) {
        step += 1;
        if (step % 20 === 0) {
          const out = await post(`${a.url}/v1/auth/logout`, {}, session.accessToken as string);
          if (out.status === 204) counts.logouts += 1;
          else counts.errors += 1;
          session = (await post(`${a.url}/v1/auth/login`, { username, password })).json;
          continue;
        }
        const res = await post(`${a.url}/v1/auth/refresh`, { refreshToken: session.refreshToken });
        if (res.status === 200) {
          counts.refreshes += 1;
          session = res.json;
        } else counts.errors += 1;
      }
    }),
  );
  return counts;
}

async function main(): Promise<void> {
  const nodes = await startRegions({ pgUrl: values['pg-url'], names: ['ba', 'bb'], label: 'repl' });
  const [a, b] = nodes as [Node, Node];
  try {
    // 1. Lag under load.
    const started = Date.now();
    const counts = await load(a, started + durationMs);
    const seconds = (Date.now() - started) / 1000;
    while ((await backlogOf(a)) > 0) await new Promise((r) => setTimeout(r, 100));
    const lag = (await a.container.replication.backlog.status())[0]!;
    console.log(
      `lag under load: ${counts.refreshes} refreshes + ${counts.logouts} logouts in ${seconds.toFixed(1)} s on A (${Math.round((counts.refreshes + counts.logouts) / seconds)} changes/s, ${counts.errors} errors); replication lag A → B p50 ${lag.lagP50Ms} ms, p99 ${lag.lagP99Ms} ms (last ${Math.min(1000, counts.refreshes + counts.logouts)} changes)`,
    );

    // 2. B down: A builds a backlog; B returns; time the drain.
    await new Promise<void>((resolve) => {
      b.server.close(() => resolve());
      b.server.closeAllConnections();
    });
    await load(a, Date.now() + outageMs);
    const backlog = await backlogOf(a);
    const back = Date.now();
    await listen(b.server, b.port);
    while ((await backlogOf(a)) > 0) await new Promise((r) => setTimeout(r, 50));
    const drained = (Date.now() - back) / 1000;
    console.log(
      `drain: B down ${outageMs / 1000} s under load, backlog ${backlog} changes, drained ${drained.toFixed(2)} s after B returned (${Math.round(backlog / drained)} changes/s; includes up to retryMaxMs = 2 s of back-off)`,
    );
  } finally {
    await stopRegions(values['pg-url'], nodes);
  }
}

main().catch((err: unknown) => {
  console.error(err);
  process.exitCode = 1;
});
