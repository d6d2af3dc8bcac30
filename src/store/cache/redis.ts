import type { Redis } from 'ioredis';
import { AppError } from '../../platform/errors.js';
import type { Logger } from '../../platform/logger.js';
import type { RevokedSession } from '../../model/session.js';
import type { Cache, CachedSession, CachedUser, CacheHealth, CacheStats } from './cache.js';
import { redisBreaker, type CircuitBreaker } from './circuit-breaker.js';
import { connectRedis, mastersOf, type RedisClient } from './redis-connection.js';

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

/** Keys per slice when one call writes many: bounds the commands in flight at once. */
const SLICE = 500;

/**
 * Redis cache (ioredis), on one server or a Redis Cluster. Keys carry a hash tag (`{id}`) and no
 * command, transaction or pipeline spans two keys, so each one is served by the master of its own
 * slot (no CROSSSLOT); whole-keyspace work (stats, flush) visits every master. Commands never
 * queue while Redis is away (`enableOfflineQueue: false`) and go through a circuit breaker, so a
 * dead Redis — or a cluster failing over — costs requests nothing: they fall back to PostgreSQL.
 * Reconnection is automatic; the health listeners hear when it is back.
 */
export class RedisCache implements Cache {
  readonly driver = 'redis' as const;
  private readonly client: RedisClient;
  private subscriber: RedisClient | undefined;
  private readonly breaker: CircuitBreaker;
  private readonly listeners: Array<(health: CacheHealth) => void> = [];
  private lastHealth: CacheHealth = 'degraded';

  constructor(private readonly opts: RedisCacheOptions) {
    this.client = this.connect();
    this.breaker = redisBreaker(() => this.emitHealth());
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
    await this.write(() => exec(this.client.multi().hset(key, fields).pexpireat(key, session.expiresAt)));
  }

  async markRevoked(sessions: RevokedSession[]): Promise<boolean> {
    if (sessions.length === 0) return true;
    // One transaction per session (its fields and its expiry together): sessions live in
    // different slots, so one transaction over all of them would be refused by a cluster.
    return this.write(() =>
      eachSlice(sessions, (s) => {
        const key = this.sessionKey(s.id);
        const expiresAt = s.expiresAt.getTime();
        return exec(this.client.multi().hset(key, { revokedAt: s.revokedAt.getTime(), expiresAt }).pexpireat(key, expiresAt));
      }),
    );
  }

  async deleteSessions(ids: string[]): Promise<void> {
    if (ids.length) await this.write(() => eachSlice(ids, (id) => this.client.unlink(this.sessionKey(id))));
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
    // Any cluster node relays a PUBLISH, even while the slots of a failed master are unserved:
    // its success must not keep the breaker closed over a keyspace that is down.
    return this.write(() => this.client.publish(this.channel(), message), { proves: false });
  }

  onRevoked(handler: (sessions: RevokedSession[]) => void): Promise<void> {
    // A subscribed connection can do nothing else: use a dedicated one. Its SUBSCRIBE may be sent
    // before the connection is up: this connection alone queues commands while offline, and
    // ioredis resubscribes it after every reconnect. In a cluster this is classic pub/sub: every
    // node relays every message, so the subscription may sit on any node, and ioredis moves it
    // to another one when its node dies (see README, Redis Cluster).
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
    let hits = 0;
    let misses = 0;
    let memoryBytes = 0;
    const keys = { sessions: 0, users: 0 };
    await this.onEveryMaster(await this.masters(), async (node) => {
      const [info, sessions, users] = await Promise.all([
        node.info(),
        this.countKeys(node, `${this.opts.keyPrefix}:sess:*`),
        this.countKeys(node, `${this.opts.keyPrefix}:user:*`),
      ]);
      hits += infoNumber(info, 'keyspace_hits');
      misses += infoNumber(info, 'keyspace_misses');
      memoryBytes += infoNumber(info, 'used_memory');
      keys.sessions += sessions;
      keys.users += users;
    });
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
    await this.onEveryMaster(await this.masters(), async (node) => {
      for (const pattern of [`${this.opts.keyPrefix}:sess:*`, `${this.opts.keyPrefix}:user:*`]) {
        let cursor = '0';
        do {
          const [next, batch] = await node.scan(cursor, 'MATCH', pattern, 'COUNT', 500);
          cursor = next;
          // One UNLINK per key (keys of different hash slots cannot share a command in a cluster),
          // pipelined on this node's own connection.
          const results = await node.pipeline(batch.map((key) => ['unlink', key])).exec();
          for (const [err, n] of results ?? []) {
            if (err) throw err;
            deleted += Number(n);
          }
        } while (cursor !== '0');
      }
    });
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

  private connect({ offlineQueue = false } = {}): RedisClient {
    return connectRedis(this.opts.url, { cluster: this.opts.cluster, commandTimeoutMs: this.opts.commandTimeoutMs, offlineQueue });
  }

  private async masters(): Promise<Redis[]> {
    try {
      return await mastersOf(this.client);
    } catch (err) {
      throw unavailable(err);
    }
  }

  /** Runs `work` on each master; a master that does not answer (a cluster failing over) is `unavailable`. */
  private async onEveryMaster(nodes: Redis[], work: (node: Redis) => Promise<void>): Promise<void> {
    try {
      await Promise.all(nodes.map(work));
    } catch (err) {
      throw unavailable(err);
    }
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
  private async write(op: () => Promise<unknown>, options?: { proves: boolean }): Promise<boolean> {
    try {
      await this.breaker.run(op, options);
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

/** Runs `perItem` on every item, a slice at a time; rejects if any call did. */
async function eachSlice<T>(items: T[], perItem: (item: T) => Promise<unknown>): Promise<void> {
  for (let i = 0; i < items.length; i += SLICE) await Promise.all(items.slice(i, i + SLICE).map(perItem));
}

/** EXEC, failing when any command inside the transaction failed (ioredis resolves those). */
async function exec(tx: ReturnType<RedisClient['multi']>): Promise<void> {
  for (const [err] of (await tx.exec()) ?? []) if (err) throw err;
}

function unavailable(cause: unknown): AppError {
  return new AppError('unavailable', 'a Redis node did not answer (a cluster failing over answers again within seconds): retry', { cause });
}

function infoNumber(info: string, field: string): number {
  const match = new RegExp(`^${field}:(\\d+)`, 'm').exec(info);
  return match ? Number(match[1]) : 0;
}
