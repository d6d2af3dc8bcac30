import type { Knex } from 'knex';
import type {
  ReplicatedChallenge,
  ReplicatedClient,
  ReplicatedFactor,
  ReplicatedIdentity,
  ReplicatedKey,
  ReplicatedPasskey,
  ReplicatedRecoveryCode,
  ReplicatedSession,
  ReplicatedTokenUse,
  ReplicatedUser,
} from '../../model/replication.js';
import type { RevokedSession } from '../../model/session.js';
import type { Db, Executor } from './db.js';
import { challengeColumns, toChallenge, type ChallengeDbRow } from './email-challenges-repo.js';
import { factorColumns, toFactor, type FactorDbRow } from './mfa-factors-repo.js';
import { recoveryCodeColumns, toRecoveryCode, type RecoveryCodeDbRow } from './mfa-recovery-codes-repo.js';
import { tokenUseColumns } from './mfa-token-uses-repo.js';
import { guard } from './errors.js';
import { identityColumns, toIdentity, type IdentityDbRow } from './identities-repo.js';
import { passkeyColumns, toPasskey, type PasskeyDbRow } from './passkeys-repo.js';
import { serviceClientColumns, toServiceClient, type ServiceClientDbRow } from './service-clients-repo.js';
import { toSession, type SessionDbRow } from './sessions-repo.js';
import { toUserRecord, userColumns, type UserDbRow } from './users-repo.js';

/** A user's session cut-off as read for a batch's new sessions. */
export interface OwnerCutoff {
  id: string;
  before: Date | null;
  keep: string | null;
}

type RevokedRow = { id: string; expires_at: Date; user_id: string | null };

const REVOKED_COLUMNS = ['id', 'expires_at', 'user_id'];

/**
 * The SQL of applying a peer's batch: the local users, sessions, signing keys, e-mail challenges,
 * service clients, second factors, provider identities and passkeys rows a batch touches, the
 * applied-batch log and the tombstones of deleted users and clients. Every statement runs in the
 * caller's transaction; which rows win is decided by src/core/replication/merge.ts, and the order
 * of locks by src/core/replication/apply.ts.
 *
 * Rows are written with `authctl.applying = on` (see {@link captureChanges}): a region ships only its
 * own changes, so what it applies from a peer is not captured again.
 */
export class ReplicationApplyRepo {
  constructor(private readonly db: Db) {}

  /** Records a batch as applied; false when it was applied before (a redelivery). */
  async recordBatch(trx: Knex.Transaction, origin: string, batchId: string, now: Date): Promise<boolean> {
    const fresh = await trx('replication_applied')
      .insert({ origin, batch_id: batchId, applied_at: now })
      .onConflict(['origin', 'batch_id'])
      .ignore()
      .returning('batch_id');
    return fresh.length > 0;
  }

  /** Whether the transaction's writes from here on are captured for the peers (off while applying). */
  async captureChanges(ex: Executor, on: boolean): Promise<void> {
    await ex.raw(`select set_config('authctl.applying', ?, true)`, [on ? 'off' : 'on']);
  }

  /** Forgets applied-batch ids older than `before` (a re-delivery is never that late) and tombstones (users' and clients') older than `tombstonesBefore`. */
  async prune(before: Date, tombstonesBefore: Date): Promise<number> {
    const tombstones = await guard(this.db.writer('replication_tombstones').where('deleted_at', '<', tombstonesBefore).delete());
    const clientTombstones = await guard(this.db.writer('service_client_tombstones').where('deleted_at', '<', tombstonesBefore).delete());
    return tombstones + clientTombstones + (await guard(this.db.writer('replication_applied').where('applied_at', '<', before).delete()));
  }

  // ---- users

  /** The local user, locked for the rest of the transaction. */
  async lockUser(trx: Knex.Transaction, id: string): Promise<ReplicatedUser | undefined> {
    const row = await trx<UserDbRow>('users').where({ id }).forUpdate().first();
    return row && toReplicatedUser(row);
  }

