import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { createServer, Socket } from 'node:net';
import { Redis } from 'ioredis';

/** The Redis every test shares (DEVELOPERS.md: 127.0.0.1:6379). */
export const REDIS_URL = process.env.AUTHCTL_TEST_REDIS_URL ?? 'redis://127.0.0.1:6379';

/** A key prefix of its own for one test file: `t-<label>-<random>` (valid for cache.keyPrefix). */
export function uniquePrefix(label: string): string {
  return `t-${label.replace(/[^A-Za-z0-9_-]/g, '-').slice(0, 30)}-${randomBytes(4).toString('hex')}`;
}

/** Deletes every key under `prefix:` (tests clean up after themselves). */
export async function deleteKeys(url: string, prefix: string): Promise<number> {
  const redis = new Redis(url, { lazyConnect: true, maxRetriesPerRequest: 1 });
  try {
    await redis.connect();
    let deleted = 0;
    let cursor = '0';
    do {
      const [next, batch] = await redis.scan(cursor, 'MATCH', `${prefix}:*`, 'COUNT', 500);
      cursor = next;
      for (const key of batch) deleted += await redis.unlink(key);
    } while (cursor !== '0');
    return deleted;
  } finally {
    redis.disconnect();
  }
}

/** A port nothing listens on right now. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      const port = typeof address === 'object' && address ? address.port : 0;
      server.close(() => resolve(port));
    });
  });
}

export function canConnect(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = new Socket();
    const done = (ok: boolean) => {
      socket.destroy();
      resolve(ok);
    };
    socket.setTimeout(500, () => done(false));
    socket.once('error', () => done(false));
    socket.connect(port, '127.0.0.1', () => done(true));
  });
}

/**
 * A private redis-server child process (no persistence, loopback only) that a fault test can
 * kill and restart on the same port.
 */
export class RedisServerProcess {
  private child: ChildProcess | undefined;
  private output = '';

  constructor(readonly port: number) {}

  static async start(): Promise<RedisServerProcess> {
    const server = new RedisServerProcess(await freePort());
    await server.start();
    return server;
  }

  get url(): string {
    return `redis://127.0.0.1:${this.port}`;
  }

  get running(): boolean {
    return this.child !== undefined && this.child.exitCode === null && this.child.signalCode === null;
  }

  /** Starts redis-server and waits (bounded) until it answers PING. */
  async start(limitMs = 5_000): Promise<void> {
    if (this.running) throw new Error('redis-server already running');
    this.output = '';
    const child = spawn('redis-server', ['--port', String(this.port), '--save', '', '--appendonly', 'no', '--bind', '127.0.0.1'], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    this.child = child;
    child.stdout?.on('data', (chunk: Buffer) => (this.output += chunk.toString()));
    child.stderr?.on('data', (chunk: Buffer) => (this.output += chunk.toString()));
    const started = Date.now();
    while (Date.now() - started < limitMs) {
      if (!this.running) throw new Error(`redis-server exited at start:\n${this.output}`);
      if (await this.ping()) return;
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    await this.kill();
    throw new Error(`redis-server did not answer PING within ${limitMs} ms:\n${this.output}`);
  }

  async ping(): Promise<boolean> {
    if (!(await canConnect(this.port))) return false;
    const redis = new Redis(this.url, { lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null, connectTimeout: 500 });
    redis.on('error', () => undefined);
    try {
      await redis.connect();
      return (await redis.ping()) === 'PONG';
    } catch {
      return false;
    } finally {
      redis.disconnect();
    }
  }

  /** SIGKILL (a crash, not a shutdown); resolves once the process is gone and the port is closed. */
  async kill(): Promise<void> {
    const child = this.child;
    if (!child) return;
    if (this.running) {
      const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
      child.kill('SIGKILL');
      await exited;
    }
    this.child = undefined;
    for (let i = 0; i < 50 && (await canConnect(this.port)); i++) await new Promise((resolve) => setTimeout(resolve, 20));
  }
}
