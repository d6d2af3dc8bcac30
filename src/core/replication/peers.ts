import type { Config } from '../../config/schema.js';
import type { Clock } from '../../platform/clock.js';
import { AppError } from '../../platform/errors.js';
import type { Logger } from '../../platform/logger.js';
import type { OutboxRepo } from '../../store/pg/outbox-repo.js';
import { HEADER_REGION, HEADER_SIGNATURE, HEADER_TIMESTAMP, SIGNATURE_WINDOW_MS, verifyRequest } from './signature.js';

export type Peer = Config['regions']['peers'][number];

/** A region of the deployment, for clients choosing where to go (`GET /v1/regions`). */
export interface Region {
  name: string;
  url: string | null;
  local: boolean;
}

export type RequestHeaders = Record<string, string | string[] | undefined>;

export interface PeerRegistryOptions {
  region: string;
  publicUrl: string | undefined;
  peers: readonly Peer[];
  outbox: Pick<OutboxRepo, 'syncPeers'>;
  clock: Clock;
  log: Logger;
}

/**
 * The region's peers (config `regions.peers`): who they are, registering them in the database so
 * the capture trigger queues changes for them, and telling a peer's signed request from anybody
 * else's (HMAC under the pair's secret, see signature.ts).
 */
export class PeerRegistry {
  constructor(private readonly opts: PeerRegistryOptions) {}

  get list(): readonly Peer[] {
    return this.opts.peers;
  }

  find(name: string): Peer | undefined {
    return this.opts.peers.find((p) => p.name === name);
  }

  /** Every region of the deployment, this one first. */
  regions(): Region[] {
    return [
      { name: this.opts.region, url: this.opts.publicUrl ?? null, local: true },
      ...this.opts.peers.map((p) => ({ name: p.name, url: p.url, local: false })),
    ];
  }

  /** Registers the configured peers in the database; a new one is queued a snapshot of everything. */
  async syncPeers(): Promise<void> {
    const added = await this.opts.outbox.syncPeers(
      this.opts.peers.map((p) => ({ name: p.name, url: p.url })),
      this.opts.clock.now(),
    );
    for (const peer of added)
      this.opts.log.info('new peer: a snapshot of users, sessions and keys is queued for it', { event: 'replication.peer_added', peer });
  }

  /**
   * The checks that need no body — a known peer (else 403 `unknown_peer`), a fresh timestamp (else
   * 401 `invalid_signature`) — so that nobody else can make this region read a batch-sized body at
   * all. {@link authenticate} then verifies the signature over the body.
   */
  admit(headers: RequestHeaders): Peer {
    const origin = header(headers, HEADER_REGION);
    if (!origin) throw new AppError('invalid_signature', 'replication requests must be signed');
    const peer = this.find(origin);
    if (!peer) throw new AppError('unknown_peer', 'this region does not replicate with the named region');
    const timestamp = Number(header(headers, HEADER_TIMESTAMP));
    if (!Number.isFinite(timestamp) || Math.abs(this.opts.clock.now().getTime() - timestamp) > SIGNATURE_WINDOW_MS) {
      this.refused(origin, 'stale');
      throw new AppError('invalid_signature', 'the request timestamp is missing or outside the accepted window');
    }
    return peer;
  }

  /** The peer that signed this exact request ({@link admit}, then the signature): 401 for a missing, forged or stale one. */
  authenticate(headers: RequestHeaders, body: Buffer): Peer {
    const peer = this.admit(headers);
    const check = verifyRequest(
      peer.secret,
      peer.name,
      header(headers, HEADER_TIMESTAMP),
      header(headers, HEADER_SIGNATURE),
      body,
      this.opts.clock.now().getTime(),
    );
    if (check !== 'ok') {
      this.refused(peer.name, check);
      throw new AppError(
        'invalid_signature',
        check === 'stale' ? 'the request timestamp is outside the accepted window' : 'the request signature is missing or wrong',
      );
    }
    return peer;
  }

  private refused(peer: string, reason: string): void {
    this.opts.log.warn('replication request refused', { event: 'replication.refused', peer, reason });
  }
}

function header(headers: RequestHeaders, name: string): string | undefined {
  const value = headers[name];
  return Array.isArray(value) ? value[0] : value;
}