  /**
   * The ids among `ids` of users held here, locked in id order: a batch's users are locked in one
   * statement, and in an order every batch and local writer's single-row lock agrees with.
   */
  lockUserIds(trx: Knex.Transaction, ids: string[]): Promise<Set<string>> {
    return lockIds(trx, 'users', ids, 'update');
  }

  /**
   * Of these usernames and addresses, those a user holds here: usernames compared as the unique
   * index compares them, addresses lower-cased like theirs. Nothing is locked: a name taken
   * meanwhile makes {@link insertNewUsers} insert fewer rows, and the caller then goes row by row.
   */
  async heldNames(trx: Knex.Transaction, usernames: string[], emails: string[]): Promise<{ usernames: Set<string>; emails: Set<string> }> {
    const result = await trx.raw<{ rows: Array<{ kind: 'username' | 'email'; value: string }> }>(
      `select 'username' as kind, n as value from unnest(?::text[]) as n where exists (select 1 from users u where u.username = n)
       union all
       select 'email', e from unnest(?::text[]) as e where exists (select 1 from users u where lower(u.email) = lower(e))`,
      [usernames, emails],
    );
    const held = { usernames: new Set<string>(), emails: new Set<string>() };
    for (const r of result.rows) (r.kind === 'username' ? held.usernames : held.emails).add(r.value);
    return held;
  }

  /**
   * Inserts users new here in one statement per thousand, skipping any row a unique index refuses
   * (its id, username or address taken since the caller looked); returns how many were inserted.
   */
  async insertNewUsers(trx: Knex.Transaction, users: ReplicatedUser[]): Promise<number> {
    return insertNew(trx, 'users', users.map(userRow));
  }

  /** Another user holding `username` here, locked. */
  async lockUsernameHolder(trx: Knex.Transaction, username: string, exceptId: string): Promise<ReplicatedUser | undefined> {
    const row = await trx<UserDbRow>('users').where({ username }).whereNot({ id: exceptId }).forUpdate().first();
    return row && toReplicatedUser(row);
  }

  /** Another user holding `email` here (compared lower-cased, as the unique index does), locked. */
  async lockEmailHolder(trx: Knex.Transaction, email: string, exceptId: string): Promise<ReplicatedUser | undefined> {
    const row = await trx<UserDbRow>('users').whereRaw('lower(email) = lower(?)', [email]).whereNot({ id: exceptId }).forUpdate().first();
    return row && toReplicatedUser(row);
  }

  /**
   * Takes the address (and its verification) from the loser of an address clash, and gives it
   * `username` if it has none. Like a rename, every region does the same, so this is not shipped
   * and the version stays.
   */
  async clearEmail(trx: Knex.Transaction, id: string, username: string | null): Promise<void> {
    await trx('users')
      .where({ id })
      .update({ email: null, email_verified_at: null, username: trx.raw('coalesce(username, ?)', [username]) });
  }

  /** Whether a user was deleted here or by a peer (within the tombstones' 30 days). */
  async isDeleted(trx: Knex.Transaction, id: string): Promise<boolean> {
    return (await trx('replication_tombstones').where({ id }).first()) !== undefined;
  }

  /** Which of these users were deleted. */
  async deletedAmong(trx: Knex.Transaction, ids: string[]): Promise<Set<string>> {
    const rows = await trx<{ id: string }>('replication_tombstones').whereIn('id', ids).select('id');
    return new Set(rows.map((r) => r.id));
  }

  async rename(trx: Knex.Transaction, id: string, username: string): Promise<void> {
    await trx('users').where({ id }).update({ username });
  }

  async upsertUser(trx: Knex.Transaction, user: ReplicatedUser): Promise<void> {
    await trx('users').insert(userRow(user)).onConflict('id').merge();
  }

  async deleteUser(trx: Knex.Transaction, id: string): Promise<void> {
    await trx('users').where({ id }).delete();
  }

