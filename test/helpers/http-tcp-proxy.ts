import { connect, createServer, type Server, type Socket } from 'node:net';
import type { AddressInfo } from 'node:net';

/**
 * A TCP proxy in front of a real server (PostgreSQL), to cause real network faults:
 * - `stop()`: the listener closes and every connection is reset (database down);
 * - `blackhole()`: connections stay open but bytes are dropped both ways (partition, hung host);
 * - `start()`: listening again on the same port, forwarding faithfully.
 */
export class TcpProxy {
  private server: Server | undefined;
  private readonly sockets = new Set<Socket>();
  private dropping = false;
  port = 0;
  /** Connections accepted since creation. */
  accepted = 0;

  constructor(private readonly target: { host: string; port: number }) {}

  get listening(): boolean {
    return this.server !== undefined;
  }

  /** Listens (on the previous port after a stop) and forwards. */
  async start(): Promise<void> {
    if (this.server) throw new Error('proxy already listening');
    this.dropping = false;
    const server = createServer((client) => this.accept(client));
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(this.port, '127.0.0.1', () => {
        server.off('error', reject);
        resolve();
      });
    });
    this.server = server;
    this.port = (server.address() as AddressInfo).port;
  }

  /** Stops listening and resets every open connection. */
  async stop(): Promise<void> {
    const server = this.server;
    this.server = undefined;
    this.resetAll();
    if (server) await new Promise<void>((resolve) => server.close(() => resolve()));
  }

  get blackholed(): boolean {
    return this.dropping;
  }

  /** Keeps accepting, but from now on every byte in either direction is dropped. */
  blackhole(): void {
    this.dropping = true;
  }

  /** Ends a blackhole: the (corrupted) connections are reset and traffic flows again. */
  heal(): void {
    this.resetAll();
    this.dropping = false;
  }

  private resetAll(): void {
    for (const socket of this.sockets) socket.destroy();
    this.sockets.clear();
  }

  private accept(client: Socket): void {
    this.accepted++;
    const upstream = connect(this.target.port, this.target.host);
    for (const socket of [client, upstream]) {
      this.sockets.add(socket);
      socket.on('close', () => this.sockets.delete(socket));
      socket.on('error', () => {
        client.destroy();
        upstream.destroy();
      });
    }
    client.on('close', () => upstream.destroy());
    upstream.on('close', () => client.destroy());
    // Explicit forwarding (not pipe) so that a blackhole can drop bytes on live connections.
    client.on('data', (chunk: Buffer) => {
      if (!this.dropping) upstream.write(chunk);
    });
    upstream.on('data', (chunk: Buffer) => {
      if (!this.dropping) client.write(chunk);
    });
  }
}
