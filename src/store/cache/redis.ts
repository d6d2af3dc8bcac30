import { Cluster, Redis } from 'ioredis';
import type { Logger } from '../../platform/logger.js';
import type { RevokedSession } from '../../model/session.js';
import type { Cache, CachedSession, CachedUser, CacheHealth, CacheStats } from './cache.js';
import { CircuitBreaker } from './circuit-breaker.js';

export interface RedisCacheOptions {
  url: string;
  cluster: boolean;
  keyPrefix: string;
  commandTimeoutMs: number;
  userTtlSeconds: number;
  log: Logger;
  /** Counts lookups for metrics. */
  onLookup?: (kind: 'session' | 'user', result: 'hit' | 'miss' | 'error') => void;
}

type Client = Redis | Cluster;

/**
 * Redis cache (ioredis). Keys carry a hash tag (`{id}`) so Redis Cluster works by configuration
 * alone. Commands never queue while Redis is away (`enableOfflineQueue: false`) and go through a
 * circuit breaker, so a dead Redis costs requests nothing: they fall back to PostgreSQL.
 * Reconnection is automatic; the health listeners hear when it is back.
 */
export class RedisCache implements Cache {
  readonly driver = 'redis' as const;
  private readonly client: Client;
  private subscriber: Client | undefined;
  private readonly breaker: CircuitBreaker;
  private readonly listeners: Array<(health: CacheHealth) => void> = [];
  private lastHealth: CacheHealth = 'degraded';

  constructor(private readonly opts: RedisCacheOptions) {
    this.client = this.connect();
    this.breaker = new CircuitBreaker({ failureThreshold: 3, openMs: 500, maxOpenMs: 5_000, onStateChange: () => this.emitHealth() });
    this.client.on('ready', () => {
      this.breaker.reset();
      this.emitHealth();
    });
    this.client.on('close', () => this.emitHealth());
    // ioredis emits 'error' on every failed reconnect; the health transition is what we log.
    this.client.on('error', () => undefined);
  }

  /** Waits (bounded) for the connection, so a server starts with a warm path when it can. */
  async ready(timeoutMs: number): Promise<boolean> {
    if (this.client.status !== 'ready') {
      await new Promise<void>((resolve) => {
        const timer = setTimeout(done, timeoutMs);
        this.client.once('ready', done);
        const client = this.client;
        function done() {
          clearTimeout(timer);
          client.off('ready', done);
          resolve();
        }
      });
    }
    return this.health() === 'ok';
  }

  async getSession(id: string): Promise<CachedSession | undefined> {
    const fields = await this.attempt('session', () => this.client.hgetall(this.sessionKey(id)));
    if (!fields || fields.expiresAt === undefined) {
      if (fields) this.opts.onLookup?.('session', 'miss');
      return undefined;
    }
    this.opts.onLookup?.('session', 'hit');
    return {
      id,
      expiresAt: Number(fields.expiresAt),
      revokedAt: fields.revokedAt ? Number(fields.revokedAt) : null,
      ...(fields.userId ? { userId: fields.userId } : {}),
      ...(fields.counter ? { counter: Number(fields.counter) } : {}),
      ...(fields.rotatedAt ? { rotatedAt: Number(fields.rotatedAt) } : {}),
    };
  }

  async putSession(session: CachedSession): Promise<void> {
    const key = this.sessionKey(session.id);
    const fields: Record<string, string | number> = { expiresAt: session.expiresAt };
    if (session.userId !== undefined) fields.userId = session.userId;
    if (session.counter !== undefined) fields.counter = session.counter;
    if (session.rotatedAt !== undefined) fields.rotatedAt = session.rotatedAt;
    // revokedAt is only ever added, never cleared: a revocation is final, so a late write of an
    // older state must not resurrect the session in the cache.
    if (session.revokedAt !== null) fields.revokedAt = session.revokedAt;
    await this.write(() => this.client.multi().hset(key, fields).pexpireat(key, session.expiresAt).exec());
  }