  /**
   * Revokes the user's live sessions created before `before` (but `keep`): a password change or
   * logout-all elsewhere. Every region does the same on receiving the user, so this is not shipped.
   */
  async revokeBefore(trx: Knex.Transaction, userId: string, before: Date, keep: string | null, now: Date): Promise<RevokedSession[]> {
    const q = trx('sessions').where({ user_id: userId }).whereNull('revoked_at').where('created_at', '<', before);
    if (keep) void q.whereNot({ id: keep });
    const rows = await q.update({ revoked_at: now, revoke_reason: 'replicated', version: trx.raw('version + 1') }).returning<RevokedRow[]>(REVOKED_COLUMNS);
    return rows.map((r) => revokedAt(r, now));
  }

  // ---- sessions

  /**
   * Share-locks users (in id order) before their sessions, factors or identities are locked, in
   * the order a logout-all or password change takes them (users, then their sessions), so the two
   * never deadlock; returns the ids of those held here.
   */
  shareLockUsers(trx: Knex.Transaction, ids: string[]): Promise<Set<string>> {
    return lockIds(trx, 'users', ids, 'share');
  }

  /** The sessions this region holds among `ids`, locked. */
  async lockSessions(trx: Knex.Transaction, ids: string[]): Promise<ReplicatedSession[]> {
    const rows = await trx<SessionDbRow & { version: string | number }>('sessions').whereIn('id', ids).forUpdate();
    return rows.map((row) => ({ ...toSession(row), version: Number(row.version) }));
  }

  /**
   * The session cut-offs of these users (those that exist here), share-locked: a logout-all or
   * password change committing meanwhile either has set its cut-off before this reads it, or waits
   * for the sessions inserted next and then revokes them itself.
   */
  async ownerCutoffs(trx: Knex.Transaction, ids: string[]): Promise<OwnerCutoff[]> {
    const rows = await trx<UserDbRow>('users').whereIn('id', ids).select('id', 'sessions_revoked_before', 'sessions_revoked_keep').forShare();
    return rows.map((u) => ({ id: u.id, before: u.sessions_revoked_before, keep: u.sessions_revoked_keep }));
  }

  async insertSessions(trx: Knex.Transaction, sessions: ReplicatedSession[]): Promise<void> {
    await trx('sessions').insert(
      sessions.map((s) => ({
        ...mergedColumns(s),
        user_id: s.userId,
        home_region: s.homeRegion,
        created_at: s.createdAt,
        expires_at: s.expiresAt,
        user_agent: s.userAgent,
        ip: s.ip,
        // Set at the login and never changed: written with the row, not merged.
        idp: s.idp,
        passkey_id: s.passkeyId,
      })),
    );
  }

  /** Writes back the merged columns of sessions this region holds, in one statement. */
  async updateSessions(trx: Knex.Transaction, sessions: ReplicatedSession[]): Promise<void> {
    await trx.raw(
      `update sessions s set counter = b.counter, rotated_at = b.rotated_at, last_used_at = b.last_used_at,
              revoked_at = b.revoked_at, revoke_reason = b.revoke_reason, auth_time = b.auth_time, amr = b.amr, version = b.version
         from jsonb_to_recordset(?::jsonb)
              as b(id uuid, counter bigint, rotated_at timestamptz, last_used_at timestamptz,
                   revoked_at timestamptz, revoke_reason text, auth_time timestamptz, amr text[], version bigint)
        where s.id = b.id`,
      [JSON.stringify(sessions.map(mergedColumns))],
    );
  }

  /**
   * Revokes forked sessions as reuse. Captured on purpose, unlike the rest of the batch: every
   * region must learn that the session is revoked.
   */
  async revokeForks(trx: Knex.Transaction, ids: string[], now: Date): Promise<RevokedSession[]> {
    await this.captureChanges(trx, true);
    const rows = await trx('sessions')
      .whereIn('id', ids)
      .whereNull('revoked_at')
      .update({ revoked_at: now, revoke_reason: 'reuse', version: trx.raw('version + 1') })
      .returning<RevokedRow[]>(REVOKED_COLUMNS);
    await this.captureChanges(trx, false);
    return rows.map((r) => revokedAt(r, now));
  }

