import type { Knex } from 'knex';
import type {
  ReplicatedBatch,
  ReplicatedChallenge,
  ReplicatedChange,
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
import { AppError } from '../../platform/errors.js';
import { subjectKey, type ReplicationApplyRepo } from '../../store/pg/replication-apply-repo.js';
import {
  becameRevoked,
  clientWins,
  cutOffRevokes,
  cutoffAdvances,
  foldSessions,
  keepsFirstCreated,
  mergeChallenge,
  mergeFactor,
  mergeIdentity,
  mergePasskey,
  mergeRecoveryCode,
  resolveClash,
  resolveEmailClash,
  userWins,
  type CreationRank,
  type SessionCutoff,
} from './merge.js';

/** What applying a batch changed locally, for the caller to make effective (caches, logs). */
export interface ApplyResult {
  duplicate: boolean;
  applied: number;
  /**
   * Sessions whose state here went from live (or unknown) to revoked: replicated revocations,
   * sessions that arrived already revoked or were revoked further on in the same batch, those a
   * user's cut-off revoked, and detected forks.
   */
  revoked: RevokedSession[];
  /** Sessions revoked because two regions rotated them from the same counter. */
  forks: string[];
  /** Username clashes resolved by renaming the loser. */
  renamed: Array<{ userId: string; from: string; to: string; winnerId: string }>;
  /**
   * Address clashes resolved by taking the address from the loser (`userId`); `assignedUsername`
   * is the username it was given for having none (derived from the address: not for logs).
   */
  emailClashes: Array<{ userId: string; winnerId: string; assignedUsername: string | null }>;
  /**
   * Provider accounts two regions linked (during a partition) to two live identities: the one
   * kept live everywhere, and the one removed here (as in every region).
   */
  identityClashes: Array<{ provider: string; keptId: string; removedId: string }>;
  /**
   * Credentials two regions registered (during a partition) as two live passkeys: the one kept
   * live everywhere, and the one removed here (as in every region).
   */
  passkeyClashes: Array<{ keptId: string; removedId: string }>;
  keysChanged: boolean;
  /** A service client was added, rotated or deleted here: the authentication snapshot must be reloaded. */
  clientsChanged: boolean;
}

/**
 * Applies a decoded batch in the caller's transaction: the order in which rows are locked and
 * written. What wins is decided by the pure rules of merge.ts; the SQL is ReplicationApplyRepo's.
 */
export class BatchApplier {
  constructor(private readonly repo: ReplicationApplyRepo) {}

  /**
   * Idempotent: a batch id seen before is skipped; within a batch each row merges by its own rule
   * (users by version, sessions by counter, keys once, challenges by {@link mergeChallenge},
   * service clients by {@link clientWins}, factors by {@link mergeFactor}, recovery codes by
   * {@link mergeRecoveryCode}, used mfaTokens once, identities by {@link mergeIdentity},
   * passkeys by {@link mergePasskey}).
   */
  async apply(trx: Knex.Transaction, batch: ReplicatedBatch, now: Date): Promise<ApplyResult> {
    const result: ApplyResult = {
      duplicate: false,
      applied: 0,
      revoked: [],
      forks: [],
      renamed: [],
      emailClashes: [],
      identityClashes: [],
      passkeyClashes: [],
      keysChanged: false,
      clientsChanged: false,
    };
    if (!(await this.repo.recordBatch(trx, batch.origin, batch.batchId, now))) return { ...result, duplicate: true };
    await this.repo.captureChanges(trx, false);
    const { changes } = batch;
    // Consecutive session changes are merged as one group: a batch under refresh load holds
    // many rotations of few sessions, and each session is then read and written once.
    // So are consecutive users, and consecutive identities: an import or a new peer's snapshot
    // ships them by the thousand, nearly all new here, and those are inserted a run at a time.
    for (let i = 0; i < changes.length;) {
      const change = changes[i]!;
      if (GROUPED.has(change.entity)) {
        const group = runFrom(changes, i);
        await this.applyGroup(trx, group, now, result);
        result.applied += group.length;
        i += group.length;
        continue;
      }
      switch (change.entity) {
        case 'users_deleted':
          await this.repo.deleteUser(trx, change.payload.id);
          break;
        case 'signing_keys':
          await this.applyKey(trx, change.payload, result);
          break;
        case 'email_challenges':
          await this.applyChallenge(trx, change.payload, now);
          break;
        case 'service_clients':
          if (await this.applyClient(trx, change.payload)) result.clientsChanged = true;
          break;
        case 'service_clients_deleted':
          if (await this.repo.deleteClient(trx, change.payload.id, now)) result.clientsChanged = true;
          break;
        case 'mfa_factors':
          await this.applyFactor(trx, change.payload);
          break;
        case 'mfa_recovery_codes':
          await this.applyRecoveryCode(trx, change.payload);
          break;
        case 'mfa_token_uses':
          await this.applyTokenUse(trx, change.payload, now);
          break;
        case 'passkeys':
          await this.applyPasskey(trx, change.payload, now, result);
          break;
      }
      result.applied += 1;
      i += 1;
    }
    return result;
  }

  /** Consecutive changes of one of the {@link GROUPED} entities (users and identities one by one when alone). */
  private async applyGroup(trx: Knex.Transaction, group: ReplicatedChange[], now: Date, result: ApplyResult): Promise<void> {
    const { entity } = group[0]!;
    if (entity === 'sessions') await this.applySessions(trx, payloadsOf(group, 'sessions'), now, result);
    else if (group.length < RUN_MIN) for (const change of group) await this.applyAlone(trx, change, now, result);
    else if (entity === 'users') await this.applyUsers(trx, payloadsOf(group, 'users'), now, result);
    else await this.applyIdentities(trx, payloadsOf(group, 'user_identities'), now, result);
  }

  private async applyAlone(trx: Knex.Transaction, change: ReplicatedChange, now: Date, result: ApplyResult): Promise<void> {
    if (change.entity === 'users') await this.applyUser(trx, change.payload, now, result);
    else if (change.entity === 'user_identities') await this.applyIdentity(trx, change.payload, now, result);
  }

  /**
   * Consecutive users of a batch, with the outcome of applying them one by one ({@link applyUser}).
   * The users held here are locked first, in one statement in id order. A user that is plainly
   * new — not held here, not deleted, without a session cut-off, its id, username and address
   * (lower-cased) found once in the group and held by no one here — is decided before any SQL:
   * {@link applyUser} would insert it unchanged, no merge rule having anything to weigh. Those
   * are inserted a run at a time ({@link inRuns}); every other user goes through applyUser in its
   * place in the batch.
   */
  private async applyUsers(trx: Knex.Transaction, users: ReplicatedUser[], now: Date, result: ApplyResult): Promise<void> {
    const one = (user: ReplicatedUser) => this.applyUser(trx, user, now, result);
    const held = await this.repo.lockUserIds(trx, [...new Set(users.map((u) => u.id))].sort());
    const ids = counts(users.map((u) => u.id));
    const usernames = counts(users.flatMap(usernameOf));
    const emails = counts(users.flatMap((u) => emailOf(u).map((e) => e.toLowerCase())));
    const once = (u: ReplicatedUser) =>
      ids.get(u.id) === 1 && usernameOf(u).every((n) => usernames.get(n) === 1) && emailOf(u).every((e) => emails.get(e.toLowerCase()) === 1);
    const unheld = users.filter((u) => !held.has(u.id) && u.sessionsRevokedBefore === null && once(u));
    const deleted = unheld.length > 0 ? await this.repo.deletedAmong(trx, unheld.map(idOf)) : new Set<string>();
    const candidates = unheld.filter((u) => !deleted.has(u.id));
    const taken = candidates.length > 0 ? await this.repo.heldNames(trx, candidates.flatMap(usernameOf), candidates.flatMap(emailOf)) : undefined;
    const fresh = new Set(candidates.filter((u) => !usernameOf(u).some((n) => taken?.usernames.has(n)) && !emailOf(u).some((e) => taken?.emails.has(e))));
    // A deleted user stays deleted: skipped here, as applyUser skips it.
    const rest = users.filter((u) => !deleted.has(u.id));
    await inRuns(trx, rest, fresh, (ex, run) => this.repo.insertNewUsers(ex, run), one);
  }

  /**
   * Users: the incoming row replaces the local one if it wins ({@link userWins}); a deleted user
   * stays deleted. A username another user holds here is decided by {@link resolveClash}, and the
   * loser renamed here as in every region; an address another user holds, by
   * {@link resolveEmailClash}. A newer session cut-off revokes this region's sessions
   * of the user from before it — those it opened itself during a partition included.
   */
  private async applyUser(trx: Knex.Transaction, incoming: ReplicatedUser, now: Date, result: ApplyResult): Promise<void> {
    const local = await this.repo.lockUser(trx, incoming.id);
    if (local && !userWins(incoming, local)) return;
    if (!local && (await this.repo.isDeleted(trx, incoming.id))) return;
    let user = incoming;
    const holder = incoming.username === null ? undefined : await this.repo.lockUsernameHolder(trx, incoming.username, incoming.id);
    if (holder && holder.username !== null && incoming.username !== null) {
      const clash = resolveClash({ ...incoming, username: incoming.username }, { ...holder, username: holder.username });
      result.renamed.push({ userId: clash.loserId, from: clash.from, to: clash.to, winnerId: clash.winnerId });
      if (clash.incomingWins) await this.repo.rename(trx, holder.id, clash.to);
      else user = { ...incoming, username: clash.to };
    }
    user = await this.settleEmailClash(trx, user, result);
    await this.repo.upsertUser(trx, user);
    if (user.sessionsRevokedBefore && cutoffAdvances(user.sessionsRevokedBefore, local?.sessionsRevokedBefore)) {
      // Every region does the same on receiving the user, so this is not shipped.
      result.revoked.push(...(await this.repo.revokeBefore(trx, user.id, user.sessionsRevokedBefore, user.sessionsRevokedKeep, now)));
    }
  }

  /**
   * An address another user holds here (two regions accepted it for two users during a
   * partition): the winner keeps it, the loser's address and verification are cleared — here the
   * holder's row, or the incoming user before it is written — and a loser left without an
   * identifier is given a username (merge.ts, `emailClashName`). Every region decides alike, so none of it is shipped.
   */
  private async settleEmailClash(trx: Knex.Transaction, user: ReplicatedUser, result: ApplyResult): Promise<ReplicatedUser> {
    if (user.email === null) return user;
    const holder = await this.repo.lockEmailHolder(trx, user.email, user.id);
    if (!holder) return user;
    const clash = resolveEmailClash(user, holder);
    result.emailClashes.push({ userId: clash.loserId, winnerId: clash.winnerId, assignedUsername: clash.assignUsername });
    if (clash.incomingWins) {
      await this.repo.clearEmail(trx, holder.id, clash.assignUsername);
      return user;
    }
    return { ...user, email: null, emailVerifiedAt: null, username: user.username ?? clash.assignUsername };
  }

  /**
   * E-mail challenges: the local row is locked first, before its user (the order the e-mail flows
   * take them in, so the two never deadlock), and the incoming state merged into it by
   * {@link mergeChallenge}: an ended challenge stays ended. A challenge new here is inserted
   * once its user is here (share-locked against a delete meanwhile): one of a deleted user is
   * skipped, one of a user not replicated here yet refuses the batch for now (`conflict`, as for
   * sessions: the sender retries); a sign-up code, which has no user yet, is inserted as it is.
   * An expired one not held here is skipped: it can prove nothing, and the cleanup job may have
   * deleted it here already.
   */
  private async applyChallenge(trx: Knex.Transaction, incoming: ReplicatedChallenge, now: Date): Promise<void> {
    const local = await this.repo.lockChallenge(trx, incoming.id);
    if (!local) {
      if (incoming.expiresAt.getTime() <= now.getTime()) return;
      // A sign-in code to an address without an account (`identity.otpSignup`) has no user to wait for.
      if (incoming.userId !== null && !(await this.repo.shareLockUser(trx, incoming.userId))) {
        if (await this.repo.isDeleted(trx, incoming.userId)) return;
        throw new AppError('conflict', 'an e-mail challenge of a user not replicated here yet');
      }
      if (await this.repo.insertChallenge(trx, incoming)) return;
    }
    // Held here, or inserted by a concurrent batch since the lock above found nothing.
    const held = local ?? (await this.repo.lockChallenge(trx, incoming.id));
    if (!held) return;
    const merged = mergeChallenge(held, incoming);
    if (merged.changed) await this.repo.updateChallenge(trx, merged.state);
  }

  /**
   * Whether the user of a factor, recovery code or used mfaToken is here, share-locked (so it is
   * not deleted before the row is inserted: the foreign key) — taken before the row itself, in
   * the order the factor flows lock them (the user, then its factors and codes), so the two never
   * deadlock. False for a deleted user (the row is skipped); `conflict` for a user not replicated
   * here yet (the sender retries the batch: the user comes from its home region's stream).
   */
  private async ownerHere(trx: Knex.Transaction, userId: string, what: string): Promise<boolean> {
    if (await this.repo.shareLockUser(trx, userId)) return true;
    if (await this.repo.isDeleted(trx, userId)) return false;
    throw new AppError('conflict', `${what} of a user not replicated here yet`);
  }

  /**
   * TOTP factors: inserted when new here, else merged by {@link mergeFactor} (a removed factor
   * stays removed, a used step stays used).
   */
  private async applyFactor(trx: Knex.Transaction, incoming: ReplicatedFactor): Promise<void> {
    if (!(await this.ownerHere(trx, incoming.userId, 'a second factor'))) return;
    const local = await this.repo.lockFactor(trx, incoming.id);
    if (!local && (await this.repo.insertFactor(trx, incoming))) return;
    // Held here, or inserted by a concurrent batch since the lock above found nothing.
    const held = local ?? (await this.repo.lockFactor(trx, incoming.id));
    if (!held) return;
    const merged = mergeFactor(held, incoming);
    if (merged.changed) await this.repo.updateFactor(trx, merged.state);
  }

  /** Recovery codes: inserted when new here, else merged by {@link mergeRecoveryCode} (an ended code stays ended). */
  private async applyRecoveryCode(trx: Knex.Transaction, incoming: ReplicatedRecoveryCode): Promise<void> {
    if (!(await this.ownerHere(trx, incoming.userId, 'a recovery code'))) return;
    const local = await this.repo.lockRecoveryCode(trx, incoming.id);
    if (!local && (await this.repo.insertRecoveryCode(trx, incoming))) return;
    const held = local ?? (await this.repo.lockRecoveryCode(trx, incoming.id));
    if (!held) return;
    const merged = mergeRecoveryCode(held, incoming);
    if (merged.changed) await this.repo.updateRecoveryCode(trx, merged.state);
  }

  /** A used mfaToken: recorded once; one that has expired proves nothing any more and is skipped. */
  private async applyTokenUse(trx: Knex.Transaction, incoming: ReplicatedTokenUse, now: Date): Promise<void> {
    if (incoming.expiresAt.getTime() <= now.getTime()) return;
    if (incoming.userId !== null && !(await this.ownerHere(trx, incoming.userId, 'a used mfaToken'))) return;
    await this.repo.insertTokenUse(trx, incoming);
  }

  /**
   * Consecutive identities of a batch, with the outcome of applying them one by one
   * ({@link applyIdentity}). Their users are share-locked first, then the identities held here
   * locked (each in one statement in id order: users before identities, as one by one). An
   * identity that is plainly new — its user here, itself not, its id and provider account found
   * once in the group and no identity here (live or removed) of that account — would be inserted
   * unchanged, no clash to settle; those are inserted a run at a time ({@link inRuns}), every
   * other identity goes through applyIdentity in its place in the batch.
   */
  private async applyIdentities(trx: Knex.Transaction, identities: ReplicatedIdentity[], now: Date, result: ApplyResult): Promise<void> {
    const one = (identity: ReplicatedIdentity) => this.applyIdentity(trx, identity, now, result);
    const owners = await this.repo.shareLockUsers(trx, [...new Set(identities.map((i) => i.userId))].sort());
    const held = await this.repo.lockIdentityIds(trx, [...new Set(identities.map((i) => i.id))].sort());
    const ids = counts(identities.map((i) => i.id));
    const subjects = counts(identities.map(subjectKey));
    const candidates = identities.filter((i) => owners.has(i.userId) && !held.has(i.id) && ids.get(i.id) === 1 && subjects.get(subjectKey(i)) === 1);
    const taken = candidates.length > 0 ? await this.repo.heldSubjects(trx, candidates) : new Set<string>();
    const fresh = new Set(candidates.filter((i) => !taken.has(subjectKey(i))));
    await inRuns(trx, identities, fresh, (ex, run) => this.repo.insertNewIdentities(ex, run), one);
  }

  /**
   * Provider identities: inserted when new here, else merged by {@link mergeIdentity} (a removed
   * identity stays removed). A live identity new here whose provider account another identity is
   * live for (two regions linked it during a partition) is settled by {@link settleIdentityClash}.
   */
  private async applyIdentity(trx: Knex.Transaction, incoming: ReplicatedIdentity, now: Date, result: ApplyResult): Promise<void> {
    if (!(await this.ownerHere(trx, incoming.userId, 'a provider identity'))) return;
    const local = await this.repo.lockIdentity(trx, incoming.id);
    if (!local) {
      const state = incoming.removedAt === null ? await this.settleIdentityClash(trx, incoming, now, result) : incoming;
      if (await this.repo.insertIdentity(trx, state)) return;
    }
    const held = local ?? (await this.repo.lockIdentity(trx, incoming.id));
    if (!held) return;
    const merged = mergeIdentity(held, incoming);
    if (merged.changed) await this.repo.updateIdentity(trx, merged.state);
  }

  /**
   * One provider account, two identities (docs/consistency.md#provider-identities): the one
   * created first (then the lower id, {@link keepsFirstCreated}) stays live, the other is marked
   * removed — the incoming one before it is inserted, or the one held here. The other identities
   * of the pair that count are those live here, and those removed only after the incoming one was
   * created (they were live alongside it). Every region decides alike, so none of it is shipped.
   */
  private async settleIdentityClash(trx: Knex.Transaction, incoming: ReplicatedIdentity, now: Date, result: ApplyResult): Promise<ReplicatedIdentity> {
    return settleLiveClash(incoming, await this.repo.lockRivalIdentities(trx, incoming), now, {
      remove: (id) => this.repo.removeIdentity(trx, id, now),
      report: (keptId, removedId) => result.identityClashes.push({ provider: incoming.provider, keptId, removedId }),
    });
  }

  /**
   * Passkeys: inserted when new here, else merged by {@link mergePasskey} (a removed passkey
   * stays removed, the counter only moves forwards). A live passkey new here whose credential
   * another passkey is live for (two regions registered it during a partition) is settled by
   * {@link settlePasskeyClash}. A removal that arrives ends this region's sessions the passkey
   * signed in — those opened here before the removal was heard of included. Few per user, so one by one.
   */
  private async applyPasskey(trx: Knex.Transaction, incoming: ReplicatedPasskey, now: Date, result: ApplyResult): Promise<void> {
    if (!(await this.ownerHere(trx, incoming.userId, 'a passkey'))) return;
    const local = await this.repo.lockPasskey(trx, incoming.id);
    if (!local) {
      const state = incoming.removedAt === null ? await this.settlePasskeyClash(trx, incoming, now, result) : incoming;
      if (await this.repo.insertPasskey(trx, state)) {
        if (state.removedAt !== null) result.revoked.push(...(await this.repo.revokeSignedInBy(trx, state.userId, state.id, now)));
        return;
      }
    }
    const held = local ?? (await this.repo.lockPasskey(trx, incoming.id));
    if (!held) return;
    const merged = mergePasskey(held, incoming);
    if (merged.changed) await this.repo.updatePasskey(trx, merged.state);
    if (held.removedAt === null && merged.state.removedAt !== null) {
      result.revoked.push(...(await this.repo.revokeSignedInBy(trx, held.userId, held.id, now)));
    }
  }

  /**
   * One credential, two passkeys (docs/consistency.md#passkeys) — the same authenticator
   * registered to two accounts in two regions during a partition, which the live credential index
   * would refuse: as for provider identities ({@link settleIdentityClash}), the one created first
   * (then the lower id, {@link keepsFirstCreated}) stays live, the other is marked removed. Every
   * region decides alike, so none of it is shipped.
   */
  private async settlePasskeyClash(trx: Knex.Transaction, incoming: ReplicatedPasskey, now: Date, result: ApplyResult): Promise<ReplicatedPasskey> {
    return settleLiveClash(incoming, await this.repo.lockRivalPasskeys(trx, incoming), now, {
      remove: (id) => this.repo.removePasskey(trx, id, now),
      report: (keptId, removedId) => result.passkeyClashes.push({ keptId, removedId }),
    });
  }

  /**
   * Sessions: folded in order in memory by {@link foldSessions}, then written with one statement
   * per kind. A fork (two regions rotated the session from the same counter) is revoked here as
   * reuse, and that revocation ships everywhere.
   */
  private async applySessions(trx: Knex.Transaction, changes: ReplicatedSession[], now: Date, result: ApplyResult): Promise<void> {
    const ids = [...new Set(changes.map((c) => c.id))];
    // Users before sessions, as a logout-all or password change locks them (users, then their
    // sessions): the same order in both, so the two never deadlock.
    await this.repo.shareLockUsers(trx, [...new Set(changes.map((c) => c.userId).filter((id): id is string => id !== null))]);
    const locals = new Map((await this.repo.lockSessions(trx, ids)).map((s) => [s.id, s]));
    const { inserted, updated, forks } = foldSessions(locals, changes);
    const deletedOwners = inserted.size > 0 ? await this.admitNew(trx, inserted, now) : undefined;
    for (const [id, state] of [...inserted, ...updated]) {
      if (becameRevoked(locals.get(id), state)) result.revoked.push({ id, revokedAt: state.revokedAt!, expiresAt: state.expiresAt, userId: state.userId });
    }
    if (deletedOwners) {
      // Sessions of a deleted user keep no owner, as they do in the region that deleted it.
      for (const [id, s] of inserted) if (s.userId !== null && deletedOwners.has(s.userId)) inserted.set(id, { ...s, userId: null });
      await this.repo.insertSessions(trx, [...inserted.values()]);
    }
    if (updated.size > 0) await this.repo.updateSessions(trx, [...updated.values()]);
    if (forks.size > 0) {
      const revoked = await this.repo.revokeForks(trx, [...forks], now);
      result.forks.push(...revoked.map((r) => r.id));
      result.revoked.push(...revoked);
    }
  }

  /**
   * Checks the owners of sessions new here, and returns those of them that were deleted. A
   * session opened before its user's last password change or logout-all (made in a region that
   * did not know the session yet) arrives revoked; a session whose user has not arrived yet, and
   * was not deleted either, refuses the batch for now (`conflict`: the sender retries it without
   * dead-lettering — the user comes from its home region's stream).
   */
  private async admitNew(trx: Knex.Transaction, inserted: Map<string, ReplicatedSession>, now: Date): Promise<Set<string>> {
    const owners = [...new Set([...inserted.values()].map((s) => s.userId).filter((id): id is string => id !== null))];
    const cutoffs = new Map<string, SessionCutoff>((await this.repo.ownerCutoffs(trx, owners)).map((u) => [u.id, u]));
    for (const [id, s] of inserted) {
      const cutoff = s.userId === null ? undefined : cutoffs.get(s.userId);
      if (cutoff && cutOffRevokes(s, cutoff)) inserted.set(id, { ...s, revokedAt: now, revokeReason: 'replicated' });
    }
    const deleted = await this.repo.deletedAmong(trx, owners);
    if (owners.some((id) => !cutoffs.has(id) && !deleted.has(id))) throw new AppError('conflict', 'a session of a user not replicated here yet');
    return deleted;
  }

  /**
   * Service clients: the incoming row replaces the local one if it wins ({@link clientWins}); a
   * client deleted here or by a peer (its tombstone) is not brought back by a late rotation.
   * True when this changed the local row.
   */
  private async applyClient(trx: Knex.Transaction, incoming: ReplicatedClient): Promise<boolean> {
    const local = await this.repo.lockClient(trx, incoming.id);
    if (local && !clientWins(incoming, local)) return false;
    if (!local && (await this.repo.isClientDeleted(trx, incoming.id))) return false;
    await this.repo.upsertClient(trx, incoming);
    return true;
  }

  private async applyKey(trx: Knex.Transaction, key: ReplicatedKey, result: ApplyResult): Promise<void> {
    if (await this.repo.upsertKey(trx, key)) result.keysChanged = true;
  }
}

/**
 * A row new here that must not be live alongside its `rivals` (held here, locked: those live, and
 * those removed only after it was created), decided by {@link keepsFirstCreated}: when a rival
 * wins, the incoming row is returned removed; else every live rival is removed (`remove`). Each
 * outcome is reported as (kept, removed). Returns the row to insert.
 */
async function settleLiveClash<T extends CreationRank & { removedAt: Date | null }>(
  incoming: T,
  rivals: T[],
  now: Date,
  on: { remove: (id: string) => Promise<void>; report: (keptId: string, removedId: string) => void },
): Promise<T> {
  const kept = rivals.find((r) => keepsFirstCreated(r, incoming));
  if (kept) {
    on.report(kept.id, incoming.id);
    return { ...incoming, removedAt: now };
  }
  for (const rival of rivals.filter((r) => r.removedAt === null)) {
    await on.remove(rival.id);
    on.report(incoming.id, rival.id);
  }
  return incoming;
}

/** Below this many consecutive users or identities, the look-ups of the run path cost more than they save. */
const RUN_MIN = 2;

/** A run's insert found a row taken after all: undone to its savepoint. */
class RunOverlap extends Error {}

/**
 * Applies `rows` in their order: each run of consecutive rows `fresh` holds is inserted by
 * `insert` (one statement), every other row by `one`. `fresh` was decided before any of the
 * group was written; should a run's insert find a row taken after all (a unique index refused
 * it: a local writer committed the id, username or address since, or a row applied by `one`
 * just before got it), the run is rolled back to its savepoint and applied row by row — so the
 * outcome is always that of applying every row one by one.
 */
async function inRuns<T>(
  trx: Knex.Transaction,
  rows: T[],
  fresh: Set<T>,
  insert: (ex: Knex.Transaction, run: T[]) => Promise<number>,
  one: (row: T) => Promise<void>,
): Promise<void> {
  for (let i = 0; i < rows.length;) {
    const run: T[] = [];
    for (let next = rows[i]; next !== undefined && fresh.has(next); next = rows[++i]) run.push(next);
    if (run.length === 0) {
      await one(rows[i]!);
      i += 1;
      continue;
    }
    try {
      await trx.transaction(async (savepoint) => {
        if ((await insert(savepoint, run)) < run.length) throw new RunOverlap();
      });
    } catch (err) {
      if (!(err instanceof RunOverlap)) throw err;
      for (const row of run) await one(row);
    }
  }
}

/** The entities whose consecutive changes are applied together. */
const GROUPED = new Set<ReplicatedChange['entity']>(['sessions', 'users', 'user_identities']);

/** The changes from `from` on that are of its entity. */
function runFrom(changes: ReplicatedChange[], from: number): ReplicatedChange[] {
  let end = from + 1;
  while (changes[end]?.entity === changes[from]!.entity) end += 1;
  return changes.slice(from, end);
}

type PayloadOf<E extends ReplicatedChange['entity']> = Extract<ReplicatedChange, { entity: E }>['payload'];

function payloadsOf<E extends ReplicatedChange['entity']>(changes: ReplicatedChange[], entity: E): Array<PayloadOf<E>> {
  return changes.flatMap((c) => (c.entity === entity ? [c.payload as PayloadOf<E>] : []));
}

const idOf = (u: ReplicatedUser): string => u.id;
const usernameOf = (u: ReplicatedUser): string[] => (u.username === null ? [] : [u.username]);
const emailOf = (u: ReplicatedUser): string[] => (u.email === null ? [] : [u.email]);

/** How many times each value occurs. */
function counts(values: string[]): Map<string, number> {
  const seen = new Map<string, number>();
  for (const v of values) seen.set(v, (seen.get(v) ?? 0) + 1);
  return seen;
}
