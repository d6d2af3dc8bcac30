import QRCode from 'qrcode';
import { v7 as uuidv7 } from 'uuid';
import type { Config } from '../../config/schema.js';
import type { FactorStatus, MfaFactorRecord, SecondFactorType } from '../../model/mfa.js';
import type { Clock } from '../../platform/clock.js';
import { AppError } from '../../platform/errors.js';
import type { Logger } from '../../platform/logger.js';
import type { Db } from '../../store/pg/db.js';
import type { MfaFactorsRepo } from '../../store/pg/mfa-factors-repo.js';
import type { MfaRecoveryCodesRepo } from '../../store/pg/mfa-recovery-codes-repo.js';
import type { UsersRepo } from '../../store/pg/users-repo.js';
import type { ServerSecrets } from '../keys/secrets.js';
import type { SessionService } from '../sessions/session-service.js';
import type { Telemetry } from '../telemetry.js';
import { hashRecoveryCode, newRecoveryCodes, normalizeRecoveryCode, recoveryCodeMatches } from './recovery-codes.js';
import { newTotpSecret, totpStep, totpUri } from './totp.js';

/** How long an enrolment may wait for its first code; a pending factor older than this cannot be confirmed. */
export const PENDING_TTL_SECONDS = 600;

/** A factor as its user (and an administrator) sees it: never the secret. */
export interface FactorView {
  id: string;
  type: 'totp';
  status: FactorStatus;
  createdAt: string;
  confirmedAt: string | null;
}

/** `GET /v1/me/mfa`: the live factors and how many recovery codes are left. */
export interface MfaOverview {
  factors: FactorView[];
  recoveryCodesLeft: number;
}

/** A started enrolment: what an authenticator app needs, shown once. */
export interface TotpEnrolment {
  factorId: string;
  secret: string;
  uri: string;
  /** The URI as a QR code, a `data:image/png;base64,…` URL. */
  qrCode: string;
}

/** What a second step presents: a TOTP code, or a recovery code. */
export type SecondFactorProof = { code: string } | { recoveryCode: string };

export interface MfaFactorsOptions {
  db: Db;
  factors: MfaFactorsRepo;
  recoveryCodes: MfaRecoveryCodesRepo;
  users: Pick<UsersRepo, 'lock' | 'findById'>;
  /** Undefined without a server secret: enrolment and TOTP checks are then `bad_config`. */
  secrets: Pick<ServerSecrets, 'seal' | 'open' | 'sealedWithCurrent'> | undefined;
  sessions: Pick<SessionService, 'revokeWithin'>;
  /** `identity.mfa`; the issuer of the otpauth:// URI is the product's name (`mail.productName`). */
  mode: Config['identity']['mfa'];
  /** `identity.webauthn.enabled`: whether a passkey can answer a second step. */
  passkeys: boolean;
  issuer: string;
  clock: Clock;
  log: Logger;
  telemetry: Telemetry;
  region: string;
}

const invalidCode = () => new AppError('invalid_code', 'the code is wrong, expired or already used');
const off = () => new AppError('not_found', 'second factors are off on this server (identity.mfa is "off")');

/** The associated data a factor's secret is sealed under: a sealed secret opens only in its own row. */
const sealContext = (factorId: string) => `mfa-totp:${factorId}`;

/**
 * TOTP factors and recovery codes (README "TOTP and recovery codes", docs/api.md#totp-factors-and-recovery-codes).
 *
 * - Enrolment is two steps: {@link startTotp} stores a pending factor (its secret sealed under the
 *   server secret) and shows the secret once; {@link confirmTotp} activates it with a first code
 *   and issues ten recovery codes, shown once. One active TOTP factor per user; a new start
 *   replaces a pending one, and a pending one dies after {@link PENDING_TTL_SECONDS}.
 * - A TOTP code is accepted once per factor: the step it belongs to must be newer than every step
 *   accepted before, checked and recorded in one statement ({@link MfaFactorsRepo.useStep}).
 * - A recovery code is single-use; regenerating ends the old ones (`replaced`), an administrator's
 *   reset ends them (`reset`), removing the last factor ends them (`replaced`).
 */