  /**
   * Revokes this region's live sessions of a user that a passkey signed in (`passkey_removed`),
   * its removal just applied here. Captured on purpose, as forks are: a session opened here with
   * the passkey before its removal arrived may have reached the other regions already, alive, and
   * the region that removed it could not revoke what it had not heard of.
   */
  async revokeSignedInBy(trx: Knex.Transaction, userId: string, passkeyId: string, now: Date): Promise<RevokedSession[]> {
    await this.captureChanges(trx, true);
    const rows = await trx('sessions')
      .where({ user_id: userId, passkey_id: passkeyId })
      .whereNull('revoked_at')
      .update({ revoked_at: now, revoke_reason: 'passkey_removed', version: trx.raw('version + 1') })
      .returning<RevokedRow[]>(REVOKED_COLUMNS);
    await this.captureChanges(trx, false);
    return rows.map((r) => revokedAt(r, now));
  }

  // ---- e-mail challenges

  /** The local challenge, locked for the rest of the transaction. */
  async lockChallenge(trx: Knex.Transaction, id: string): Promise<ReplicatedChallenge | undefined> {
    const row = await trx<ChallengeDbRow>('email_challenges').where({ id }).forUpdate().first();
    return row && toChallenge(row);
  }

  /**
   * Whether the user exists here, share-locked so that it is not deleted before its challenge
   * is inserted (the foreign key).
   */
  async shareLockUser(trx: Knex.Transaction, id: string): Promise<boolean> {
    return (await trx('users').where({ id }).forShare().first('id')) !== undefined;
  }

  /** Inserts a challenge new here; false when another batch inserted it meanwhile. */
  async insertChallenge(trx: Knex.Transaction, c: ReplicatedChallenge): Promise<boolean> {
    const rows = await trx('email_challenges').insert(challengeColumns(c)).onConflict('id').ignore().returning('id');
    return rows.length > 0;
  }

  /** Writes back the merged state of a challenge (what a merge may change: tries, end, version). */
  async updateChallenge(trx: Knex.Transaction, c: ReplicatedChallenge): Promise<void> {
    await trx('email_challenges').where({ id: c.id }).update({ attempts: c.attempts, ended_at: c.endedAt, end_reason: c.endReason, version: c.version });
  }

  // ---- second factors

  /** The local factor, locked for the rest of the transaction. */
  async lockFactor(trx: Knex.Transaction, id: string): Promise<ReplicatedFactor | undefined> {
    const row = await trx<FactorDbRow>('mfa_factors').where({ id }).forUpdate().first();
    return row && toFactor(row);
  }

  /** Inserts a factor new here; false when another batch inserted it meanwhile. */
  async insertFactor(trx: Knex.Transaction, f: ReplicatedFactor): Promise<boolean> {
    const rows = await trx('mfa_factors').insert(factorColumns(f)).onConflict('id').ignore().returning('id');
    return rows.length > 0;
  }

  /** Writes back the merged state of a factor (what a merge may change). */
  async updateFactor(trx: Knex.Transaction, f: ReplicatedFactor): Promise<void> {
    await trx('mfa_factors').where({ id: f.id }).update({
      status: f.status,
      confirmed_at: f.confirmedAt,
      last_used_step: f.lastUsedStep,
      removed_at: f.removedAt,
      secret_sealed: f.secretSealed,
      version: f.version,
    });
  }

  /** The local recovery code, locked for the rest of the transaction. */
  async lockRecoveryCode(trx: Knex.Transaction, id: string): Promise<ReplicatedRecoveryCode | undefined> {
    const row = await trx<RecoveryCodeDbRow>('mfa_recovery_codes').where({ id }).forUpdate().first();
    return row && toRecoveryCode(row);
  }

