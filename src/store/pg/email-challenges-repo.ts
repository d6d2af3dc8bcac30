import type { ChallengeEndReason, ChallengePurpose, EmailChallenge } from '../../model/user.js';
import { deleteBatchBefore } from './batched-delete.js';
import type { Db, Executor } from './db.js';
import { guard } from './errors.js';

/** An `email_challenges` row as node-pg returns it (migration 0006-email-identity). */
export interface ChallengeDbRow {
  id: string;
  user_id: string | null;
  purpose: ChallengePurpose;
  email: string;
  home_region: string;
  created_at: Date;
  expires_at: Date;
  attempts: number;
  ended_at: Date | null;
  end_reason: ChallengeEndReason | null;
  version: string | number;
}

export function toChallenge(row: ChallengeDbRow): EmailChallenge {
  return {
    id: row.id,
    userId: row.user_id,
    purpose: row.purpose,
    email: row.email,
    homeRegion: row.home_region,
    createdAt: row.created_at,
    expiresAt: row.expires_at,
    attempts: Number(row.attempts),
    endedAt: row.ended_at,
    endReason: row.end_reason,
    version: Number(row.version),
  };
}

export function challengeColumns(c: EmailChallenge) {
  return {
    id: c.id,
    user_id: c.userId,
    purpose: c.purpose,
    email: c.email,
    home_region: c.homeRegion,
    created_at: c.createdAt,
    expires_at: c.expiresAt,
    attempts: c.attempts,
    ended_at: c.endedAt,
    end_reason: c.endReason,
    version: c.version,
  };
}

/** All SQL on `email_challenges`. Every write bumps `version`, and replicates (the capture trigger). */
export class EmailChallengesRepo {
  constructor(private readonly db: Db) {}

  async insert(challenge: EmailChallenge, ex: Executor = this.db.writer): Promise<void> {
    await guard(ex('email_challenges').insert(challengeColumns(challenge)));
  }

  async findById(id: string, ex: Executor = this.db.writer): Promise<EmailChallenge | undefined> {
    const row = await guard(ex<ChallengeDbRow>('email_challenges').where({ id }).first());
    return row ? toChallenge(row) : undefined;
  }

  /** The challenge, locked for the rest of the transaction. */
  async lock(id: string, ex: Executor): Promise<EmailChallenge | undefined> {
    const row = await guard(ex<ChallengeDbRow>('email_challenges').where({ id }).forUpdate().first());
    return row ? toChallenge(row) : undefined;
  }

  /** The newest live challenge of these purposes sent to an address (compared case-insensitively), locked. */
  async lockLatestLive(email: string, purposes: ChallengePurpose[], ex: Executor): Promise<EmailChallenge | undefined> {
    const row = await guard(
      ex<ChallengeDbRow>('email_challenges')
        .whereRaw('lower(email) = lower(?)', [email])
        .whereIn('purpose', purposes)
        .whereNull('ended_at')
        .orderBy('created_at', 'desc')
        .forUpdate()
        .first(),
    );
    return row ? toChallenge(row) : undefined;
  }

  /** Ends the user's live challenges of these purposes (but `exceptId`); returns how many. */
  async endLive(userId: string, purposes: ChallengePurpose[], reason: ChallengeEndReason, now: Date, ex: Executor, exceptId?: string): Promise<number> {
    const q = ex('email_challenges').where({ user_id: userId }).whereIn('purpose', purposes).whereNull('ended_at');
    if (exceptId) void q.whereNot({ id: exceptId });
    return guard(q.update({ ended_at: now, end_reason: reason, version: ex.raw('version + 1') }));
  }

  /**
   * Ends the live challenges of these purposes sent to an address (compared case-insensitively),
   * whoever they belong to — sign-in codes, some of which have no user yet; returns how many.
   */
  async endLiveTo(email: string, purposes: ChallengePurpose[], reason: ChallengeEndReason, now: Date, ex: Executor): Promise<number> {
    return guard(
      ex('email_challenges')
        .whereRaw('lower(email) = lower(?)', [email])
        .whereIn('purpose', purposes)
        .whereNull('ended_at')
        .update({ ended_at: now, end_reason: reason, version: ex.raw('version + 1') }),
    );
  }

  /** Ends one challenge, if it is still live; false when it was not. */
  async end(id: string, reason: ChallengeEndReason, now: Date, ex: Executor): Promise<boolean> {
    const count = await guard(
      ex('email_challenges')
        .where({ id })
        .whereNull('ended_at')
        .update({ ended_at: now, end_reason: reason, version: ex.raw('version + 1') }),
    );
    return count > 0;
  }

  /** Counts a wrong code; the challenge ends as `exhausted` at `maxAttempts`. Returns the tries left. */
  async recordWrongCode(id: string, maxAttempts: number, now: Date, ex: Executor): Promise<number> {
    const [row] = await guard(
      ex<ChallengeDbRow>('email_challenges')
        .where({ id })
        .whereNull('ended_at')
        .update({
          attempts: ex.raw('attempts + 1'),
          ended_at: ex.raw('case when attempts + 1 >= ? then ?::timestamptz else null end', [maxAttempts, now]),
          end_reason: ex.raw(`case when attempts + 1 >= ? then 'exhausted' else null end`, [maxAttempts]),
          version: ex.raw('version + 1'),
        })
        .returning('attempts'),
    );
    return row ? Math.max(0, maxAttempts - Number(row.attempts)) : 0;
  }

  /** Deletes challenges that expired before `before` (the cleanup job), at most `limit`. */
  deleteExpired(before: Date, limit: number): Promise<number> {
    return deleteBatchBefore(this.db, 'email_challenges', 'expires_at', before, limit);
  }
}
