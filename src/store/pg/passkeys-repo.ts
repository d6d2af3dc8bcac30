import type { PasskeyRecord, PasskeyTransport } from '../../model/passkey.js';
import { deleteBatchBefore } from './batched-delete.js';
import type { Db, Executor } from './db.js';
import { guard, uniqueConstraintOf } from './errors.js';

/** A `passkeys` row as node-pg returns it (migration 0014-passkeys). */
export interface PasskeyDbRow {
  id: string;
  user_id: string;
  credential_id: string;
  public_key: string;
  counter: string | number;
  transports: string[];
  aaguid: string;
  backup_eligible: boolean;
  backed_up: boolean;
  name: string;
  home_region: string;
  created_at: Date;
  updated_at: Date;
  last_used_at: Date | null;
  removed_at: Date | null;
  version: string | number;
}

export function toPasskey(row: PasskeyDbRow): PasskeyRecord {
  return {
    id: row.id,
    userId: row.user_id,
    credentialId: row.credential_id,
    publicKey: row.public_key,
    counter: Number(row.counter),
    transports: row.transports as PasskeyTransport[],
    aaguid: row.aaguid,
    backupEligible: row.backup_eligible,
    backedUp: row.backed_up,
    name: row.name,
    homeRegion: row.home_region,
    createdAt: row.created_at,
    updatedAt: row.updated_at,
    lastUsedAt: row.last_used_at,
    removedAt: row.removed_at,
    version: Number(row.version),
  };
}

export function passkeyColumns(p: PasskeyRecord) {
  return {
    id: p.id,
    user_id: p.userId,
    credential_id: p.credentialId,
    public_key: p.publicKey,
    counter: p.counter,
    transports: p.transports,
    aaguid: p.aaguid,
    backup_eligible: p.backupEligible,
    backed_up: p.backedUp,
    name: p.name,
    home_region: p.homeRegion,
    created_at: p.createdAt,
    updated_at: p.updatedAt,
    last_used_at: p.lastUsedAt,
    removed_at: p.removedAt,
    version: p.version,
  };
}

/** The partial unique index on live credential ids. */
export const LIVE_CREDENTIAL_INDEX = 'passkeys_credential_idx';

/** Whether an error is the live credential index refusing a second live row (the credential is registered already). */
export function isCredentialTaken(err: unknown): boolean {
  return uniqueConstraintOf(err) === LIVE_CREDENTIAL_INDEX;
}

const bump = (ex: Executor) => ({ version: ex.raw('version + 1') });

/**
 * All SQL on `passkeys`. Every write bumps `version` and replicates (the capture trigger); a
 * passkey is never deleted while it matters: removal sets `removed_at`, so a late change from
 * another region cannot bring it back; the cleanup job deletes it 30 days later (the row goes
 * with its user too, through the foreign key).
 */
export class PasskeysRepo {
  constructor(private readonly db: Db) {}

  /** Inserts a passkey; `conflict` (see {@link isCredentialTaken}) when its credential id is live already. */
  async insert(passkey: PasskeyRecord, ex: Executor = this.db.writer): Promise<void> {
    await guard(ex('passkeys').insert(passkeyColumns(passkey)));
  }

  /** The live passkey with this credential id, whoever's it is: the look-up of every sign-in. */
  async findByCredentialId(credentialId: string, ex: Executor = this.db.writer): Promise<PasskeyRecord | undefined> {
    const row = await guard(ex<PasskeyDbRow>('passkeys').where({ credential_id: credentialId }).whereNull('removed_at').first());
    return row ? toPasskey(row) : undefined;
  }

  /** The user's live passkey with this id. */
  async findLive(userId: string, id: string, ex: Executor = this.db.writer): Promise<PasskeyRecord | undefined> {
    const row = await guard(ex<PasskeyDbRow>('passkeys').where({ id, user_id: userId }).whereNull('removed_at').first());
    return row ? toPasskey(row) : undefined;
  }