export class MfaFactors {
  constructor(private readonly opts: MfaFactorsOptions) {}

  get enabled(): boolean {
    return this.opts.mode !== 'off';
  }

  /**
   * What can answer the user's second step (docs/api.md#two-step-login): none with identity.mfa
   * 'off'; `totp` with an active TOTP factor, and `recovery_code` beside it while codes are left;
   * `passkey` when the user has a live passkey (and passkeys are on) and either a TOTP factor or
   * identity.mfa 'required' — under `required` a passkey is the user's factor, and no enrolment
   * is asked of them; under `optional` it takes a TOTP factor to turn two steps on. One indexed query.
   */
  async activeTypes(userId: string): Promise<SecondFactorType[]> {
    if (!this.enabled) return [];
    const { totp, recoveryCodes, passkeys } = await this.opts.factors.activeKinds(userId);
    const types: SecondFactorType[] = totp ? (recoveryCodes ? ['totp', 'recovery_code'] : ['totp']) : [];
    if (passkeys && this.opts.passkeys && (totp || this.opts.mode === 'required')) types.push('passkey');
    return types;
  }

  /**
   * Checks a TOTP code (±1 step, each step accepted once per factor — atomically) or a recovery
   * code (ends it `used`); `invalid_code` when wrong. Logs mfa.verified / mfa.failed /
   * mfa.recovery_code_used and counts authctl_mfa_verifications_total. Returns which factor passed.
   */
  async verify(userId: string, proof: SecondFactorProof): Promise<SecondFactorType> {
    const { telemetry } = this.opts;
    if ('recoveryCode' in proof) {
      const left = await this.useRecoveryCode(userId, proof.recoveryCode);
      if (left === undefined) {
        telemetry.mfaFailed(userId, 'recovery_code', 'wrong');
        throw invalidCode();
      }
      telemetry.mfaVerified(userId, 'recovery_code', left);
      return 'recovery_code';
    }
    const factor = this.enabled ? await this.opts.factors.findActive(userId, 'totp') : undefined;
    if (!factor) {
      telemetry.mfaFailed(userId, 'totp', 'no_factor');
      throw invalidCode();
    }
    const secrets = this.secrets();
    const secret = secrets.open(factor.secretSealed, sealContext(factor.id));
    const step = totpStep(secret, proof.code, this.opts.clock.now());
    if (step === undefined) {
      telemetry.mfaFailed(userId, 'totp', 'wrong');
      throw invalidCode();
    }
    // Sealed with the previous server secret (a rotation under way): sealed anew with the current one.
    const resealed = secrets.sealedWithCurrent(factor.secretSealed) ? undefined : secrets.seal(secret, sealContext(factor.id));
    if (!(await this.opts.factors.useStep(factor.id, step, resealed))) {
      telemetry.mfaFailed(userId, 'totp', 'replayed');
      throw invalidCode();
    }
    telemetry.mfaVerified(userId, 'totp');
    return 'totp';
  }

