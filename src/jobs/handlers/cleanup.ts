import type { Clock } from '../../platform/clock.js';
import type { Logger } from '../../platform/logger.js';
import type { SessionsRepo } from '../../store/pg/sessions-repo.js';
import type { SigningKeysRepo } from '../../store/pg/signing-keys-repo.js';
import type { UsageRepo } from '../../store/pg/usage-repo.js';
import type { EmailChallengesRepo } from '../../store/pg/email-challenges-repo.js';
import type { IdentitiesRepo } from '../../store/pg/identities-repo.js';
import type { MfaFactorsRepo } from '../../store/pg/mfa-factors-repo.js';
import type { MfaRecoveryCodesRepo } from '../../store/pg/mfa-recovery-codes-repo.js';
import type { MfaTokenUsesRepo } from '../../store/pg/mfa-token-uses-repo.js';
import type { PasskeysRepo } from '../../store/pg/passkeys-repo.js';
import { PENDING_TTL_SECONDS } from '../../core/mfa/mfa-factors.js';

/** Signing keys stay a day after leaving the JWKS (for `keys list` and late verifiers' caches). */
export const RETIRED_KEY_RETENTION_SECONDS = 86_400;

/** Hourly usage counters (`authctl stats`) are kept 30 days. */
export const USAGE_RETENTION_SECONDS = 30 * 86_400;

/** E-mail challenges stay a day after they expire (for support questions), then go. */
export const CHALLENGE_RETENTION_SECONDS = 86_400;

/**
 * Removed factors and ended recovery codes stay 30 days: their rows are what keeps them removed or
 * ended when a late change from another region (made there before it heard of the end) arrives.
 */
export const MFA_RETENTION_SECONDS = 30 * 86_400;

/** Removed provider identities stay 30 days, for the same reason as removed factors: their rows keep them removed. */
export const IDENTITY_RETENTION_SECONDS = 30 * 86_400;

/** Removed passkeys stay 30 days, for the same reason: their rows keep them removed (and their counters where they were). */
export const PASSKEY_RETENTION_SECONDS = 30 * 86_400;

export interface CleanupDeps {
  sessions: Pick<SessionsRepo, 'deleteStale'>;
  /** Optional: without it, signing keys are left alone. */
  keys?: Pick<SigningKeysRepo, 'deleteRetiredBefore'> | undefined;
  clock: Clock;
  log: Logger;
  /**
   * How long a revoked or expired session must be kept: the revocation feed needs a revoked
   * session until the last access token issued for it has expired (access TTL + clock skew).
   */
  horizonSeconds: number;
  /**
   * With peers, a revoked session is kept until it expires: its row is what keeps it revoked
   * when a late change from another region (a rotation made there during a partition) arrives;
   * deleted, that change would insert it again, live.
   */
  keepRevokedUntilExpiry?: boolean;
  batchSize: number;
  retiredKeyRetentionSeconds?: number;
  /** Optional: without it, usage counters are left alone. */
  usage?: Pick<UsageRepo, 'deleteBefore'> | undefined;
  usageRetentionSeconds?: number;
  /** Optional: without it, e-mail challenges are left alone. Each region deletes its own copies (deletes do not replicate). */
  challenges?: Pick<EmailChallengesRepo, 'deleteExpired'> | undefined;
  /**
   * Optional: without it, second factors are left alone. Pending factors that expired, removed
   * factors and ended recovery codes after {@link MFA_RETENTION_SECONDS}, used mfaTokens once
   * the token has expired. Each region deletes its own copies.
   */
  mfa?:
    | {
        factors: Pick<MfaFactorsRepo, 'deleteStale'>;
        recoveryCodes: Pick<MfaRecoveryCodesRepo, 'deleteEndedBefore'>;
        tokenUses: Pick<MfaTokenUsesRepo, 'deleteExpired'>;
      }
    | undefined;
  /** Optional: without it, provider identities are left alone. Removed ones go after {@link IDENTITY_RETENTION_SECONDS}, in each region. */
  identities?: Pick<IdentitiesRepo, 'deleteRemovedBefore'> | undefined;
  /** Optional: without it, passkeys are left alone. Removed ones go after {@link PASSKEY_RETENTION_SECONDS}, in each region. */
  passkeys?: Pick<PasskeysRepo, 'deleteRemovedBefore'> | undefined;
}

