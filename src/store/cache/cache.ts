import type { RevokedSession } from '../../model/session.js';

/**
 * Session state as the cache holds it (times in epoch ms). The cache is never the source of
 * truth: it may lag PostgreSQL, so it is only ever used to refuse early (a session it knows to
 * be revoked or expired) or to skip a read whose result cannot change a security decision.
 */
export interface CachedSession {
  id: string;
  expiresAt: number;
  revokedAt: number | null;
  /** Absent when only the revocation is known (a revocation marks the entry without reading it). */
  userId?: string;
  counter?: number;
  rotatedAt?: number;
}

/** The public profile of a user, for Bearer routes (`/v1/me`). */
export interface CachedUser {
  id: string;
  username: string | null;
  email: string | null;
  emailVerified: boolean;
  homeRegion: string;
  createdAt: string;
}

export type CacheHealth = 'ok' | 'degraded';

export interface CacheStats {
  driver: 'memory' | 'redis';
  health: CacheHealth;
  /** Hits and misses: the server's own counters for Redis (INFO stats), this process's for memory. */
  hits: number;
  misses: number;
  hitRatio: number | null;
  /** authctl's keys under this cache's prefix. */
  keys: { sessions: number; users: number };
  memoryBytes: number | null;
}

/**
 * The region's cache. Every method is best effort: on any failure (Redis down, circuit open)
 * reads resolve `undefined` and writes resolve quietly, so callers fall back to PostgreSQL and
 * never fail a request because of the cache. `health()` tells whether it is currently usable.
 */
export interface Cache {
  readonly driver: 'memory' | 'redis';
  getSession(id: string): Promise<CachedSession | undefined>;
  /** Stores with TTL = remaining life of the session. */
  putSession(session: CachedSession): Promise<void>;
  /** Marks sessions revoked (creating the entry if needed) without reading them. Resolves false on failure. */
  markRevoked(sessions: RevokedSession[]): Promise<boolean>;
  deleteSessions(ids: string[]): Promise<void>;
  getUser(id: string): Promise<CachedUser | undefined>;
  putUser(user: CachedUser): Promise<void>;
  deleteUser(id: string): Promise<void>;
  /** Broadcasts revocations to every server of the region (pub/sub). Resolves false if not sent. */
  publishRevoked(sessions: RevokedSession[]): Promise<boolean>;
  /** Subscribes to revocations published by any server of the region. */
  onRevoked(handler: (sessions: RevokedSession[]) => void): Promise<void>;
  health(): CacheHealth;
  /** Waits up to `timeoutMs` for the cache to become usable; resolves whether it is. */
  ready(timeoutMs: number): Promise<boolean>;
  /** Called with the new health on every change (degraded ↔ ok). */
  onHealthChange(listener: (health: CacheHealth) => void): void;
  stats(): Promise<CacheStats>;
  /** A cached session and its remaining TTL in seconds (for `authctl cache inspect`). */
  inspect(sessionId: string): Promise<{ session: CachedSession | undefined; ttlSeconds: number | null }>;
  /** Removes authctl's keys (under this prefix); returns how many. */
  flush(): Promise<number>;
  close(): Promise<void>;
}