  /** Starts a TOTP enrolment: a pending factor, its secret, URI and QR code (shown once). `409 conflict` while one is active. */
  async startTotp(userId: string): Promise<TotpEnrolment> {
    this.assertOn();
    const secrets = this.secrets();
    const secret = newTotpSecret();
    const factorId = uuidv7();
    const now = this.opts.clock.now();
    const user = await this.opts.db.transaction(async (trx) => {
      // The user's row serializes enrolments: two concurrent starts or confirms cannot both win.
      const user = await this.opts.users.lock(userId, trx);
      if (!user) throw new AppError('not_found', 'no such user');
      if (await this.opts.factors.findActive(userId, 'totp', trx)) throw alreadyEnrolled();
      await this.opts.factors.removeAll(userId, now, trx, 'pending');
      await this.opts.factors.insert(
        {
          id: factorId,
          userId,
          type: 'totp',
          secretSealed: secrets.seal(secret, sealContext(factorId)),
          status: 'pending',
          homeRegion: this.opts.region,
          createdAt: now,
          confirmedAt: null,
          lastUsedStep: null,
          removedAt: null,
          version: 1,
        },
        trx,
      );
      return user;
    });
    const uri = totpUri(secret, this.opts.issuer, user.username ?? user.email ?? user.id);
    return { factorId, secret, uri, qrCode: await QRCode.toDataURL(uri, { errorCorrectionLevel: 'M', margin: 2, scale: 6 }) };
  }

  /**
   * Activates a pending factor with its first code and issues ten recovery codes (the only time
   * they are shown). `invalid_code` for a wrong code (the route counts it under the login limits),
   * `not_found` for no such pending factor (expired, replaced, someone else's).
   */
  async confirmTotp(userId: string, factorId: string, code: string): Promise<{ recoveryCodes: string[] }> {
    this.assertOn();
    const secrets = this.secrets();
    const now = this.opts.clock.now();
    const factor = await this.opts.factors.findById(factorId);
    if (!factor || factor.userId !== userId || factor.removedAt !== null || factor.status !== 'pending' || expired(factor, now)) {
      throw new AppError('not_found', 'no pending factor with this id: it may have expired or been replaced (start the enrolment again)');
    }
    const step = totpStep(secrets.open(factor.secretSealed, sealContext(factor.id)), code, now);
    if (step === undefined) throw invalidCode();
    const { plain, records } = await this.newCodes(userId, now);
    await this.opts.db.transaction(async (trx) => {
      await this.opts.users.lock(userId, trx);
      if (await this.opts.factors.findActive(userId, 'totp', trx)) throw alreadyEnrolled();
      if (!(await this.opts.factors.activate(factor.id, step, now, trx))) {
        throw new AppError('not_found', 'no pending factor with this id: it may have expired or been replaced (start the enrolment again)');
      }
      await this.opts.recoveryCodes.endAll(userId, 'replaced', now, trx);
      await this.opts.recoveryCodes.insertMany(records, trx);
    });
    this.opts.telemetry.mfaEnrolled(userId, factor.id);
    return { recoveryCodes: plain };
  }

  /** The user's live factors (a pending one only until it expires) and how many recovery codes are left. */
  async overview(userId: string): Promise<MfaOverview> {
    const now = this.opts.clock.now();
    const [factors, recoveryCodesLeft] = await Promise.all([this.opts.factors.listLive(userId), this.opts.recoveryCodes.countLive(userId)]);
    return { factors: factors.filter((f) => f.status === 'active' || !expired(f, now)).map(toFactorView), recoveryCodesLeft };
  }

  /** Removes a factor of the user (`DELETE /v1/me/mfa/totp/:id`); with no active factor left, the recovery codes end too. */
  async removeTotp(userId: string, factorId: string): Promise<void> {
    this.assertOn();
    const now = this.opts.clock.now();
    await this.opts.db.transaction(async (trx) => {
      await this.opts.users.lock(userId, trx);
      if (!(await this.opts.factors.remove(factorId, userId, now, trx))) throw new AppError('not_found', 'no such factor');
      if (!(await this.opts.factors.findActive(userId, 'totp', trx))) await this.opts.recoveryCodes.endAll(userId, 'replaced', now, trx);
    });
    this.opts.telemetry.mfaRemoved(userId, [factorId], { via: 'self' });
  }

