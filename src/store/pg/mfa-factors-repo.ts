import type { FactorStatus, MfaFactorRecord } from '../../model/mfa.js';
import type { Db, Executor } from './db.js';
import { guard } from './errors.js';

/** An `mfa_factors` row as node-pg returns it (migration 0009-second-factors). */
export interface FactorDbRow {
  id: string;
  user_id: string;
  type: 'totp';
  secret_sealed: string;
  status: FactorStatus;
  home_region: string;
  created_at: Date;
  confirmed_at: Date | null;
  last_used_step: string | number | null;
  removed_at: Date | null;
  version: string | number;
}

export function toFactor(row: FactorDbRow): MfaFactorRecord {
  return {
    id: row.id,
    userId: row.user_id,
    type: row.type,
    secretSealed: row.secret_sealed,
    status: row.status,
    homeRegion: row.home_region,
    createdAt: row.created_at,
    confirmedAt: row.confirmed_at,
    lastUsedStep: row.last_used_step === null ? null : Number(row.last_used_step),
    removedAt: row.removed_at,
    version: Number(row.version),
  };
}

export function factorColumns(f: MfaFactorRecord) {
  return {
    id: f.id,
    user_id: f.userId,
    type: f.type,
    secret_sealed: f.secretSealed,
    status: f.status,
    home_region: f.homeRegion,
    created_at: f.createdAt,
    confirmed_at: f.confirmedAt,
    last_used_step: f.lastUsedStep,
    removed_at: f.removedAt,
    version: f.version,
  };
}

const bump = (ex: Executor) => ({ version: ex.raw('version + 1') });

/**
 * All SQL on `mfa_factors`. Every write bumps `version` and replicates (the capture trigger); a
 * factor is never deleted while it matters: removal sets `removed_at`, so a late change from
 * another region cannot bring it back (the cleanup job deletes such rows after 30 days).
 */
export class MfaFactorsRepo {
  constructor(private readonly db: Db) {}

  async insert(factor: MfaFactorRecord, ex: Executor = this.db.writer): Promise<void> {
    await guard(ex('mfa_factors').insert(factorColumns(factor)));
  }

  async findById(id: string, ex: Executor = this.db.writer): Promise<MfaFactorRecord | undefined> {
    const row = await guard(ex<FactorDbRow>('mfa_factors').where({ id }).first());
    return row ? toFactor(row) : undefined;
  }

  /** The user's factors that are not removed (pending and active), oldest first. */
  async listLive(userId: string, ex: Executor = this.db.writer): Promise<MfaFactorRecord[]> {
    const rows = await guard(ex<FactorDbRow>('mfa_factors').where({ user_id: userId }).whereNull('removed_at').orderBy('created_at'));
    return rows.map(toFactor);
  }

  /** The user's active factor of a type, if any (there is at most one). */
  async findActive(userId: string, type: 'totp', ex: Executor = this.db.writer): Promise<MfaFactorRecord | undefined> {
    const row = await guard(ex<FactorDbRow>('mfa_factors').where({ user_id: userId, type, status: 'active' }).whereNull('removed_at').first());
    return row ? toFactor(row) : undefined;
  }

  /**
   * Whether the user has an active TOTP factor, live recovery codes and live passkeys: one
   * statement over the three partial indexes (`… where removed_at is null`, `… where ended_at is
   * null`), asked at every login.
   */
  async activeKinds(userId: string, ex: Executor = this.db.writer): Promise<{ totp: boolean; recoveryCodes: boolean; passkeys: boolean }> {
    const result = await guard(
      ex.raw<{ rows: Array<{ totp: boolean; recovery: boolean; passkeys: boolean }> }>(
        `select exists (select 1 from mfa_factors where user_id = ? and removed_at is null and status = 'active') as totp,
                exists (select 1 from mfa_recovery_codes where user_id = ? and ended_at is null) as recovery,
                exists (select 1 from passkeys where user_id = ? and removed_at is null) as passkeys`,
        [userId, userId, userId],
      ),
    );
    const row = result.rows[0]!;
    return { totp: row.totp, recoveryCodes: row.recovery, passkeys: row.passkeys };
  }

  /** Activates a pending factor with the step of its first code; false when it is no longer pending (removed, or confirmed meanwhile). */
  async activate(id: string, step: number, now: Date, ex: Executor): Promise<boolean> {
    const count = await guard(
      ex('mfa_factors')
        .where({ id, status: 'pending' })
        .whereNull('removed_at')
        .update({ status: 'active', confirmed_at: now, last_used_step: step, ...bump(ex) }),
    );
    return count > 0;
  }

  /**
   * Spends a TOTP time step: true when `step` is newer than every step accepted before, in one
   * statement, so of two requests with the same code exactly one wins (RFC 6238 §5.2: a code is
   * accepted once). With `resealed`, the secret is stored sealed anew (a factor sealed with the
   * previous server secret, moved to the current one when it is used).
   */
  async useStep(id: string, step: number, resealed: string | undefined, ex: Executor = this.db.writer): Promise<boolean> {
    const count = await guard(
      ex('mfa_factors')
        .where({ id, status: 'active' })
        .whereNull('removed_at')
        .andWhere((q) => void q.whereNull('last_used_step').orWhere('last_used_step', '<', step))
        .update({ last_used_step: step, ...(resealed ? { secret_sealed: resealed } : {}), ...bump(ex) }),
    );
    return count > 0;
  }

  /** Removes one live factor of the user; false when there was none with that id. */
  async remove(id: string, userId: string, now: Date, ex: Executor): Promise<boolean> {
    const count = await guard(
      ex('mfa_factors')
        .where({ id, user_id: userId })
        .whereNull('removed_at')
        .update({ removed_at: now, ...bump(ex) }),
    );
    return count > 0;
  }

  /** Removes the user's live factors (all of them, or only the pending ones); returns how many. */
  async removeAll(userId: string, now: Date, ex: Executor, only?: 'pending'): Promise<number> {
    const q = ex('mfa_factors').where({ user_id: userId }).whereNull('removed_at');
    if (only) void q.where({ status: only });
    return guard(q.update({ removed_at: now, ...bump(ex) }));
  }

  /**
   * Deletes, at most `limit` of them, pending factors created before `pendingBefore` (never
   * confirmed) and factors removed before `removedBefore` (the cleanup job).
   */
  async deleteStale(pendingBefore: Date, removedBefore: Date, limit: number): Promise<number> {
    const w = this.db.writer;
    return guard(
      w('mfa_factors')
        .whereIn(
          'id',
          w('mfa_factors')
            .select('id')
            .where((q) => void q.where({ status: 'pending' }).andWhere('created_at', '<', pendingBefore))
            .orWhere('removed_at', '<', removedBefore)
            .limit(limit),
        )
        .delete(),
    );
  }
}
