import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Writable } from 'node:stream';
import { loadConfig } from '../../src/config/load.js';
import type { ConfigInput } from '../../src/config/schema.js';
import { buildContainer, type Container } from '../../src/container.js';
import type { Clock } from '../../src/platform/clock.js';
import { createApp } from '../../src/http/app.js';
import type { Logger } from '../../src/platform/logger.js';
import { createTestDatabase, type TestDatabase } from './db.js';
import { migrate, shutdown, startBackground } from '../../src/runtime.js';
import { openApiDocument } from '../../src/http/openapi.js';
import { assertConforms, contractOf, type ContractValidator } from './openapi.js';

export const TEST_SECRET = 'test-secret-0123456789-abcdefghijklmnopqrstuvwxyz';

/** The config a test region runs with: its own database, fast polls, keys active at once. */
export function testConfig(databaseUrl: string, overrides: ConfigInput = {}) {
  return loadConfig({
    env: {},
    cwd: '/nonexistent',
    overrides: {
      secret: TEST_SECRET,
      ...overrides,
      database: { url: databaseUrl, ...overrides.database },
      log: { level: 'silent', ...overrides.log },
      keys: { activationDelay: 0, ...overrides.keys },
      revocation: { pollIntervalMs: 200, ...overrides.revocation },
      // Every test registers and fails logins from 127.0.0.1: per-address limits would trip
      // across unrelated tests. Per-account limits keep their defaults; test/security sets its own.
      rateLimit: { registerPerIp: 100_000, ipFailures: 100_000, ...overrides.rateLimit },
    },
  });
}

export interface TestApp {
  db: TestDatabase;
  container: Container;
  /** Base URL of `app.callback()` served on an ephemeral loopback port. */
  url: string;
  request: (path: string, init?: RequestInit & { json?: unknown; token?: string; contract?: boolean }) => Promise<Response>;
  close(): Promise<void>;
}

/**
 * A migrated database and a container with the HTTP app on an ephemeral port — the whole server
 * as a user sees it, over real PostgreSQL.
 */
export async function startTestApp(
  label: string,
  options: {
    clock?: Clock;
    /** A function of the app's own URL for config that names it (`publicUrl`, a provider's redirect URI). */
    overrides?: ConfigInput | ((url: string) => ConfigInput);
    db?: TestDatabase;
    migrate?: boolean;
    /** A logger of the test's own (it gets no request ids unless it follows `container.requestContext`). */
    log?: Logger;
    /** JSON log lines of the container's own logger (config level and region, request ids) go here. */
    logSink?: Writable;
  } = {},
): Promise<TestApp> {
  const db = options.db ?? (await createTestDatabase(label));
  // Listening first, so the config may name the port; requests wait for the app below.
  type Handler = (req: IncomingMessage, res: ServerResponse) => void;
  let ready!: (handler: Handler) => void;
  const started = new Promise<Handler>((resolve) => (ready = resolve));
  const server: Server = createServer((req, res) => {
    void started.then((handle) => handle(req, res));
  });
  await new Promise<void>((resolve) => {
    server.listen(0, '127.0.0.1', resolve);
  });
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const overrides = typeof options.overrides === 'function' ? options.overrides(url) : options.overrides;
  const container = buildContainer(testConfig(db.url, overrides), {
    ...(options.clock ? { clock: options.clock } : {}),
    ...(options.log ? { log: options.log } : {}),
    ...(options.logSink ? { logSink: options.logSink } : {}),
  });
  // migrate: false starts the server the way `authctl serve` does, reachable database or not.
  if (options.migrate !== false) await migrate(container);
  await startBackground(container);
  const callback = createApp(container).callback();
  ready((req, res) => void callback(req, res));
  return {
    db,
    container,
    url,
    request: requester(url, () => openApiDocument(container.config)),
    async close() {
      await new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      });
      await shutdown(container);
      if (!options.db) await db.drop();
    },
  };
}

/**
 * `TestApp.request` for a server at `url`: `json` sets the body and its type, `token` a Bearer
 * header. Every response is checked against the OpenAPI document that server serves
 * (test/helpers/openapi.ts) before the test sees it; `contract: false` skips that, for the few
 * tests that talk to something in front of authctl on purpose.
 */
export function requester(url: string, document?: () => Record<string, unknown>): TestApp['request'] {
  let validator: Promise<ContractValidator> | undefined;
  return async (path, init = {}) => {
    const headers = new Headers(init.headers);
    if (init.json !== undefined) headers.set('content-type', 'application/json');
    if (init.token) headers.set('authorization', `Bearer ${init.token}`);
    const body = init.json !== undefined ? JSON.stringify(init.json) : init.body;
    const res = await fetch(url + path, { ...init, headers, body: body ?? null });
    if (init.contract !== false) {
      validator ??= contractOf(document ?? url).catch((err: unknown) => {
        validator = undefined;
        throw err;
      });
      await assertConforms(validator, init.method ?? 'GET', path, res);
    }
    return res;
  };
}

/** Migrates a database the way `authctl migrate` would, through `url`. */
export async function migrateDatabase(url: string): Promise<void> {
  const migrator = buildContainer(testConfig(url));
  try {
    await migrate(migrator);
  } finally {
    await shutdown(migrator);
  }
}
