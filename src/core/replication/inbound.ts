import type { Clock } from '../../platform/clock.js';
import { AppError } from '../../platform/errors.js';
import type { Logger } from '../../platform/logger.js';
import type { ServiceClients } from '../clients/service-clients.js';
import type { KeyRing } from '../keys/key-ring.js';
import type { SessionService } from '../sessions/session-service.js';
import type { ApplyResult, BatchApplier } from './apply.js';
import type { ReplicationMetrics } from './metrics.js';
import type { PeerRegistry, RequestHeaders } from './peers.js';
import { decodeBatch } from './wire.js';

export interface InboundReplicationOptions {
  peers: Pick<PeerRegistry, 'authenticate'>;
  applier: Pick<BatchApplier, 'apply'>;
  /**
   * Applied batches run through the sessions' one revocation path, so a revocation a batch brings
   * (or a session that arrives already revoked) is refused here at once, on the region's other
   * servers by pub/sub, and early by the cache, exactly like a local one.
   */
  sessions: Pick<SessionService, 'revokeWithin'>;
  /** Reloaded when a batch changed signing keys. */
  keys: Pick<KeyRing, 'load'>;
  /** Reloaded when a batch changed service clients (this process at once; the region's others within their reload interval). */
  clients: Pick<ServiceClients, 'load'>;
  metrics: Pick<ReplicationMetrics, 'applied'>;
  clock: Clock;
  log: Logger;
  /** `regions.batchSize`: bounds the body a peer may send. */
  batchSize: number;
}

/** `POST /internal/replication`: a peer's batch, authenticated, decoded and applied. */
export class InboundReplication {
  constructor(private readonly opts: InboundReplicationOptions) {}

  /** The largest batch a peer may send: `regions.batchSize` rows of at most 8 KiB, 1 MiB at least. */
  get bodyLimit(): number {
    return Math.max(1_048_576, this.opts.batchSize * 8_192);
  }

  /**
   * Authenticates and applies one batch from a peer: unknown origin → 403; missing, forged or
   * stale signature → 401, before the body is parsed; a malformed batch → 400.
   */
  async receive(headers: RequestHeaders, body: Buffer): Promise<ApplyResult> {
    const origin = this.opts.peers.authenticate(headers, body).name;
    const batch = decodeBatch(body);
    if (batch.origin !== origin) throw new AppError('invalid_signature', 'the batch names another origin than its signature');
    const result = await this.opts.sessions.revokeWithin(async (tx) => {
      const applied = await this.opts.applier.apply(tx.ex, batch, this.opts.clock.now());
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
    for (const c of result.emailClashes) {
      // Ids only: the address (and a username made from it) stays out of the log.
      this.opts.log.warn('e-mail address clash between regions resolved: the loser no longer has the address', {
        event: 'replication.email_conflict',
        userId: c.userId,
        winnerId: c.winnerId,
        usernameAssigned: c.assignedUsername !== null,
        origin,
      });
    }
    for (const c of result.identityClashes) {
      this.opts.log.warn('provider account linked in two regions: one identity kept, the other removed', {
        event: 'replication.identity_conflict',
        provider: c.provider,
        keptId: c.keptId,
        removedId: c.removedId,
        origin,
      });
    }
    for (const c of result.passkeyClashes) {
      this.opts.log.warn('one credential registered as a passkey in two regions: one passkey kept, the other removed', {
        event: 'replication.passkey_conflict',
        keptId: c.keptId,
        removedId: c.removedId,
        origin,
      });
    }
    for (const sessionId of result.forks) {
      this.opts.log.warn('session rotated in two regions from the same token: revoked as reuse', { event: 'token.reused', sessionId, origin });
    }
    if (result.keysChanged) await this.opts.keys.load();
    if (result.clientsChanged) await this.opts.clients.load();
    return result;
  }
}
