import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { Server as NetServer, type AddressInfo, type Socket } from 'node:net';
import type { Container } from './container.js';
import { Registry } from 'prom-client';
import { createApp } from './http/app.js';
import { assertSecretOpensKeys, startBackground } from './runtime.js';

const PROMETHEUS_CONTENT_TYPE = Registry.PROMETHEUS_CONTENT_TYPE;

/**
 * Behind a proxy, how long a stopping server leaves idle keep-alive connections for the proxy to
 * close. Longer than docker/nginx.conf's upstream `keepalive_timeout` (4 s), so nginx always closes
 * them first: a connection closed from this side can cross a request nginx is just sending on it,
 * and nginx retries no POST it has sent.
 */
export const PROXY_IDLE_GRACE_MS = 5_000;
/** A stopping server cuts whatever is still open after this. */
const FORCE_CLOSE_MS = 10_000;

/** How a graceful close went (logged as `server.stopped`). */
export interface CloseResult {
  durationMs: number;
  /** Idle keep-alive connections this side closed (the client had not closed them by then). */
  closedIdle: number;
  /** Connections cut with a request still running after the force deadline. */
  cut: number;
}

export interface RunningServer {
  url: string;
  server: Server;
  /** Where /metrics is served when `http.metricsPort` is set. */
  metricsUrl: string | undefined;
  close(): Promise<CloseResult>;
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

export function listen(server: NetServer, host: string, port: number): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    server.once('listening', resolve);
    server.once('error', reject);
    server.listen(port, host);
  });
}

export function urlOf(server: NetServer, host: string): string {
  const { port } = server.address() as AddressInfo;
  const shown = host === '0.0.0.0' ? '127.0.0.1' : host.includes(':') ? `[${host}]` : host;
  return `http://${shown}:${port}`;
}

/** The request handlers still running (their connection may be gone already). */
class InFlight {
  private count = 0;
  private waiters: Array<() => void> = [];

  track(handling: Promise<unknown>): void {
    this.count += 1;
    void handling.finally(() => {
      this.count -= 1;
      if (this.count === 0) for (const wake of this.waiters.splice(0)) wake();
    });
  }

  /** Resolves when no handler runs, or after `limitMs`. */
  settled(limitMs: number): Promise<void> {
    if (this.count === 0) return Promise.resolve();
    return new Promise((resolve) => {
      const timer = setTimeout(resolve, limitMs);
      this.waiters.push(() => {
        clearTimeout(timer);
        resolve();
      });
    });
  }
}

/**
 * Graceful close for a server: stop listening at once (a balancer's next connection is refused and
 * it retries another server — safe for any method, nothing was sent), answer every request still to
 * come on an open connection with `Connection: close`, let requests in flight finish, and leave idle
 * keep-alive connections to the client for `idleGraceMs` before closing them from this side.
 * Anything still open after {@link FORCE_CLOSE_MS} is cut. A server that takes its connections
 * from a cluster primary has no listener of its own: the primary has closed its one already.
 */
function drainable(server: Server): (idleGraceMs: number) => Promise<CloseResult> {
  const sockets = new Set<Socket>();
  // The latest response of each connection: the one to mark when the drain starts mid-request.
  const latest = new WeakMap<Socket, ServerResponse>();
  let draining = false;
  let onClosed = () => undefined as void;
  server.on('connection', (socket: Socket) => {
    sockets.add(socket);
    socket.once('close', () => {
      sockets.delete(socket);
      onClosed();
    });
  });
  const lastOne = (res: ServerResponse) => {
    if (!res.headersSent) res.setHeader('connection', 'close');
  };
  const busy = () => [...sockets].filter((socket) => latest.get(socket)?.writableEnded === false).length;
  // Registered before the application's listener, so it runs first.
  server.on('request', (req: IncomingMessage, res: ServerResponse) => {
    latest.set(req.socket, res);
    if (draining) lastOne(res);
  });
  return (idleGraceMs) => {
    const started = Date.now();
    draining = true;
    for (const socket of sockets) {
      const res = latest.get(socket);
      if (res) lastOne(res);
    }
    const result: CloseResult = { durationMs: 0, closedIdle: 0, cut: 0 };
    return new Promise<CloseResult>((resolve, reject) => {
      let listening = server.listening;
      const timers = [
        setTimeout(() => {
          result.closedIdle = sockets.size - busy();
          server.closeIdleConnections();
        }, idleGraceMs),
        setTimeout(() => {
          result.cut = sockets.size;
          server.closeAllConnections();
        }, FORCE_CLOSE_MS),
      ];
      const finish = (err?: Error) => {
        for (const timer of timers) clearTimeout(timer);
        if (err) return reject(err);
        result.durationMs = Date.now() - started;
        resolve(result);
      };
      onClosed = () => {
        if (!listening && sockets.size === 0) finish();
      };
      // node:http's own close() also drops idle connections at once: close only the listener.
      if (listening)
        NetServer.prototype.close.call(server, (err?: Error) => {
          listening = false;
          if (err) finish(err);
          else onClosed();
        });
      else onClosed();
    });
  };
}

export interface ServerOptions {
  host: string;
  port: number;
  metricsServer?: boolean;
  /** Where connections come from instead of listening on host:port (a cluster worker); resolves with the URL. */
  accept?: (server: Server) => Promise<string>;
}

/**
 * Starts the HTTP server: background loading of keys and revocations first (best effort — the
 * server also starts while PostgreSQL is down and becomes ready by itself), then listen; a server
 * secret that cannot unseal the signing key stops it before it listens (`bad_config`).
 */
export async function startServer(container: Container, options: ServerOptions): Promise<RunningServer> {
  await startBackground(container);
  assertSecretOpensKeys(container);
  const handle = createApp(container).callback();
  const server = createServer();
  const close = drainable(server);
  const handlers = new InFlight();
  server.on('request', (req: IncomingMessage, res: ServerResponse) => {
    handlers.track(handle(req, res));
  });
  // Keep-alive longer than typical load balancers' idle timeout (60 s), so they close first.
  server.keepAliveTimeout = 65_000;
  const url = options.accept ? await options.accept(server) : await listen(server, options.host, options.port).then(() => urlOf(server, options.host));
  const metricsPort = container.config.http.metricsPort;
  const metricsServer =
    metricsPort === undefined || options.metricsServer === false ? undefined : await startMetricsServer(container.metrics.render, options.host, metricsPort);
  const closeMetrics = metricsServer ? drainable(metricsServer) : undefined;
  // Every connection comes from the proxy, which pools them and retries no request it has sent.
  const idleGraceMs = container.config.http.trustProxy ? PROXY_IDLE_GRACE_MS : 0;
  return {
    url,
    server,
    metricsUrl: metricsServer ? `${urlOf(metricsServer, options.host)}/metrics` : undefined,
    close: async () => {
      const started = Date.now();
      const [result] = await Promise.all([close(idleGraceMs), closeMetrics?.(0)]);
      // A client that hung up leaves its request running (a login in argon2id, say): whoever
      // closes the container next must not pull the database from under it.
      await handlers.settled(Math.max(0, FORCE_CLOSE_MS - (Date.now() - started)));
      return result;
    },
  };
}
