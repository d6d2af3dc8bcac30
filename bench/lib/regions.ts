/**
 * Two (or more) regions on this machine for the benches that measure replication: each with its
 * own database, HTTP server and Redis key prefix, every one a peer of every other, shipping with
 * the workers' shipper (bench/replication.ts, bench/import-export.ts).
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { adminQuery } from './env.js';
import { loadConfig } from '../../src/config/load.js';
import type { ConfigInput } from '../../src/config/schema.js';
import { buildContainer, type Container } from '../../src/container.js';
import { createApp } from '../../src/http/app.js';
import { migrate, shutdown, startBackground } from '../../src/runtime.js';

export const BENCH_REGION_SECRET = 'bench-replication-server-secret-0123456789abcdef';
export const BENCH_PEER_SECRET = 'bench-replication-peer-secret-0123456789abcdef';

export interface RegionNode {
  name: string;
  url: string;
  container: Container;
  server: Server;
  port: number;
  /** The region's database name, and its URL. */
  db: string;
  dbUrl: string;
}

export function listen(server: Server, port: number): Promise<number> {
  return new Promise((resolve) => server.listen(port, '127.0.0.1', () => resolve((server.address() as AddressInfo).port)));
}

export interface RegionsOptions {
  pgUrl: string;
  names: string[];
  /** Distinguishes the databases of this bench from another's (`authctl_bench_<label>_<name>_…`). */
  label: string;
  /** More settings for every region. */
  overrides?: ConfigInput;
}

/** Starts the regions, migrated, serving and shipping to each other. */
export async function startRegions(options: RegionsOptions): Promise<RegionNode[]> {
  const stamp = `${Date.now()}_${process.pid}`;
  const { names } = options;
  const handlers: Array<Parameters<typeof createServer>[1]> = [];
  // 503 until a region's app is up: a peer's early delivery fails fast and is retried.
  const servers = names.map((_, i) => createServer((req, res) => (handlers[i] ? handlers[i](req, res) : res.writeHead(503).end())));
  const ports = await Promise.all(servers.map((s) => listen(s, 0)));
  const nodes: RegionNode[] = [];
  for (const [i, name] of names.entries()) {
    const db = `authctl_bench_${options.label}_${name}_${stamp}`;
    await adminQuery(options.pgUrl, `create database "${db}"`);
    const dbUrl = new URL(options.pgUrl);
    dbUrl.pathname = `/${db}`;
    const peers = names.flatMap((peer, j) => (j === i ? [] : [{ name: peer, url: `http://127.0.0.1:${ports[j]}`, secret: BENCH_PEER_SECRET }]));
    const container = buildContainer(
      loadConfig({
        env: {},
        cwd: '/nonexistent',
        overrides: {
          ...options.overrides,
          region: name,
          secret: BENCH_REGION_SECRET,
          database: { url: dbUrl.toString() },
          cache: { redisUrl: 'redis://127.0.0.1:6379', keyPrefix: `bench-${options.label}-${stamp}-${name}` },
          log: { level: 'warn' },
          keys: { activationDelay: 0 },
          // All load comes from one address: lift the per-address limits (per-account ones stay).
          rateLimit: { ipFailures: 100_000, registerPerIp: 100_000 },
          regions: { peers, retryMaxMs: 2_000 },
        },
      }),
      { logStream: 'stderr' },
    );
    await migrate(container);
    await startBackground(container);
    await container.replication.shipping.start();
    const handle = createApp(container).callback();
    handlers[i] = (req, res) => void handle(req, res);
    nodes.push({ name, url: `http://127.0.0.1:${ports[i]}`, container, server: servers[i]!, port: ports[i]!, db, dbUrl: dbUrl.toString() });
  }
  return nodes;
}

/** Stops the regions and drops their databases. */
export async function stopRegions(pgUrl: string, nodes: RegionNode[]): Promise<void> {
  for (const n of nodes) {
    if (n.server.listening) await new Promise<void>((resolve) => n.server.close(() => resolve()));
    await shutdown(n.container);
    await adminQuery(pgUrl, `drop database if exists "${n.db}" with (force)`);
  }
}

/** Changes of `node` not yet delivered to its first peer. */
export async function backlogOf(node: RegionNode): Promise<number> {
  return (await node.container.replication.backlog.status())[0]?.backlog ?? 0;
}
