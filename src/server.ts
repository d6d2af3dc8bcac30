import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Container } from './container.js';
import { createApp } from './http/app.js';

export interface RunningServer {
  url: string;
  server: Server;
  close(): Promise<void>;
}

/**
 * Starts the HTTP server: background loading of keys and revocations first (best effort — the
 * server also starts while PostgreSQL is down and becomes ready by itself), then listen.
 */
export async function startServer(container: Container, options: { host: string; port: number }): Promise<RunningServer> {
  await container.startBackground();
  const app = createApp(container);
  const server = app.listen(options.port, options.host);
  await new Promise<void>((resolve, reject) => {
    server.once('listening', resolve);
    server.once('error', reject);
  });
  // Keep-alive longer than typical load balancers' idle timeout (60 s), so they close first.
  server.keepAliveTimeout = 65_000;
  const { port } = server.address() as AddressInfo;
  const host = options.host.includes(':') ? `[${options.host}]` : options.host;
  return {
    url: `http://${host === '0.0.0.0' ? '127.0.0.1' : host}:${port}`,
    server,
    close: () =>
      new Promise<void>((resolve, reject) => {
        server.close((err) => (err ? reject(err) : resolve()));
        server.closeAllConnections();
      }),
  };
}