  /** The user's live passkeys, oldest first. */
  async listLive(userId: string, ex: Executor = this.db.writer): Promise<PasskeyRecord[]> {
    const rows = await guard(
      ex<PasskeyDbRow>('passkeys')
        .where({ user_id: userId })
        .whereNull('removed_at')
        .orderBy([{ column: 'created_at' }, { column: 'id' }]),
    );
    return rows.map(toPasskey);
  }

  /**
   * The live passkeys of the user a login names, by username or by address (compared as
   * `UsersRepo.findByEmail` does), oldest first: one statement whether the name is nobody's,
   * belongs to a user without passkeys or to one with them — sign-in options take the same work
   * for each, so their timing tells nobody which.
   */
  async listLiveByLogin(by: { username: string } | { email: string }, ex: Executor = this.db.writer): Promise<PasskeyRecord[]> {
    const q = ex<PasskeyDbRow>('passkeys').join('users', 'users.id', 'passkeys.user_id').whereNull('passkeys.removed_at');
    if ('email' in by) q.whereRaw('lower(users.email) = lower(?)', [by.email]);
    else q.where('users.username', by.username);
    const rows = await guard(q.select('passkeys.*').orderBy([{ column: 'passkeys.created_at' }, { column: 'passkeys.id' }]));
    return rows.map(toPasskey);
  }

  /** How many live passkeys the user has. */
  async countLive(userId: string, ex: Executor = this.db.writer): Promise<number> {
    const row = await guard(ex('passkeys').where({ user_id: userId }).whereNull('removed_at').count<{ count: string }[]>('* as count').first());
    return Number(row?.count ?? 0);
  }

  /**
   * Records a use: the counter the authenticator reported (only ever forwards: a concurrent use
   * that saw a higher one wins), its backup state now and the time. False when the passkey is
   * gone, or its counter moved past `counter` meanwhile (a replayed or cloned assertion racing).
   * `updated_at` stays: it is when the name or state last changed, what replication's merge
   * weighs names by (src/core/replication/merge.ts, mergePasskey), so a use in one region does
   * not undo a rename made concurrently in another.
   */
  async recordUse(id: string, counter: number, backedUp: boolean, now: Date, ex: Executor = this.db.writer): Promise<boolean> {
    const rows = await guard(
      ex('passkeys')
        .where({ id })
        .whereNull('removed_at')
        // A counter only moves forwards; 0 after 0 is an authenticator that keeps none.
        .andWhereRaw('(counter < ?::bigint or (counter = 0 and ?::bigint = 0))', [counter, counter])
        .update({ counter, backed_up: backedUp, last_used_at: now, ...bump(ex) })
        .returning('id'),
    );
    return rows.length > 0;
  }

  /** Renames the user's live passkey; false when there is none with this id. */
  async rename(userId: string, id: string, name: string, now: Date, ex: Executor = this.db.writer): Promise<PasskeyRecord | undefined> {
    const rows = await guard(
      ex<PasskeyDbRow>('passkeys')
        .where({ id, user_id: userId })
        .whereNull('removed_at')
        .update({ name, updated_at: now, ...bump(ex) })
        .returning('*'),
    );
    return rows[0] ? toPasskey(rows[0]) : undefined;
  }

  /** Removes live passkeys of the user by id (every one, without `ids`); returns those removed. */
  async remove(userId: string, ids: string[] | undefined, now: Date, ex: Executor): Promise<PasskeyRecord[]> {
    if (ids?.length === 0) return [];
    const q = ex<PasskeyDbRow>('passkeys').where({ user_id: userId }).whereNull('removed_at');
    if (ids) q.whereIn('id', ids);
    const rows = await guard(q.update({ removed_at: now, updated_at: now, ...bump(ex) }).returning('*'));
    return rows.map(toPasskey);
  }

  /** Deletes up to `limit` passkeys removed before `before` (the cleanup job); returns how many. */
  deleteRemovedBefore(before: Date, limit: number): Promise<number> {
    return deleteBatchBefore(this.db, 'passkeys', 'removed_at', before, limit);
  }
}
