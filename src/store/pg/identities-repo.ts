import type { IdentityRecord } from '../../model/identity.js';
import { deleteBatchBefore } from './batched-delete.js';
import type { Db, Executor } from './db.js';
import { guard, uniqueConstraintOf } from './errors.js';

/** A `user_identities` row as node-pg returns it (migration 0010-identities). */
export interface IdentityDbRow {
  id: string;
  user_id: string;
  provider: string;
  subject: string;
  email: string | null;
  email_verified: boolean;
  home_region: string;
  created_at: Date;
  last_used_at: Date;
  removed_at: Date | null;
  version: string | number;
}

/** What `authctl user export` writes of an identity. */
export type ExportedIdentityRow = Pick<IdentityDbRow, 'user_id' | 'provider' | 'subject' | 'email' | 'email_verified'>;

export function toIdentity(row: IdentityDbRow): IdentityRecord {
  return {
    id: row.id,
    userId: row.user_id,
    provider: row.provider,
    subject: row.subject,
    email: row.email,
    emailVerified: row.email_verified,
    homeRegion: row.home_region,
    createdAt: row.created_at,
    lastUsedAt: row.last_used_at,
    removedAt: row.removed_at,
    version: Number(row.version),
  };
}

export function identityColumns(i: IdentityRecord) {
  return {
    id: i.id,
    user_id: i.userId,
    provider: i.provider,
    subject: i.subject,
    email: i.email,
    email_verified: i.emailVerified,
    home_region: i.homeRegion,
    created_at: i.createdAt,
    last_used_at: i.lastUsedAt,
    removed_at: i.removedAt,
    version: i.version,
  };
}

/** The partial unique index on live (provider, subject) pairs. */
export const LIVE_SUBJECT_INDEX = 'user_identities_subject_idx';

/** Whether an error is the live pair's unique index refusing a second live row (a concurrent link or first sign-in). */
export function isSubjectTaken(err: unknown): boolean {
  return uniqueConstraintOf(err) === LIVE_SUBJECT_INDEX;
}

const bump = (ex: Executor) => ({ version: ex.raw('version + 1') });

/**
 * All SQL on `user_identities`. Every write bumps `version` and replicates (the capture trigger);
 * an identity is never deleted while it matters: removal sets `removed_at`, so a late change from
 * another region cannot bring it back; the cleanup job deletes it 30 days later (the row goes
 * with its user too, through the foreign key).
 */
export class IdentitiesRepo {
  constructor(private readonly db: Db) {}

  /** Inserts an identity; `conflict` (see {@link isSubjectTaken}) when the pair is live already. */
  async insert(identity: IdentityRecord, ex: Executor = this.db.writer): Promise<void> {
    await guard(ex('user_identities').insert(identityColumns(identity)));
  }

  /** The live identity of a provider account, whoever's it is. */
  async findLive(provider: string, subject: string, ex: Executor = this.db.writer): Promise<IdentityRecord | undefined> {
    const row = await guard(ex<IdentityDbRow>('user_identities').where({ provider, subject }).whereNull('removed_at').first());
    return row ? toIdentity(row) : undefined;
  }

  /** The user's live identities, oldest first. */
  async listLive(userId: string, ex: Executor = this.db.writer): Promise<IdentityRecord[]> {
    const rows = await guard(
      ex<IdentityDbRow>('user_identities')
        .where({ user_id: userId })
        .whereNull('removed_at')
        .orderBy([{ column: 'created_at' }, { column: 'id' }]),
    );
    return rows.map(toIdentity);
  }

  /**
   * The live identities of the users whose ids lie in [`firstUserId`, `lastUserId`], by user, then
   * provider and subject: one query for a page of `authctl user export` (the page is a range of
   * ids). By what they are rather than when they were linked: an import links them anew, and its
   * export lists them in the same order.
   */
  async liveInUserRange(firstUserId: string, lastUserId: string, ex: Executor): Promise<ExportedIdentityRow[]> {
    return guard(
      ex<ExportedIdentityRow>('user_identities')
        .select('user_id', 'provider', 'subject', 'email', 'email_verified')
        .whereBetween('user_id', [firstUserId, lastUserId])
        .whereNull('removed_at')
        .orderBy(['user_id', 'provider', 'subject']),
    );
  }

  /** Records a sign-in through the identity (its address as the provider gives it now, too). */
  async touch(id: string, now: Date, claims: Pick<IdentityRecord, 'email' | 'emailVerified'>, ex: Executor = this.db.writer): Promise<void> {
    await guard(
      ex('user_identities')
        .where({ id })
        .whereNull('removed_at')
        .update({ last_used_at: now, email: claims.email, email_verified: claims.emailVerified, ...bump(ex) }),
    );
  }

  /**
   * Deletes up to `limit` identities removed before `before`; returns how many (the cleanup job,
   * long after any late change from another region could still arrive).
   */
  deleteRemovedBefore(before: Date, limit: number): Promise<number> {
    return deleteBatchBefore(this.db, 'user_identities', 'removed_at', before, limit);
  }

  /** Removes live identities of the user by id; returns those removed. */
  async remove(userId: string, ids: string[], now: Date, ex: Executor): Promise<IdentityRecord[]> {
    if (ids.length === 0) return [];
    const rows = await guard(
      ex<IdentityDbRow>('user_identities')
        .where({ user_id: userId })
        .whereIn('id', ids)
        .whereNull('removed_at')
        .update({ removed_at: now, ...bump(ex) })
        .returning('*'),
    );
    return rows.map(toIdentity);
  }
}