  /** Inserts a recovery code new here; false when another batch inserted it meanwhile. */
  async insertRecoveryCode(trx: Knex.Transaction, c: ReplicatedRecoveryCode): Promise<boolean> {
    const rows = await trx('mfa_recovery_codes').insert(recoveryCodeColumns(c)).onConflict('id').ignore().returning('id');
    return rows.length > 0;
  }

  /** Writes back the merged state of a recovery code (its end and version). */
  async updateRecoveryCode(trx: Knex.Transaction, c: ReplicatedRecoveryCode): Promise<void> {
    await trx('mfa_recovery_codes').where({ id: c.id }).update({ ended_at: c.endedAt, end_reason: c.endReason, version: c.version });
  }

  /** Records a used mfaToken; a use recorded before (here or by another batch) stays as it is. */
  async insertTokenUse(trx: Knex.Transaction, u: ReplicatedTokenUse): Promise<void> {
    await trx('mfa_token_uses').insert(tokenUseColumns(u)).onConflict('id').ignore();
  }

  // ---- provider identities

  /** The local identity, locked for the rest of the transaction. */
  async lockIdentity(trx: Knex.Transaction, id: string): Promise<ReplicatedIdentity | undefined> {
    const row = await trx<IdentityDbRow>('user_identities').where({ id }).forUpdate().first();
    return row && toIdentity(row);
  }

  /** The ids among `ids` of identities held here, locked in id order. */
  lockIdentityIds(trx: Knex.Transaction, ids: string[]): Promise<Set<string>> {
    return lockIds(trx, 'user_identities', ids, 'update');
  }

  /**
   * Of these provider accounts, those any identity here (live or removed) is of, as
   * {@link subjectKey}s. Nothing is locked: an identity linked meanwhile makes
   * {@link insertNewIdentities} insert fewer rows, and the caller then goes row by row.
   */
  async heldSubjects(trx: Knex.Transaction, pairs: Array<Pick<ReplicatedIdentity, 'provider' | 'subject'>>): Promise<Set<string>> {
    const result = await trx.raw<{ rows: Array<{ provider: string; subject: string }> }>(
      `select distinct i.provider, i.subject
         from user_identities i join unnest(?::text[], ?::text[]) as p(provider, subject) on i.provider = p.provider and i.subject = p.subject`,
      [pairs.map((p) => p.provider), pairs.map((p) => p.subject)],
    );
    return new Set(result.rows.map(subjectKey));
  }

  /** Inserts identities new here, skipping any row a unique index refuses; returns how many were inserted. */
  async insertNewIdentities(trx: Knex.Transaction, identities: ReplicatedIdentity[]): Promise<number> {
    return insertNew(trx, 'user_identities', identities.map(identityColumns));
  }

  /**
   * The other identities of the same provider account that were live when `identity` was
   * created: those live here, and those removed after its creation; locked, their users first
   * ({@link lockRivals}).
   */
  async lockRivalIdentities(trx: Knex.Transaction, identity: ReplicatedIdentity): Promise<ReplicatedIdentity[]> {
    const rows = await lockRivals<IdentityDbRow>(trx, 'user_identities', { provider: identity.provider, subject: identity.subject }, identity);
    return rows.map(toIdentity);
  }

  /** Inserts an identity new here; false when another batch inserted it meanwhile. */
  async insertIdentity(trx: Knex.Transaction, i: ReplicatedIdentity): Promise<boolean> {
    const rows = await trx('user_identities').insert(identityColumns(i)).onConflict('id').ignore().returning('id');
    return rows.length > 0;
  }

  /** Writes back the merged state of an identity (what a merge may change). */
  async updateIdentity(trx: Knex.Transaction, i: ReplicatedIdentity): Promise<void> {
    await trx('user_identities')
      .where({ id: i.id })
      .update({ email: i.email, email_verified: i.emailVerified, last_used_at: i.lastUsedAt, removed_at: i.removedAt, version: i.version });
  }

