import type { MfaTokenUse } from '../../model/mfa.js';
import { deleteBatchBefore } from './batched-delete.js';
import type { Db, Executor } from './db.js';
import { guard } from './errors.js';

/** An `mfa_token_uses` row as node-pg returns it (migration 0009-second-factors). */
export interface TokenUseDbRow {
  id: string;
  user_id: string | null;
  home_region: string;
  used_at: Date;
  expires_at: Date;
}

export function toTokenUse(row: TokenUseDbRow): MfaTokenUse {
  return { id: row.id, userId: row.user_id, homeRegion: row.home_region, usedAt: row.used_at, expiresAt: row.expires_at };
}

export function tokenUseColumns(u: MfaTokenUse) {
  return { id: u.id, user_id: u.userId, home_region: u.homeRegion, used_at: u.usedAt, expires_at: u.expiresAt };
}

/** All SQL on `mfa_token_uses`: the used `mfaToken`s of two-step logins (single-use), kept until they expire. */
export class MfaTokenUsesRepo {
  constructor(private readonly db: Db) {}

  /** Records a use; false when the token was used before (its id is the row's primary key). */
  async insertOnce(use: MfaTokenUse, ex: Executor = this.db.writer): Promise<boolean> {
    const rows = await guard(ex('mfa_token_uses').insert(tokenUseColumns(use)).onConflict('id').ignore().returning('id'));
    return rows.length > 0;
  }

  async findById(id: string, ex: Executor = this.db.writer): Promise<MfaTokenUse | undefined> {
    const row = await guard(ex<TokenUseDbRow>('mfa_token_uses').where({ id }).first());
    return row ? toTokenUse(row) : undefined;
  }

  /** Deletes, at most `limit` of them, uses of tokens that expired before `before` (the cleanup job). */
  deleteExpired(before: Date, limit: number): Promise<number> {
    return deleteBatchBefore(this.db, 'mfa_token_uses', 'expires_at', before, limit);
  }
}
