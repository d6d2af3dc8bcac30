import type { Logger } from '../../platform/logger.js';
import type { RevokedSession } from '../../model/session.js';
import type { SessionsRepo } from '../../store/pg/sessions-repo.js';
import type { Clock } from '../../platform/clock.js';

export interface RevocationListOptions {
  repo: SessionsRepo;
  clock: Clock;
  log: Logger;
  pollIntervalMs: number;
  /** How long an access token can outlive its session's revocation: access TTL + clock skew. */
  horizonSeconds: number;
  /** Clock difference tolerated between servers; the poll window overlaps by this plus 10 s. */
  clockSkewSeconds: number;
}

/**
 * The in-memory set of sessions revoked within the last access-token lifetime, so Bearer checks
 * refuse revoked sessions without a network round trip. Fed by this server's own revocations
 * (immediately) and by polling the database (every server, every `pollIntervalMs`), and loaded
 * in full at start. An entry is dropped once no access token of its session can still be valid.
 */
export class RevocationList {
  private readonly revoked = new Map<string, { until: number; session: RevokedSession }>();
  private cursor: Date | undefined;
  private timer: NodeJS.Timeout | undefined;
  private polling: Promise<void> | undefined;
  private lastPollOk = false;
  // Pruning walks the whole set; has() drops stale entries on its own, so this can be rare.
  private prunedAt = 0;

  constructor(private readonly opts: RevocationListOptions) {}

  /** True once the list has been loaded from the database at least once. */
  get ready(): boolean {
    return this.cursor !== undefined;
  }

  /** False while the last poll failed (the list is then as of the last success). */
  get healthy(): boolean {
    return this.lastPollOk;
  }

  get size(): number {
    return this.revoked.size;
  }

  has(sessionId: string): boolean {
    const until = this.revoked.get(sessionId)?.until;
    if (until === undefined) return false;
    if (until > this.opts.clock.now().getTime()) return true;
    this.revoked.delete(sessionId);
    return false;
  }

  add(sessions: RevokedSession[]): void {
    for (const s of sessions) {
      // No access token of the session outlives min(session expiry, revocation + horizon).
      const until = Math.min(s.expiresAt.getTime(), s.revokedAt.getTime()) + this.opts.horizonSeconds * 1000;
      const known = this.revoked.get(s.id);
      if (known === undefined || known.until < until) this.revoked.set(s.id, { until, session: s });
    }
  }

  /** Every revocation still relevant (to re-mark a cache that was away). */
  recent(): RevokedSession[] {
    const now = this.opts.clock.now().getTime();
    return [...this.revoked.values()].filter((e) => e.until > now).map((e) => e.session);
  }

  /**
   * One poll. `revoked_at` is written with the revoking server's clock and commits a little after
   * that timestamp, so a strict "since last max" cursor could skip a revocation. The window
   * therefore overlaps the previous one by the tolerated clock skew plus 10 s; duplicates are
   * harmless in a set, and the partial index keeps the wider window cheap.
   */
  poll(): Promise<void> {
    this.polling ??= this.pollOnce().finally(() => {
      this.polling = undefined;
    });
    return this.polling;
  }

  start(): void {
    this.timer ??= setInterval(() => {
      this.poll().catch(() => undefined);
    }, this.opts.pollIntervalMs);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
  }

  private async pollOnce(): Promise<void> {
    const now = this.opts.clock.now();
    const horizonMs = this.opts.horizonSeconds * 1000;
    const overlapMs = (this.opts.clockSkewSeconds + 10) * 1000;
    const since = this.cursor ? new Date(this.cursor.getTime() - overlapMs) : new Date(now.getTime() - horizonMs - overlapMs);
    try {
      const rows = await this.opts.repo.revokedSince(since, new Date(now.getTime() - horizonMs));
      this.add(rows);
      let next = now;
      for (const row of rows) if (row.revokedAt > next) next = row.revokedAt;
      this.cursor = next;
      if (now.getTime() - this.prunedAt >= 30_000) this.prune(now.getTime());
      if (!this.lastPollOk) this.opts.log.info('revocation feed is polling the database', { event: 'revocation.feed_ok', revoked: this.revoked.size });
      this.lastPollOk = true;
    } catch (err) {
      if (this.lastPollOk || this.cursor === undefined) {
        this.opts.log.warn('revocation feed cannot reach the database', { event: 'revocation.feed_failed', err });
      }
      this.lastPollOk = false;
      throw err;
    }
  }

  private prune(nowMs: number): void {
    this.prunedAt = nowMs;
    for (const [id, { until }] of this.revoked) if (until <= nowMs) this.revoked.delete(id);
  }
}
