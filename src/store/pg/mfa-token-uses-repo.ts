import type { MfaTokenUse } from '../../model/mfa.js';
import type { Db, Executor } from './db.js';
import { guard } from './errors.js';

/**
 * All SQL on `mfa_token_uses` (migration 0009-second-factors): the mfaTokens of two-step logins
 * that have been used. An mfaToken is sealed and carries no row until it is used; its row is
 * what makes it single-use, here and, once it replicates, in every region.
 */
export class MfaTokenUsesRepo {
  constructor(private readonly db: Db) {}

  /**
   * Records the use of a token; `false` when it was used already. Inserting is the check: two
   * concurrent uses of one token meet at the primary key, the second waits for the first to
   * commit and then inserts nothing — so it is to run in the transaction of what the use yields
   * (the session), and a use that rolls back frees the token again.
   */
  async spend(use: MfaTokenUse, ex: Executor): Promise<boolean> {
    const rows = await guard(
      ex('mfa_token_uses')
        .insert({ id: use.id, user_id: use.userId, home_region: use.homeRegion, used_at: use.usedAt, expires_at: use.expiresAt })
        .onConflict('id')
        .ignore()
        .returning<Array<{ id: string }>>('id'),
    );
    return rows.length > 0;
  }

  /** Whether a token was used already (read on the writer: a use just committed must count). */
  async isSpent(id: string): Promise<boolean> {
    const row = await guard(this.db.writer('mfa_token_uses').where({ id }).first('id'));
    return row !== undefined;
  }
}
