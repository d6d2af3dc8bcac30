import { z } from 'zod';
import type { Config } from '../../config/schema.js';
import { AppError } from '../../platform/errors.js';
import type { Logger } from '../../platform/logger.js';
import type { ApplyResult, PeerBacklog, ReplicationRepo } from '../../store/pg/replication-repo.js';
import type { Clock } from '../../platform/clock.js';
import type { KeyRing } from '../keys/key-ring.js';
import type { SessionService } from '../sessions/session-service.js';
import type { ReplicationMetrics } from './metrics.js';
import { HEADER_SIGNATURE, HEADER_TIMESTAMP, SIGNATURE_WINDOW_MS, verifyRequest } from './signature.js';
import { Shipper } from './shipper.js';

export type Peer = Config['regions']['peers'][number];

export interface ReplicationServiceOptions {
  repo: ReplicationRepo;
  config: Config;
  clock: Clock;
  log: Logger;
  metrics: ReplicationMetrics;
  /**
   * Applied batches run through the sessions' one revocation path, so a revocation a batch brings
   * (or a session that arrives already revoked) is refused here at once, on the region's other
   * servers by pub/sub, and early by the cache, exactly like a local one. Its MAC check also keeps
   * forged refresh tokens from being proxied to their home region.
   */
  sessions: Pick<SessionService, 'revokeWithin' | 'sessionIdOf'>;
  /** Reloaded when a batch changed signing keys. */
  keys: Pick<KeyRing, 'load'>;
  fetch?: typeof fetch;
}

/** `authctl replication status`, one row per peer. */
export interface PeerStatus {
  peer: string;
  url: string;
  backlog: number;
  deadLettered: number;
  oldestPendingSeconds: number | null;
  lagP50Ms: number | null;
  lagP99Ms: number | null;
  lastSuccessAt: string | null;
  lastError: string | null;
  lastErrorAt: string | null;
  retryingUntil: string | null;
}

export interface Region {
  name: string;
  url: string | null;
  local: boolean;
}

/** A region's answer to a proxied refresh, relayed to the client as it is. */
export interface ProxiedResponse {
  status: number;
  body: unknown;
}

const batchSchema = z.strictObject({
  origin: z.string(),
  batchId: z.string().min(1).max(200),
  changes: z
    .array(z.strictObject({ entity: z.enum(['users', 'users_deleted', 'sessions', 'signing_keys']), payload: z.record(z.string(), z.unknown()) }))
    .max(10_000),
});

const HOME_OF_TOKEN = /^rt_([a-z][a-z0-9-]{0,31})_/;

function percentile(sorted: number[], p: number): number | null {
  if (sorted.length === 0) return null;
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)]!;
}

/**
 * Multi-region replication (docs/architecture.md#replication-between-regions): receives and applies peers' batches, ships
 * this region's changes (the {@link Shipper}, in the workers), proxies refreshes of sessions
 * homed elsewhere, and reports per-peer status.
 */
export class ReplicationService {
  private shipper: Shipper | undefined;

  constructor(private readonly opts: ReplicationServiceOptions) {}

  get peers(): readonly Peer[] {
    return this.opts.config.regions.peers;
  }

  get metrics(): ReplicationMetrics {
    return this.opts.metrics;
  }

  /** Every region of the deployment, this one first, for clients choosing where to go. */
  regions(): Region[] {
    const { config } = this.opts;
    return [{ name: config.region, url: config.publicUrl ?? null, local: true }, ...this.peers.map((p) => ({ name: p.name, url: p.url, local: false }))];
  }

  /** Registers the configured peers in the database, so the triggers capture changes for them. */
  async syncPeers(): Promise<void> {
    const added = await this.opts.repo.syncPeers(
      this.peers.map((p) => ({ name: p.name, url: p.url })),
      this.opts.clock.now(),
    );
    for (const peer of added)
      this.opts.log.info('new peer: a snapshot of users, sessions and keys is queued for it', { event: 'replication.peer_added', peer });
  }

  /**
   * Authenticates and applies one batch from a peer. Unknown origin → 403; missing, forged or
   * stale signature → 401; both before the body is even parsed.
   */
  /**
   * The checks that need no body — a known peer, a fresh timestamp — so that nobody else can make
   * this region read a batch-sized body at all. `receive` still verifies the signature.
   */
  admit(headers: Record<string, string | string[] | undefined>): Peer {
    const origin = header(headers, 'x-authctl-region');
    if (!origin) throw new AppError('invalid_signature', 'replication requests must be signed');
    const peer = this.peers.find((p) => p.name === origin);
    if (!peer) throw new AppError('unknown_peer', 'this region does not replicate with the named region');
    const timestamp = Number(header(headers, HEADER_TIMESTAMP));
    if (!Number.isFinite(timestamp) || Math.abs(this.opts.clock.now().getTime() - timestamp) > SIGNATURE_WINDOW_MS) {
      this.opts.log.warn('replication request refused', { event: 'replication.refused', peer: origin, reason: 'stale' });
      throw new AppError('invalid_signature', 'the request timestamp is missing or outside the accepted window');
    }
    return peer;
  }

  /** The largest batch a peer may send: `regions.batchSize` rows of at most 8 KiB, 1 MiB at least. */
  get bodyLimit(): number {
    return Math.max(1_048_576, this.opts.config.regions.batchSize * 8_192);
  }

