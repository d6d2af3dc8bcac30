import type { Container } from '../src/container.js';
import { startServer, type RunningServer } from '../src/server.js';

/** Serves until SIGINT/SIGTERM, then closes the listener (in-flight requests finish) and the container. */
export async function serveUntilSignal(
  container: Container,
  http: { host: string; port: number; metricsServer?: boolean },
  onListening: (server: RunningServer) => void,
): Promise<void> {
  const server = await startServer(container, http);
  // Listen for the signals before saying we listen: whoever reads that line may stop us at once,
  // and a signal with no listener yet would kill the process without a graceful stop.
  const stopped = new Promise<NodeJS.Signals>((resolve) => {
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
