import type { RecoveryCodeEndReason, RecoveryCodeRecord } from '../../model/mfa.js';
import { deleteBatchBefore } from './batched-delete.js';
import type { Db, Executor } from './db.js';
import { guard } from './errors.js';

/** An `mfa_recovery_codes` row as node-pg returns it (migration 0009-second-factors). */
export interface RecoveryCodeDbRow {
  id: string;
  user_id: string;
  code_hash: string;
  home_region: string;
  created_at: Date;
  ended_at: Date | null;
  end_reason: RecoveryCodeEndReason | null;
  version: string | number;
}

export function toRecoveryCode(row: RecoveryCodeDbRow): RecoveryCodeRecord {
  return {
    id: row.id,
    userId: row.user_id,
    codeHash: row.code_hash,
    homeRegion: row.home_region,
    createdAt: row.created_at,
    endedAt: row.ended_at,
    endReason: row.end_reason,
    version: Number(row.version),
  };
}

export function recoveryCodeColumns(c: RecoveryCodeRecord) {
  return {
    id: c.id,
    user_id: c.userId,
    code_hash: c.codeHash,
    home_region: c.homeRegion,
    created_at: c.createdAt,
    ended_at: c.endedAt,
    end_reason: c.endReason,
    version: c.version,
  };
}

/** All SQL on `mfa_recovery_codes`. A code ends once (`ended_at`) and never comes back; every write replicates. */
export class MfaRecoveryCodesRepo {
  constructor(private readonly db: Db) {}

  async insertMany(codes: RecoveryCodeRecord[], ex: Executor): Promise<void> {
    if (codes.length > 0) await guard(ex('mfa_recovery_codes').insert(codes.map(recoveryCodeColumns)));
  }

  /** The user's live (unused) codes. */
  async listLive(userId: string, ex: Executor = this.db.writer): Promise<RecoveryCodeRecord[]> {
    const rows = await guard(ex<RecoveryCodeDbRow>('mfa_recovery_codes').where({ user_id: userId }).whereNull('ended_at').orderBy('created_at'));
    return rows.map(toRecoveryCode);
  }

  async countLive(userId: string, ex: Executor = this.db.writer): Promise<number> {
    const row = await guard(ex('mfa_recovery_codes').where({ user_id: userId }).whereNull('ended_at').count<{ count: string }[]>('* as count').first());
    return Number(row?.count ?? 0);
  }

  /** Ends one code if it is still live; false when it had ended (a concurrent use of the same code loses here). */
  async end(id: string, reason: RecoveryCodeEndReason, now: Date, ex: Executor = this.db.writer): Promise<boolean> {
    const count = await guard(
      ex('mfa_recovery_codes')
        .where({ id })
        .whereNull('ended_at')
        .update({ ended_at: now, end_reason: reason, version: ex.raw('version + 1') }),
    );
    return count > 0;
  }

  /** Ends every live code of the user; returns how many. */
  async endAll(userId: string, reason: RecoveryCodeEndReason, now: Date, ex: Executor): Promise<number> {
    return guard(
      ex('mfa_recovery_codes')
        .where({ user_id: userId })
        .whereNull('ended_at')
        .update({ ended_at: now, end_reason: reason, version: ex.raw('version + 1') }),
    );
  }

  /** Deletes, at most `limit` of them, codes that ended before `before` (the cleanup job). */
  deleteEndedBefore(before: Date, limit: number): Promise<number> {
    return deleteBatchBefore(this.db, 'mfa_recovery_codes', 'ended_at', before, limit);
  }
}