  async receive(headers: Record<string, string | string[] | undefined>, body: Buffer): Promise<ApplyResult> {
    const peer = this.admit(headers);
    const origin = peer.name;
    const check = verifyRequest(
      peer.secret,
      origin,
      header(headers, HEADER_TIMESTAMP),
      header(headers, HEADER_SIGNATURE),
      body,
      this.opts.clock.now().getTime(),
    );
    if (check !== 'ok') {
      this.opts.log.warn('replication request refused', { event: 'replication.refused', peer: origin, reason: check });
      throw new AppError(
        'invalid_signature',
        check === 'stale' ? 'the request timestamp is outside the accepted window' : 'the request signature is missing or wrong',
      );
    }
    let parsed: z.infer<typeof batchSchema>;
    try {
      parsed = batchSchema.parse(JSON.parse(body.toString('utf8')));
    } catch (err) {
      throw new AppError('invalid_request', 'the replication batch is malformed', { cause: err });
    }
    if (parsed.origin !== origin) throw new AppError('invalid_signature', 'the batch names another origin than its signature');
    const result = await this.opts.sessions.revokeWithin(async (tx) => {
      const applied = await this.opts.repo.apply(tx.ex, origin, parsed.batchId, parsed.changes, this.opts.clock.now());
      tx.revoked(applied.revoked, 'replicated');
      return applied;
    });
    if (!result.duplicate) this.opts.metrics.applied.inc({ origin }, result.applied);
    for (const r of result.renamed) {
      this.opts.log.warn('username clash between regions resolved', {
        event: 'replication.username_conflict',
        userId: r.userId,
        winnerId: r.winnerId,
        renamedTo: r.to,
        origin,
      });
    }
    for (const sessionId of result.forks) {
      this.opts.log.warn('session rotated in two regions from the same token: revoked as reuse', { event: 'token.reused', sessionId, origin });
    }
    if (result.keysChanged) await this.opts.keys.load();
    return result;
  }

  /**
   * For a refresh token homed in another region: that region's answer when it gives one within
   * `regions.proxyTimeoutMs`, else `undefined` (the caller then serves it from the local replica).
   */
  async proxyRefresh(refreshToken: string, requestId: string | undefined): Promise<ProxiedResponse | undefined> {
    const home = HOME_OF_TOKEN.exec(refreshToken)?.[1];
    if (!home || home === this.opts.config.region) return undefined;
    const peer = this.peers.find((p) => p.name === home);
    // A forged token never costs a peer a request: it falls through to the local refresh, which
    // refuses it on its MAC without I/O.
    if (!peer || this.opts.sessions.sessionIdOf(refreshToken) === undefined) return undefined;
    try {
      const res = await (this.opts.fetch ?? fetch)(new URL('/v1/auth/refresh', peer.url), {
        method: 'POST',
        headers: { 'content-type': 'application/json', ...(requestId ? { 'x-request-id': requestId } : {}) },
        body: JSON.stringify({ refreshToken }),
        signal: AbortSignal.timeout(this.opts.config.regions.proxyTimeoutMs),
      });
      // 5xx: the home region is there but cannot decide (its database is down): use the replica.
      if (res.status >= 500) throw new Error(`home region answered ${res.status}`);
      const body: unknown = await res.json();
      this.opts.metrics.crossRegionRefreshes.inc({ home, path: 'proxied' });
      return { status: res.status, body };
    } catch (err) {
      this.opts.metrics.crossRegionRefreshes.inc({ home, path: 'replica' });
      this.opts.log.info('home region did not answer: refresh served from the local replica', { event: 'region.refresh_replica', home, err });
      return undefined;
    }
  }

  /** For `regions.loginPolicy = home`: refuses a login that belongs to a known other region. */
  assertHome(homeRegion: string): void {
    if (this.opts.config.regions.loginPolicy !== 'home' || homeRegion === this.opts.config.region) return;
    const peer = this.peers.find((p) => p.name === homeRegion);
    if (!peer) return;
    throw new AppError('wrong_region', `this account signs in at region ${homeRegion}`, {
      extensions: { region: homeRegion, location: new URL('/v1/auth/login', peer.url).toString() },
    });
  }

  async status(): Promise<PeerStatus[]> {
    const now = this.opts.clock.now().getTime();
    const rows: PeerBacklog[] = await this.opts.repo.backlog();
    return rows.map((p) => {
      const lags = [...p.recentLagMs].sort((a, b) => a - b);
      return {
        peer: p.name,
        url: p.url,
        backlog: p.backlog,
        deadLettered: p.deadLettered,
        oldestPendingSeconds: p.oldestPendingAt ? Math.max(0, (now - p.oldestPendingAt.getTime()) / 1000) : null,
        lagP50Ms: percentile(lags, 50),
        lagP99Ms: percentile(lags, 99),
        lastSuccessAt: p.lastSuccessAt?.toISOString() ?? null,
        lastError: p.lastError,
        lastErrorAt: p.lastErrorAt?.toISOString() ?? null,
        retryingUntil: p.nextAttemptAt && p.nextAttemptAt.getTime() > now ? p.nextAttemptAt.toISOString() : null,
      };
    });
  }

  /** Puts dead-lettered changes back in line for delivery; returns how many. */
  async retryDead(peer?: string): Promise<number> {
    if (peer !== undefined && !this.peers.some((p) => p.name === peer)) throw new AppError('not_found', `no peer named ${peer}`);
    const count = await this.opts.repo.retryDead(peer);
    this.opts.log.info('dead-lettered changes re-queued', { event: 'replication.retried', peer: peer ?? null, count });
    return count;
  }

  /** Starts shipping this region's changes to every peer (workers only). */
  async startShipping(): Promise<void> {
    if (this.peers.length === 0 || this.shipper) return;
    await this.syncPeers();
    this.shipper = new Shipper({ ...this.opts, peers: this.peers });
    this.shipper.start();
  }

  async stopShipping(): Promise<void> {
    await this.shipper?.stop();
    this.shipper = undefined;
  }
}

function header(headers: Record<string, string | string[] | undefined>, name: string): string | undefined {
  const value = headers[name];
  return Array.isArray(value) ? value[0] : value;
}
