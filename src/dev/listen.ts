import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';

/**
 * Listens on `host` (loopback by default) at `port` when it is free, else on any free port: the
 * dev listeners prefer a port one can bookmark (the inbox's 8025, the demo app's 8026) but must not
 * stop `authctl dev` when another process holds it. Resolves the port listened on.
 */
export async function listenPreferring(server: Server, port: number | undefined, host = '127.0.0.1'): Promise<number> {
  const listen = (at: number) =>
    new Promise<void>((resolve, reject) => {
      const onError = (err: Error) => reject(err);
      server.once('error', onError);
      server.listen(at, host, () => {
        server.off('error', onError);
        resolve();
      });
    });
  try {
    await listen(port ?? 0);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EADDRINUSE' || !port) throw err;
    await listen(0);
  }
  return (server.address() as AddressInfo).port;
}

/** Closes a dev listener now, its keep-alive connections too. */
export function closeNow(server: Server): Promise<void> {
  return new Promise<void>((resolve) => {
    server.close(() => resolve());
    server.closeAllConnections();
  });
}
