import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Container } from './container.js';
import { Registry } from 'prom-client';
import { createApp } from './http/app.js';
import { assertSecretOpensKeys, startBackground } from './runtime.js';

const PROMETHEUS_CONTENT_TYPE = Registry.PROMETHEUS_CONTENT_TYPE;

export interface RunningServer {
  url: string;
  server: Server;
  /** Where /metrics is served when `http.metricsPort` is set. */
  metricsUrl: string | undefined;
  close(): Promise<void>;
}

/** A bare listener for Prometheus on the admin port: GET /metrics, 404 otherwise. */
export async function startMetricsServer(render: () => Promise<string>, host: string, port: number): Promise<Server> {
  const server = createServer((req, res) => {
    if (req.method !== 'GET' || req.url?.split('?')[0] !== '/metrics') {
      res.writeHead(404, { 'content-type': 'text/plain' }).end('not found\n');
      return;
    }
    render().then(
      (text) => res.writeHead(200, { 'content-type': PROMETHEUS_CONTENT_TYPE }).end(text),
      () => res.writeHead(500).end(),
    );
  });
  await listen(server, host, port);
  return server;
}

export function listen(server: Server, host: string, port: number): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    server.once('listening', resolve);
    server.once('error', reject);
    server.listen(port, host);
  });
}

export function urlOf(server: Server, host: string): string {
  const { port } = server.address() as AddressInfo;
  const shown = host === '0.0.0.0' ? '127.0.0.1' : host.includes(':') ? `[${host}]` : host;
  return `http://${shown}:${port}`;
}

/**
 * Starts the HTTP server: background loading of keys and revocations first (best effort — the
 * server also starts while PostgreSQL is down and becomes ready by itself), then listen; a server
 * secret that cannot unseal the signing key stops it before it listens (`bad_config`).
 */
export async function startServer(container: Container, options: { host: string; port: number; metricsServer?: boolean }): Promise<RunningServer> {
  await startBackground(container);
  assertSecretOpensKeys(container);
  const handle = createApp(container).callback();
  const server = createServer((req, res) => {
    void handle(req, res);
  });
  await listen(server, options.host, options.port);
  // Keep-alive longer than typical load balancers' idle timeout (60 s), so they close first.
  server.keepAliveTimeout = 65_000;
  const metricsPort = container.config.http.metricsPort;
  const metricsServer =
    metricsPort === undefined || options.metricsServer === false ? undefined : await startMetricsServer(container.metrics.render, options.host, metricsPort);
  // Graceful: stop accepting, let requests in flight finish, drop idle keep-alive connections;
  // anything still open after 10 s is cut.
  const close = (s: Server) =>
    new Promise<void>((resolve, reject) => {
      const force = setTimeout(() => s.closeAllConnections(), 10_000).unref();
      s.close((err) => {
        clearTimeout(force);
        if (err) reject(err);
        else resolve();
      });
      s.closeIdleConnections();
    });
  return {
    url: urlOf(server, options.host),
    server,
    metricsUrl: metricsServer ? `${urlOf(metricsServer, options.host)}/metrics` : undefined,
    close: async () => {
      await Promise.all([close(server), metricsServer ? close(metricsServer) : undefined]);
    },
  };
}
