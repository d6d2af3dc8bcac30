import { connectionsFromPrimary, isClusterWorker } from '../src/cluster.js';
import type { Container } from '../src/container.js';
import { startServer, type RunningServer, type ServerOptions } from '../src/server.js';

/**
 * Serves until SIGINT/SIGTERM (in a cluster worker: until the primary says to drain), then closes
 * the listener (in-flight requests finish) and the container.
 */
export async function serveUntilSignal(container: Container, http: Omit<ServerOptions, 'accept'>, onListening: (server: RunningServer) => void): Promise<void> {
  const primary = isClusterWorker() ? connectionsFromPrimary() : undefined;
  const server = await startServer(container, { ...http, accept: primary?.accept });
  // Listen for the signals before saying we listen: whoever reads that line may stop us at once,
  // and a signal with no listener yet would kill the process without a graceful stop.
  const stopped =
    primary?.drain ??
    new Promise<NodeJS.Signals>((resolve) => {
      process.once('SIGINT', resolve);
      process.once('SIGTERM', resolve);
    });
  container.log.info('listening', { event: 'server.started', url: server.url });
  onListening(server);
  const signal = await stopped;
  container.log.info('shutting down', { event: 'server.stopping', signal });
  const closed = await server.close();
  // Behind a proxy, a connection closed from this side may have crossed a request on its way.
  const lossy = closed.cut > 0 || (container.config.http.trustProxy && closed.closedIdle > 0);
  container.log[lossy ? 'warn' : 'info']('stopped serving', { event: 'server.stopped', ...closed });
}
