/**
 * Replication bench: two regions (A, B) on this machine, each with its own database and HTTP
 * server, A shipping to B with the workers' shipper. Measures
 * 1. replication lag (change committed in A → applied in B), p50/p99, under refresh + logout load on A;
 * 2. how long B takes to catch up after being down: A builds a backlog while B's port is dead,
 *    then B comes back and we time the drain.
 *
 *   npm run bench:replication -- [--duration 10] [--connections 16] [--outage 10]
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { parseArgs } from 'node:util';
import { adminQuery } from './lib/env.js';
import { loadConfig } from '../src/config/load.js';
import { buildContainer, type Container } from '../src/container.js';
import { createApp } from '../src/http/app.js';
import { migrate, shutdown, startBackground } from '../src/runtime.js';

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
const SECRET = 'bench-replication-server-secret-0123456789abcdef';
const PEER_SECRET = 'bench-replication-peer-secret-0123456789abcdef';

const admin = (sql: string) => adminQuery(values['pg-url'], sql);

interface Node {
  name: string;
  url: string;
  container: Container;
  server: Server;
  port: number;
  db: string;
}

function listen(server: Server, port: number): Promise<number> {
  return new Promise((resolve) => server.listen(port, '127.0.0.1', () => resolve((server.address() as AddressInfo).port)));
}

async function startRegions(): Promise<[Node, Node]> {
  const stamp = `${Date.now()}_${process.pid}`;
  const names = ['ba', 'bb'];
  const handlers: Array<Parameters<typeof createServer>[1]> = [];
  // 503 until a region's app is up: a peer's early delivery fails fast and is retried.
  const servers = names.map((_, i) => createServer((req, res) => (handlers[i] ? handlers[i](req, res) : res.writeHead(503).end())));
  const ports = await Promise.all(servers.map((s) => listen(s, 0)));
  const nodes: Node[] = [];
  for (const [i, name] of names.entries()) {
    const db = `authctl_bench_repl_${name}_${stamp}`;
    await admin(`create database "${db}"`);
    const dbUrl = new URL(values['pg-url']);
    dbUrl.pathname = `/${db}`;
    const other = 1 - i;
    const container = buildContainer(
      loadConfig({
        env: {},
        cwd: '/nonexistent',
        overrides: {
          region: name,
          secret: SECRET,
          database: { url: dbUrl.toString() },
          cache: { redisUrl: 'redis://127.0.0.1:6379', keyPrefix: `bench-repl-${stamp}-${name}` },
          log: { level: 'warn' },
          keys: { activationDelay: 0 },
          // All load comes from one address: lift the per-address limits (per-account ones stay).
          rateLimit: { ipFailures: 100_000, registerPerIp: 100_000 },
          // Fast argon2 settings do not matter here: only refresh and logout are timed.
          regions: { peers: [{ name: names[other]!, url: `http://127.0.0.1:${ports[other]}`, secret: PEER_SECRET }], retryMaxMs: 2_000 },
        },
      }),
      { logStream: 'stderr' },
    );
    await migrate(container);
    await startBackground(container);
    await container.replication.shipping.start();
    const handle = createApp(container).callback();
    handlers[i] = (req, res) => void handle(req, res);
    nodes.push({ name, url: `http://127.0.0.1:${ports[i]}`, container, server: servers[i]!, port: ports[i]!, db });
  }
  return nodes as [Node, Node];
}

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

async function backlogOf(a: Node): Promise<number> {
  return (await a.container.replication.backlog.status())[0]?.backlog ?? 0;
}

async function main(): Promise<void> {
  const [a, b] = await startRegions();
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
    for (const n of [a, b]) {
      if (n.server.listening) await new Promise<void>((resolve) => n.server.close(() => resolve()));
      await shutdown(n.container);
      await admin(`drop database if exists "${n.db}" with (force)`);
    }
  }
}

main().catch((err: unknown) => {
  console.error(err);
  process.exitCode = 1;
});