  /** Marks the loser of an identity clash removed: every region does the same, so this is not shipped and the version stays. */
  async removeIdentity(trx: Knex.Transaction, id: string, now: Date): Promise<void> {
    await trx('user_identities').where({ id }).whereNull('removed_at').update({ removed_at: now });
  }

  // ---- passkeys

  /** The local passkey, locked for the rest of the transaction. */
  async lockPasskey(trx: Knex.Transaction, id: string): Promise<ReplicatedPasskey | undefined> {
    const row = await trx<PasskeyDbRow>('passkeys').where({ id }).forUpdate().first();
    return row && toPasskey(row);
  }

  /**
   * The other passkeys of the same credential that were live when `passkey` was created: those
   * live here, and those removed after its creation; locked, their users first ({@link lockRivals}).
   */
  async lockRivalPasskeys(trx: Knex.Transaction, passkey: ReplicatedPasskey): Promise<ReplicatedPasskey[]> {
    const rows = await lockRivals<PasskeyDbRow>(trx, 'passkeys', { credential_id: passkey.credentialId }, passkey);
    return rows.map(toPasskey);
  }

  /** Inserts a passkey new here; false when another batch inserted it meanwhile. */
  async insertPasskey(trx: Knex.Transaction, p: ReplicatedPasskey): Promise<boolean> {
    const rows = await trx('passkeys').insert(passkeyColumns(p)).onConflict('id').ignore().returning('id');
    return rows.length > 0;
  }

  /** Writes back the merged state of a passkey (what a merge may change). */
  async updatePasskey(trx: Knex.Transaction, p: ReplicatedPasskey): Promise<void> {
    await trx('passkeys').where({ id: p.id }).update({
      counter: p.counter,
      backed_up: p.backedUp,
      name: p.name,
      updated_at: p.updatedAt,
      last_used_at: p.lastUsedAt,
      removed_at: p.removedAt,
      version: p.version,
    });
  }

  /** Marks the loser of a passkey clash removed: every region does the same, so this is not shipped and the version stays. */
  async removePasskey(trx: Knex.Transaction, id: string, now: Date): Promise<void> {
    await trx('passkeys').where({ id }).whereNull('removed_at').update({ removed_at: now });
  }

  // ---- service clients

  /** The local client, locked for the rest of the transaction. */
  async lockClient(trx: Knex.Transaction, id: string): Promise<ReplicatedClient | undefined> {
    const row = await trx<ServiceClientDbRow>('service_clients').where({ id }).forUpdate().first();
    return row && toServiceClient(row);
  }

  /** Whether a client was deleted here or by a peer (within the tombstones' 30 days). */
  async isClientDeleted(trx: Knex.Transaction, id: string): Promise<boolean> {
    return (await trx('service_client_tombstones').where({ id }).first()) !== undefined;
  }

  async upsertClient(trx: Knex.Transaction, c: ReplicatedClient): Promise<void> {
    await trx('service_clients').insert(serviceClientColumns(c)).onConflict('id').merge();
  }

  /**
   * Deletes a client a peer deleted, and leaves its tombstone even if the client never arrived
   * here (so it cannot arrive later from a third region). True when a row was deleted.
   */
  async deleteClient(trx: Knex.Transaction, id: string, now: Date): Promise<boolean> {
    await trx('service_client_tombstones').insert({ id, deleted_at: now }).onConflict('id').ignore();
    return (await trx('service_clients').where({ id }).delete()) > 0;
  }

  // ---- signing keys

  /** Public keys of other regions: inserted once, then only their retirement changes; true when this changed a row. */
  async upsertKey(trx: Knex.Transaction, k: ReplicatedKey): Promise<boolean> {
    const rows = await trx('signing_keys')
      .insert({
        kid: k.kid,
        alg: k.alg,
        public_jwk: JSON.stringify(k.publicJwk),
        private_jwk_encrypted: null,
        home_region: k.homeRegion,
        created_at: k.createdAt,
        activates_at: k.activatesAt,
        retires_at: k.retiresAt,
        version: k.version,
      })
      .onConflict('kid')
      .merge({ retires_at: k.retiresAt, version: k.version })
      .where('signing_keys.version', '<', k.version)
      .returning('kid');
    return rows.length > 0;
  }
}

