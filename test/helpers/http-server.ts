import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { ConfigInput } from '../../src/config/schema.js';
import { buildContainer } from '../../src/container.js';
import type { Clock } from '../../src/core/clock.js';
import { createApp } from '../../src/http/app.js';
import { testConfig, type TestApp } from './app.js';
import type { TestDatabase } from './db.js';

/**
 * What `startTestApp` does, minus the migration: a server that starts the way `authctl serve`
 * does, whether or not its database is reachable. The caller migrates beforehand and owns `db`
 * (close() does not drop it).
 */
export async function startUnmigratedTestApp(db: TestDatabase, options: { clock?: Clock; overrides?: ConfigInput } = {}): Promise<TestApp> {
  const container = buildContainer(testConfig(db.url, options.overrides), options.clock ? { clock: options.clock } : {});
  await container.startBackground();
  const handle = createApp(container).callback();
  const server: Server = createServer((req, res) => {
    void handle(req, res);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return {
    db,
    container,
    url,
    request(path, init = {}) {
      const headers = new Headers(init.headers);
      if (init.json !== undefined) headers.set('content-type', 'application/json');
      if (init.token) headers.set('authorization', `Bearer ${init.token}`);
      const body = init.json !== undefined ? JSON.stringify(init.json) : init.body;
      return fetch(url + path, { ...init, headers, body: body ?? null });
    },
    async close() {
      await new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      });
      await container.close();
    },
  };
}

/** Migrates a database the way `authctl migrate` would, through `url`. */
export async function migrate(url: string): Promise<void> {
  const migrator = buildContainer(testConfig(url));
  try {
    await migrator.db.migrateLatest();
  } finally {
    await migrator.close();
  }
}