  /** Ten new recovery codes; the old ones end (`replaced`). `409 conflict` without an active factor. */
  async regenerateRecoveryCodes(userId: string): Promise<{ recoveryCodes: string[] }> {
    this.assertOn();
    const now = this.opts.clock.now();
    const { plain, records } = await this.newCodes(userId, now);
    const replaced = await this.opts.db.transaction(async (trx) => {
      await this.opts.users.lock(userId, trx);
      if (!(await this.opts.factors.findActive(userId, 'totp', trx))) throw new AppError('conflict', 'there is no active TOTP factor: enrol one first');
      const replaced = await this.opts.recoveryCodes.endAll(userId, 'replaced', now, trx);
      await this.opts.recoveryCodes.insertMany(records, trx);
      return replaced;
    });
    this.opts.log.info('recovery codes regenerated', { event: 'mfa.recovery_codes_regenerated', userId, replaced });
    return { recoveryCodes: plain };
  }

  /**
   * `authctl user mfa reset`: removes every factor, ends every recovery code (`reset`) and revokes
   * every session of the user, in one transaction; logs `mfa.reset` with who ran it.
   */
  async reset(userId: string, actor: string): Promise<{ removedFactors: number; endedRecoveryCodes: number; revokedSessions: number }> {
    const now = this.opts.clock.now();
    const result = await this.opts.sessions.revokeWithin(async (tx) => {
      // The user first, then factors, codes and sessions: the order every factor flow takes.
      await this.opts.users.lock(userId, tx.ex);
      const removedFactors = await this.opts.factors.removeAll(userId, now, tx.ex);
      const endedRecoveryCodes = await this.opts.recoveryCodes.endAll(userId, 'reset', now, tx.ex);
      const revoked = await tx.revokeAllForUser(userId, 'admin');
      return { removedFactors, endedRecoveryCodes, revokedSessions: revoked.length };
    });
    this.opts.log.info('second factors reset by an administrator', { event: 'mfa.reset', userId, actor, ...result });
    return result;
  }

  private async newCodes(userId: string, now: Date) {
    const plain = newRecoveryCodes();
    const hashes = await Promise.all(plain.map(hashRecoveryCode));
    const records = hashes.map((codeHash) => ({
      id: uuidv7(),
      userId,
      codeHash,
      homeRegion: this.opts.region,
      createdAt: now,
      endedAt: null,
      endReason: null,
      version: 1,
    }));
    return { plain, records };
  }

  /** Spends a recovery code: the number left after it, or undefined when it matches no live code. */
  private async useRecoveryCode(userId: string, input: string): Promise<number | undefined> {
    const normalized = normalizeRecoveryCode(input);
    if (normalized === undefined || !this.enabled) return undefined;
    const live = await this.opts.recoveryCodes.listLive(userId);
    for (const code of live) {
      if (!(await recoveryCodeMatches(code.codeHash, normalized))) continue;
      // Of two concurrent uses of one code, the one that ends it wins; the other is a wrong code.
      if (!(await this.opts.recoveryCodes.end(code.id, 'used', this.opts.clock.now()))) return undefined;
      return live.length - 1;
    }
    return undefined;
  }

  private assertOn(): void {
    if (!this.enabled) throw off();
  }

  private secrets(): NonNullable<MfaFactorsOptions['secrets']> {
    if (!this.opts.secrets) throw new AppError('bad_config', 'second factors need the server secret: set AUTHCTL_SECRET');
    return this.opts.secrets;
  }
}

function alreadyEnrolled(): AppError {
  return new AppError('conflict', 'a TOTP factor is already active: remove it first (DELETE /v1/me/mfa/totp/{id})');
}

function expired(factor: MfaFactorRecord, now: Date): boolean {
  return factor.status === 'pending' && now.getTime() - factor.createdAt.getTime() > PENDING_TTL_SECONDS * 1000;
}

export function toFactorView(f: MfaFactorRecord): FactorView {
  return { id: f.id, type: f.type, status: f.status, createdAt: f.createdAt.toISOString(), confirmedAt: f.confirmedAt?.toISOString() ?? null };
}