/**
 * The rows of `table` that must not be live alongside `row` (those matching `same`, other than
 * it, live here or removed only after it was created), locked — their users share-locked first.
 * The rivals are other users' rows, and the flows take a user before its identities or passkeys
 * (a removal locks the user, then updates the row): locking a rival first would hold what such a
 * flow waits for while a later change of the batch waits for that flow's user — a deadlock.
 */
async function lockRivals<Row extends { user_id: string }>(
  trx: Knex.Transaction,
  table: 'user_identities' | 'passkeys',
  same: Record<string, string>,
  row: { id: string; createdAt: Date },
): Promise<Row[]> {
  const rivals = () =>
    trx(table)
      .where(same)
      .whereNot('id', row.id)
      .andWhere((q) => void q.whereNull('removed_at').orWhere('removed_at', '>', row.createdAt));
  const owners = await rivals().distinct<Array<{ user_id: string }>>('user_id');
  await lockIds(
    trx,
    'users',
    owners.map((o) => o.user_id),
    'share',
  );
  return (await rivals().forUpdate()) as Row[];
}

/** The ids among `ids` of rows of `table` held here, locked (`for update` or `for share`) in id order. */
async function lockIds(trx: Knex.Transaction, table: 'users' | 'user_identities', ids: string[], mode: 'update' | 'share'): Promise<Set<string>> {
  if (ids.length === 0) return new Set();
  const q = trx<{ id: string }>(table).whereRaw('id = any(?::uuid[])', [ids]).orderBy('id');
  const rows = await (mode === 'update' ? q.forUpdate() : q.forShare()).select('id');
  return new Set(rows.map((r) => r.id));
}

/** A provider account as one string: its provider and subject (neither holds a NUL). */
export function subjectKey(i: Pick<ReplicatedIdentity, 'provider' | 'subject'>): string {
  return `${i.provider}\u0000${i.subject}`;
}

/** Rows per INSERT: well within PostgreSQL's 65,535 parameters at the widest row (13 columns). */
const INSERT_CHUNK = 1_000;

/** Multi-row inserts that skip rows any unique index refuses (`on conflict do nothing`); returns how many went in. */
async function insertNew(trx: Knex.Transaction, table: string, rows: Array<Record<string, unknown>>): Promise<number> {
  let inserted = 0;
  for (let i = 0; i < rows.length; i += INSERT_CHUNK) {
    inserted += (
      await trx(table)
        .insert(rows.slice(i, i + INSERT_CHUNK))
        .onConflict()
        .ignore()
        .returning('id')
    ).length;
  }
  return inserted;
}

/** A replicated user as its row. */
function userRow(user: ReplicatedUser) {
  return {
    ...userColumns(user),
    sessions_revoked_before: user.sessionsRevokedBefore,
    sessions_revoked_keep: user.sessionsRevokedKeep,
    version: user.version,
  };
}

function toReplicatedUser(row: UserDbRow): ReplicatedUser {
  return { ...toUserRecord(row), sessionsRevokedBefore: row.sessions_revoked_before, sessionsRevokedKeep: row.sessions_revoked_keep };
}

/** The columns of a session that merging changes, as written back. */
function mergedColumns(s: ReplicatedSession) {
  return {
    id: s.id,
    counter: s.counter,
    rotated_at: s.rotatedAt,
    last_used_at: s.lastUsedAt,
    revoked_at: s.revokedAt,
    revoke_reason: s.revokeReason,
    auth_time: s.authTime,
    amr: s.amr,
    version: s.version,
  };
}

function revokedAt(row: RevokedRow, now: Date): RevokedSession {
  return { id: row.id, revokedAt: now, expiresAt: row.expires_at, userId: row.user_id };
}
