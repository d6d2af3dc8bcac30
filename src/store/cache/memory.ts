import { EventEmitter } from 'node:events';
import type { Clock } from '../../platform/clock.js';
import type { RevokedSession } from '../../model/session.js';
import type { Cache, CachedSession, CachedUser, CacheHealth, CacheStats } from './cache.js';

interface Entry<T> {
  value: T;
  expiresAt: number;
}

/**
 * In-process cache (LRU + TTL) for `authctl dev` and single-process installs. Its pub/sub only
 * reaches the same process, which is all a single process needs.
 */
export class MemoryCache implements Cache {
  readonly driver = 'memory' as const;
  private readonly sessions = new Map<string, Entry<CachedSession>>();
  private readonly users = new Map<string, Entry<CachedUser>>();
  private readonly bus = new EventEmitter();
  private hits = 0;
  private misses = 0;

  constructor(
    private readonly opts: {
      clock: Clock;
      userTtlSeconds: number;
      maxEntries?: number;
      onLookup?: (kind: 'session' | 'user', result: 'hit' | 'miss' | 'error') => void;
    },
  ) {}

  /** {@link getUser} without the promise, for callers that know this cache is in-process. */
  peekUser(id: string): CachedUser | undefined {
    return this.read(this.users, id, 'user');
  }

  getSession(id: string): Promise<CachedSession | undefined> {
    return Promise.resolve(this.read(this.sessions, id, 'session'));
  }

  putSession(session: CachedSession): Promise<void> {
    this.write(this.sessions, session.id, session, session.expiresAt);
    return Promise.resolve();
  }

  markRevoked(revoked: RevokedSession[]): Promise<boolean> {
    for (const r of revoked) {
      const known = this.sessions.get(r.id)?.value;
      const expiresAt = r.expiresAt.getTime();
      this.write(this.sessions, r.id, { ...known, id: r.id, expiresAt, revokedAt: r.revokedAt.getTime() }, expiresAt);
    }
    return Promise.resolve(true);
  }

  deleteSessions(ids: string[]): Promise<void> {
    for (const id of ids) this.sessions.delete(id);
    return Promise.resolve();
  }

  getUser(id: string): Promise<CachedUser | undefined> {
    return Promise.resolve(this.read(this.users, id, 'user'));
  }

  putUser(user: CachedUser): Promise<void> {
    this.write(this.users, user.id, user, this.now() + this.opts.userTtlSeconds * 1000);
    return Promise.resolve();
  }

  deleteUser(id: string): Promise<void> {
    this.users.delete(id);
    return Promise.resolve();
  }

  publishRevoked(sessions: RevokedSession[]): Promise<boolean> {
    this.bus.emit('revoked', sessions);
    return Promise.resolve(true);
  }

  onRevoked(handler: (sessions: RevokedSession[]) => void): Promise<void> {
    this.bus.on('revoked', handler);
    return Promise.resolve();
  }

  health(): CacheHealth {
    return 'ok';
  }

  ready(): Promise<boolean> {
    return Promise.resolve(true);
  }

  onHealthChange(): void {
    // Never changes.
  }

  stats(): Promise<CacheStats> {
    const total = this.hits + this.misses;
    return Promise.resolve({
      driver: this.driver,
      health: 'ok',
      hits: this.hits,
      misses: this.misses,
      hitRatio: total ? this.hits / total : null,
      keys: { sessions: this.sessions.size, users: this.users.size },
      memoryBytes: null,
    });
  }

  inspect(sessionId: string): Promise<{ session: CachedSession | undefined; ttlSeconds: number | null }> {
    const entry = this.sessions.get(sessionId);
    const live = entry && entry.expiresAt > this.now() ? entry : undefined;
    return Promise.resolve({ session: live?.value, ttlSeconds: live ? Math.ceil((live.expiresAt - this.now()) / 1000) : null });
  }

  flush(): Promise<number> {
    const count = this.sessions.size + this.users.size;
    this.sessions.clear();
    this.users.clear();
    return Promise.resolve(count);
  }

  close(): Promise<void> {
    this.bus.removeAllListeners();
    return Promise.resolve();
  }

  private now(): number {
    return this.opts.clock.now().getTime();
  }

  private read<T>(map: Map<string, Entry<T>>, key: string, kind: 'session' | 'user'): T | undefined {
    const entry = map.get(key);
    if (!entry || entry.expiresAt <= this.now()) {
      if (entry) map.delete(key);
      this.misses++;
      this.opts.onLookup?.(kind, 'miss');
      return undefined;
    }
    this.opts.onLookup?.(kind, 'hit');
    // Re-insert to keep Map order = recency (LRU).
    map.delete(key);
    map.set(key, entry);
    this.hits++;
    return entry.value;
  }

  private write<T>(map: Map<string, Entry<T>>, key: string, value: T, expiresAt: number): void {
    if (expiresAt <= this.now()) return;
    map.delete(key);
    map.set(key, { value, expiresAt });
    const max = this.opts.maxEntries ?? 100_000;
    while (map.size > max) map.delete(map.keys().next().value!);
  }
}