  async markRevoked(sessions: RevokedSession[]): Promise<boolean> {
    if (sessions.length === 0) return true;
    return this.write(() => {
      const tx = this.client.multi();
      for (const s of sessions) {
        const key = this.sessionKey(s.id);
        tx.hset(key, { revokedAt: s.revokedAt.getTime(), expiresAt: s.expiresAt.getTime() }).pexpireat(key, s.expiresAt.getTime());
      }
      return tx.exec();
    });
  }

  async deleteSessions(ids: string[]): Promise<void> {
    if (ids.length) await this.write(() => this.client.del(...ids.map((id) => this.sessionKey(id))));
  }

  async getUser(id: string): Promise<CachedUser | undefined> {
    const raw = await this.attempt('user', () => this.client.get(this.userKey(id)));
    if (raw === undefined) return undefined;
    this.opts.onLookup?.('user', raw === null ? 'miss' : 'hit');
    if (raw === null) return undefined;
    const user = JSON.parse(raw) as CachedUser;
    // Written by a version without addresses: a miss, so the profile is read again.
    return typeof user.emailVerified === 'boolean' ? user : undefined;
  }

  async putUser(user: CachedUser): Promise<void> {
    await this.write(() => this.client.set(this.userKey(user.id), JSON.stringify(user), 'EX', this.opts.userTtlSeconds));
  }

  async deleteUser(id: string): Promise<void> {
    await this.write(() => this.client.del(this.userKey(id)));
  }

  async publishRevoked(sessions: RevokedSession[]): Promise<boolean> {
    const message = JSON.stringify(sessions.map((s) => ({ id: s.id, revokedAt: s.revokedAt.getTime(), expiresAt: s.expiresAt.getTime() })));
    return this.write(() => this.client.publish(this.channel(), message));
  }

  onRevoked(handler: (sessions: RevokedSession[]) => void): Promise<void> {
    // A subscribed connection can do nothing else: use a dedicated one. ioredis resubscribes by
    // itself after a reconnect.
    // Its SUBSCRIBE may be sent before the connection is up: this connection alone queues
    // commands while offline, and ioredis resubscribes it after every reconnect.
    this.subscriber ??= this.connect({ offlineQueue: true });
    this.subscriber.on('error', () => undefined);
    this.subscriber.on('message', (channel: string, message: string) => {
      if (channel !== this.channel()) return;
      try {
        const items = JSON.parse(message) as Array<{ id: string; revokedAt: number; expiresAt: number }>;
        handler(items.map((i) => ({ id: i.id, revokedAt: new Date(i.revokedAt), expiresAt: new Date(i.expiresAt) })));
      } catch (err) {
        this.opts.log.warn('malformed revocation message ignored', { event: 'cache.bad_message', err });
      }
    });
    this.subscriber.subscribe(this.channel()).catch((err: unknown) => {
      this.opts.log.warn('cannot subscribe to revocations; the database poll still delivers them', { event: 'cache.subscribe_failed', err });
    });
    return Promise.resolve();
  }

  health(): CacheHealth {
    return this.client.status === 'ready' && this.breaker.state === 'closed' ? 'ok' : 'degraded';
  }

  onHealthChange(listener: (health: CacheHealth) => void): void {
    this.listeners.push(listener);
  }

  async stats(): Promise<CacheStats> {
    const nodes = this.masters();
    let hits = 0;
    let misses = 0;
    let memoryBytes = 0;
    const keys = { sessions: 0, users: 0 };
    for (const node of nodes) {
      const info = await node.info();
      hits += infoNumber(info, 'keyspace_hits');
      misses += infoNumber(info, 'keyspace_misses');
      memoryBytes += infoNumber(info, 'used_memory');
      keys.sessions += await this.countKeys(node, `${this.opts.keyPrefix}:sess:*`);
      keys.users += await this.countKeys(node, `${this.opts.keyPrefix}:user:*`);
    }
    const total = hits + misses;
    return { driver: this.driver, health: this.health(), hits, misses, hitRatio: total ? hits / total : null, keys, memoryBytes };
  }

