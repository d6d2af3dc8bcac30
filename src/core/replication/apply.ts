import type { Knex } from 'knex';
import type {
  ReplicatedBatch,
  ReplicatedChallenge,
  ReplicatedClient,
  ReplicatedFactor,
  ReplicatedIdentity,
  ReplicatedKey,
  ReplicatedRecoveryCode,
  ReplicatedSession,
  ReplicatedTokenUse,
  ReplicatedUser,
} from '../../model/replication.js';
import type { RevokedSession } from '../../model/session.js';
import { AppError } from '../../platform/errors.js';
import type { ReplicationApplyRepo } from '../../store/pg/replication-apply-repo.js';
import {
  becameRevoked,
  clientWins,
  cutOffRevokes,
  cutoffAdvances,
  foldSessions,
  keepsIdentity,
  mergeChallenge,
  mergeFactor,
  mergeIdentity,
  mergeRecoveryCode,
  resolveClash,
  resolveEmailClash,
  userWins,
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
   * {@link mergeRecoveryCode}, used mfaTokens once).
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
      keysChanged: false,
      clientsChanged: false,
    };
    if (!(await this.repo.recordBatch(trx, batch.origin, batch.batchId, now))) return { ...result, duplicate: true };
    await this.repo.captureChanges(trx, false);
    const { changes } = batch;
    // Consecutive session changes are merged as one group: a batch under refresh load holds
    // many rotations of few sessions, and each session is then read and written once.
    for (let i = 0; i < changes.length;) {
      const change = changes[i]!;
      if (change.entity === 'sessions') {
        const group: ReplicatedSession[] = [];
        for (let next = changes[i]; next?.entity === 'sessions'; next = changes[++i]) group.push(next.payload);
        await this.applySessions(trx, group, now, result);
        result.applied += group.length;
        continue;
      }
      switch (change.entity) {
        case 'users':
          await this.applyUser(trx, change.payload, now, result);
          break;
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
        case 'user_identities':
          await this.applyIdentity(trx, change.payload, now, result);
          break;
      }
      result.applied += 1;
      i += 1;
    }
    return result;
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
   * created first (then the lower id, {@link keepsIdentity}) stays live, the other is marked
   * removed — the incoming one before it is inserted, or the one held here. The other identities
   * of the pair that count are those live here, and those removed only after the incoming one was
   * created (they were live alongside it). Every region decides alike, so none of it is shipped.
   */
  private async settleIdentityClash(trx: Knex.Transaction, incoming: ReplicatedIdentity, now: Date, result: ApplyResult): Promise<ReplicatedIdentity> {
    const rivals = await this.repo.lockRivalIdentities(trx, incoming);
    const kept = rivals.find((r) => keepsIdentity(r, incoming));
    if (kept) {
      result.identityClashes.push({ provider: incoming.provider, keptId: kept.id, removedId: incoming.id });
      return { ...incoming, removedAt: now };
    }
    for (const rival of rivals.filter((r) => r.removedAt === null)) {
      await this.repo.removeIdentity(trx, rival.id, now);
      result.identityClashes.push({ provider: incoming.provider, keptId: incoming.id, removedId: rival.id });
    }
    return incoming;
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
