import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { randomBytes } from 'node:crypto';
import type { ConfigInput } from '../../src/config/schema.js';
import { buildContainer, type Container } from '../../src/container.js';
import { createApp } from '../../src/http/app.js';
import { openApiDocument } from '../../src/http/openapi.js';
import { requester, testConfig, type TestApp } from '../helpers/app.js';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';
import { sleep } from '../helpers/http-assert.js';
import { migrate, shutdown, startBackground } from '../../src/runtime.js';
import { signRequest } from '../../src/core/replication/signature.js';

/** The secret a pair of regions shares (each pair its own, as in production). */
export function pairSecret(a: string, b: string): string {
  return `peer-secret-${[a, b].sort().join('-')}-0123456789abcdefghijklmnop`;
}

/** Settings that make replication fast and retries short enough for tests. */
export const FAST_REPLICATION = { pollIntervalMs: 50, retryBaseMs: 100, retryMaxMs: 400, proxyTimeoutMs: 500 } as const;

export interface RegionNode extends TestApp {
  name: string;
  port: number;
  /** Stops answering: the port refuses connections (the region is down or partitioned away). */
  stopHttp(): Promise<void>;
  /** Listens on the same port again. */
  startHttp(): Promise<void>;
  query<R = Record<string, unknown>>(sql: string, values?: unknown[]): Promise<R[]>;
}

function listen(server: Server, port: number): Promise<number> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, '127.0.0.1', () => resolve((server.address() as AddressInfo).port));
  });
}

/** Posts a replication batch to `node` as peer `origin` would (signed with their pair secret, or `secret`, at `at`). */
export function postBatch(
  node: Pick<RegionNode, 'name' | 'request'>,
  origin: string,
  batch: unknown,
  secret = pairSecret(origin, node.name),
  at = Date.now(),
): Promise<Response> {
  const body = JSON.stringify(batch);
  return node.request('/internal/replication', {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...signRequest(secret, origin, body, at) },
    body,
  });
}

/**
 * N regions on this machine: a database, a Redis key prefix and an HTTP server each, every
 * region a peer of every other, shipping with the workers' shipper running in process.
 */
export async function startRegions(
  names: string[],
  overrides: (name: string) => ConfigInput = () => ({}),
  /** Regions running elsewhere (a child process) that every region here also replicates with. */
  outside: Array<{ name: string; url: string }> = [],
): Promise<RegionNode[]> {
  const ports = new Map<string, number>();
  const servers = new Map<string, Server>();
  const handlers = new Map<string, (req: IncomingMessage, res: ServerResponse) => void>();
  for (const name of names) {
    const server = createServer((req, res) => {
      const handle = handlers.get(name);
      if (handle) handle(req, res);
      else res.writeHead(503).end();
    });
    servers.set(name, server);
    ports.set(name, await listen(server, 0));
  }
  const prefix = randomBytes(3).toString('hex');
  const nodes: RegionNode[] = [];
  for (const name of names) {
    const db: TestDatabase = await createTestDatabase(`regions_${name}`);
    const own = overrides(name);
    const url = `http://127.0.0.1:${ports.get(name)}`;
    const container: Container = buildContainer(
      testConfig(db.url, {
        ...own,
        region: name,
        publicUrl: url,
        cache: { redisUrl: 'redis://127.0.0.1:6379', keyPrefix: `t-regions-${prefix}-${name}`, ...own.cache },
        regions: {
          ...FAST_REPLICATION,
          peers: [
            ...names.filter((n) => n !== name).map((n) => ({ name: n, url: `http://127.0.0.1:${ports.get(n)}`, secret: pairSecret(name, n) })),
            ...outside.map((o) => ({ name: o.name, url: o.url, secret: pairSecret(name, o.name) })),
          ],
          ...own.regions,
        },
      }),
    );
    await migrate(container);
    await startBackground(container);
    await container.replication.shipping.start();
    const callback = createApp(container).callback();
    handlers.set(name, (req, res) => void callback(req, res));
    const server = servers.get(name)!;
    const port = ports.get(name)!;
    const pool = container.db.writer;
    nodes.push({
      name,
      port,
      db,
      container,
      url,
      request: requester(url, () => openApiDocument(container.config)),
      async stopHttp() {
        await new Promise<void>((resolve) => {
          server.close(() => resolve());
          server.closeAllConnections();
        });
      },
      async startHttp() {
        await listen(server, port);
      },
      async query<R>(sql: string, values: unknown[] = []) {
        const result = await pool.raw<{ rows: R[] }>(sql, values as never[]);
        return result.rows;
      },
      async close() {
        if (server.listening) await this.stopHttp();
        await shutdown(container);
        await db.drop();
      },
    });
  }
  return nodes;
}

/** The status `GET /v1/verify` answers at `node` for an access token (200, or 401 when refused). */
export async function verifyStatus(node: Pick<RegionNode, 'request'>, accessToken: string): Promise<number> {
  const res = await node.request('/v1/verify', { token: accessToken });
  await res.arrayBuffer();
  return res.status;
}

/** Polls `check` until it returns a value (not undefined) or `timeoutMs` passes; returns it. */
export async function eventually<T>(what: string, check: () => Promise<T | undefined>, timeoutMs = 20_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const value = await check();
      if (value !== undefined) return value;
    } catch (err) {
      last = err;
    }
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}${last instanceof Error ? `: ${last.message}` : ''}`);
    await sleep(50);
  }
}

/** The replicated state of a region, comparable across regions. */
export async function snapshot(node: Pick<RegionNode, 'query'>): Promise<{ users: unknown[]; sessions: unknown[] }> {
  const users = await node.query(`select id, username, status, home_region, password_hash from users order by id`);
  const sessions = await node.query(`select id, user_id, home_region, counter, (revoked_at is not null) as revoked from sessions order by id`);
  return { users, sessions };
}

/** A port nothing listens on right now (for a region started later as a child process). */
export async function freePort(): Promise<number> {
  const server = createServer();
  const port = await listen(server, 0);
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}