  async inspect(sessionId: string): Promise<{ session: CachedSession | undefined; ttlSeconds: number | null }> {
    const session = await this.getSession(sessionId);
    const ttlMs = session ? ((await this.attempt('session', () => this.client.pttl(this.sessionKey(sessionId)))) ?? -2) : -2;
    return { session, ttlSeconds: ttlMs >= 0 ? Math.ceil(ttlMs / 1000) : null };
  }

  async flush(): Promise<number> {
    let deleted = 0;
    // Only our own key shapes: another region's prefix may extend ours (`authctl` vs `authctl:eu`).
    for (const node of this.masters()) {
      for (const pattern of [`${this.opts.keyPrefix}:sess:*`, `${this.opts.keyPrefix}:user:*`]) {
        let cursor = '0';
        do {
          const [next, batch] = await node.scan(cursor, 'MATCH', pattern, 'COUNT', 500);
          cursor = next;
          // One UNLINK per key: keys of different hash slots cannot share a command in a cluster.
          for (const key of batch) deleted += await node.unlink(key);
        } while (cursor !== '0');
      }
    }
    return deleted;
  }

  /** Sends what is in flight (e.g. a CLI's revocation broadcast), then disconnects; bounded. */
  async close(): Promise<void> {
    this.subscriber?.disconnect();
    if (this.client.status !== 'ready') {
      this.client.disconnect();
      return;
    }
    const timer = setTimeout(() => this.client.disconnect(), 1_000);
    await this.client.quit().catch(() => undefined);
    clearTimeout(timer);
  }

  private connect({ offlineQueue = false } = {}): Client {
    const options = {
      enableOfflineQueue: offlineQueue,
      maxRetriesPerRequest: 0,
      commandTimeout: this.opts.commandTimeoutMs,
      connectTimeout: 2_000,
      // ioredis arms this timer even for a socket that already failed, and it holds the process
      // open: keep it short so a CLI exits promptly when Redis is down.
      disconnectTimeout: 200,
      // Keep trying every 0.1–2 s for as long as it takes: the region works meanwhile.
      retryStrategy: (times: number) => Math.min(times * 100, 2_000),
    };
    if (this.opts.cluster) {
      const url = new URL(this.opts.url);
      return new Cluster([{ host: url.hostname, port: Number(url.port || 6379) }], {
        enableOfflineQueue: offlineQueue,
        clusterRetryStrategy: options.retryStrategy,
        redisOptions: { ...options, password: url.password || undefined, username: url.username || undefined },
      });
    }
    return new Redis(this.opts.url, options);
  }

  private masters(): Redis[] {
    return this.client instanceof Cluster ? this.client.nodes('master') : [this.client];
  }

  private async countKeys(node: Redis, pattern: string): Promise<number> {
    let cursor = '0';
    let count = 0;
    do {
      const [next, batch] = await node.scan(cursor, 'MATCH', pattern, 'COUNT', 1000);
      cursor = next;
      count += batch.length;
    } while (cursor !== '0');
    return count;
  }

  /** A read through the breaker; `undefined` when Redis could not answer. */
  private async attempt<T>(kind: 'session' | 'user', read: () => Promise<T>): Promise<T | undefined> {
    try {
      return await this.breaker.run(read);
    } catch {
      this.opts.onLookup?.(kind, 'error');
      return undefined;
    }
  }

  /** A write through the breaker; false when it did not happen. */
  private async write(op: () => Promise<unknown>): Promise<boolean> {
    try {
      await this.breaker.run(op);
      return true;
    } catch {
      return false;
    }
  }

  private emitHealth(): void {
    const health = this.health();
    if (health === this.lastHealth) return;
    this.lastHealth = health;
    for (const listener of this.listeners) listener(health);
  }

  private sessionKey(id: string): string {
    return `${this.opts.keyPrefix}:sess:{${id}}`;
  }

  private userKey(id: string): string {
    return `${this.opts.keyPrefix}:user:{${id}}`;
  }

  private channel(): string {
    return `${this.opts.keyPrefix}:revoked`;
  }
}

function infoNumber(info: string, field: string): number {
  const match = new RegExp(`^${field}:(\\d+)`, 'm').exec(info);
  return match ? Number(match[1]) : 0;
}