export interface CleanupResult {
  /** `usageRows` only when the pass was given the usage repo. */
  deleted: {
    sessions: number;
    signingKeys: number;
    usageRows?: number;
    emailChallenges?: number;
    mfaFactors?: number;
    mfaRecoveryCodes?: number;
    mfaTokenUses?: number;
    identities?: number;
    passkeys?: number;
  };
  batches: number;
}

/**
 * The `cleanup` job: deletes sessions expired or revoked longer than `horizonSeconds` ago, in
 * batches of `batchSize` (each its own short statement), and signing keys retired more than a day
 * ago, usage counters of hours that started more than 30 days ago, e-mail challenges that
 * expired more than a day ago, the second factors' rows that no longer matter (see
 * {@link CleanupDeps.mfa}), and provider identities and passkeys removed more than 30 days ago.
 * Idempotent: a pass that is interrupted is finished by the next one.
 */
export async function runCleanup(deps: CleanupDeps): Promise<CleanupResult> {
  const started = performance.now();
  const now = deps.clock.now();
  const before = new Date(now.getTime() - deps.horizonSeconds * 1000);
  let sessions = 0;
  let batches = 0;
  for (;;) {
    const deleted = await deps.sessions.deleteStale(before, deps.batchSize, { keepRevokedUntilExpiry: deps.keepRevokedUntilExpiry ?? false });
    sessions += deleted;
    batches += 1;
    if (deleted < deps.batchSize) break;
  }
  let signingKeys = 0;
  if (deps.keys) {
    const retention = deps.retiredKeyRetentionSeconds ?? RETIRED_KEY_RETENTION_SECONDS;
    const kids = await deps.keys.deleteRetiredBefore(new Date(now.getTime() - retention * 1000));
    signingKeys = kids.length;
    if (kids.length > 0) deps.log.info('retired signing keys deleted', { event: 'keys.deleted', kids });
  }
  const deleted: CleanupResult['deleted'] = { sessions, signingKeys };
  if (deps.usage) {
    const retention = deps.usageRetentionSeconds ?? USAGE_RETENTION_SECONDS;
    deleted.usageRows = await deps.usage.deleteBefore(new Date(now.getTime() - retention * 1000));
  }
  if (deps.challenges) {
    const before = new Date(now.getTime() - CHALLENGE_RETENTION_SECONDS * 1000);
    let total = 0;
    for (;;) {
      const count = await deps.challenges.deleteExpired(before, deps.batchSize);
      total += count;
      if (count < deps.batchSize) break;
    }
    deleted.emailChallenges = total;
  }
  if (deps.mfa) {
    const { factors, recoveryCodes, tokenUses } = deps.mfa;
    const pendingBefore = new Date(now.getTime() - PENDING_TTL_SECONDS * 1000);
    const endedBefore = new Date(now.getTime() - MFA_RETENTION_SECONDS * 1000);
    deleted.mfaFactors = await inBatches(deps.batchSize, (limit) => factors.deleteStale(pendingBefore, endedBefore, limit));
    deleted.mfaRecoveryCodes = await inBatches(deps.batchSize, (limit) => recoveryCodes.deleteEndedBefore(endedBefore, limit));
    deleted.mfaTokenUses = await inBatches(deps.batchSize, (limit) => tokenUses.deleteExpired(now, limit));
  }
  if (deps.identities) {
    const { identities } = deps;
    const removedBefore = new Date(now.getTime() - IDENTITY_RETENTION_SECONDS * 1000);
    deleted.identities = await inBatches(deps.batchSize, (limit) => identities.deleteRemovedBefore(removedBefore, limit));
  }
  if (deps.passkeys) {
    const { passkeys } = deps;
    const removedBefore = new Date(now.getTime() - PASSKEY_RETENTION_SECONDS * 1000);
    deleted.passkeys = await inBatches(deps.batchSize, (limit) => passkeys.deleteRemovedBefore(removedBefore, limit));
  }
  const result: CleanupResult = { deleted, batches };
  deps.log.info('cleanup done', { event: 'cleanup.done', ...result, durationMs: Math.round(performance.now() - started) });
  return result;
}

/** Runs a batched delete until a batch comes back short; the total deleted. */
async function inBatches(batchSize: number, deleteBatch: (limit: number) => Promise<number>): Promise<number> {
  let total = 0;
  for (;;) {
    const count = await deleteBatch(batchSize);
    total += count;
    if (count < batchSize) return total;
  }
}
