import type { Knex } from 'knex';
import { v7 as uuidv7 } from 'uuid';
import type { Config } from '../../config/schema.js';
import type { MailQueue } from '../../mail/composers.js';
import { passwordlessUser, type ChallengePurpose, type EmailChallenge, type UserRecord } from '../../model/user.js';
import type { Clock } from '../../platform/clock.js';
import { AppError, invalidRequest } from '../../platform/errors.js';
import type { Logger } from '../../platform/logger.js';
import type { SendKind, SendLimits } from '../../security/send-limits.js';
import type { Db } from '../../store/pg/db.js';
import type { EmailChallengesRepo } from '../../store/pg/email-challenges-repo.js';
import type { UsersRepo } from '../../store/pg/users-repo.js';
import type { SessionService } from '../sessions/session-service.js';
import type { Telemetry } from '../telemetry.js';
import { emailKey, normalizeEmail } from '../users/email.js';
import type { PasswordHasher } from '../users/password-hasher.js';
import { checkPasswordPolicy } from '../users/password-policy.js';
import { normalizeUsername } from '../users/username.js';
import type { RegistrationHooks } from '../users/user-service.js';
import type { ChallengeCodes } from './challenge-codes.js';

/** The kinds of mail the e-mail flows send (their composers are in ./composers.ts). */
export const EMAIL_KINDS = {
  verify: 'verify-email',
  reset: 'password-reset',
  change: 'email-change',
  passwordChanged: 'password-changed',
  signupAttempt: 'signup-attempt',
  login: 'login-code',
} as const;

/** The flows an anonymous request may ask for: a verification, a reset, a sign-in code. */
export type AnonymousFlow = 'verify' | 'reset' | 'login';

/**
 * An anonymous request for a message (`POST /v1/auth/password/forgot`, `POST /v1/auth/email/verify/send`
 * with `{email}`, `POST /v1/auth/otp/send`), as its job carries it: who it names, never whether
 * that account exists.
 */
export interface EmailRequestData {
  flow: AnonymousFlow;
  email?: string | undefined;
  username?: string | undefined;
}

/** Where anonymous requests wait for a worker (a pg-boss queue: src/jobs/email-requests.ts). */
export interface EmailRequestQueue {
  enqueue(data: EmailRequestData): Promise<void>;
}

/** A code or link as the API receives it: the link's token, or the address and the 6-digit code. */
export type ChallengeProof = { token: string } | { email: string; code: string };

export interface EmailFlowsOptions {
  db: Db;
  users: UsersRepo;
  challenges: EmailChallengesRepo;
  /** Undefined without a server secret: every flow is then `bad_config`. */
  codes: ChallengeCodes | undefined;
  sessions: Pick<SessionService, 'revokeWithin'>;
  hasher: PasswordHasher;
  mail: MailQueue;
  requests: EmailRequestQueue;
  limits: SendLimits;
  identity: Config['identity'];
  clock: Clock;
  log: Logger;
  /** Counts an account a sign-in code created (`user.registered`), as sign-up does. */
  telemetry: Pick<Telemetry, 'registered'>;
  region: string;
  /** After a change `GET /v1/me` shows (address, verification): drops the cached profile. */
  profileChanged(userId: string): Promise<void>;
}

type Outcome<T> = { ok: true; value: T } | { ok: false; error: AppError };

const invalidCode = (detail = 'the code or link is wrong, expired or already used') => new AppError('invalid_code', detail);

/**
 * The e-mail flows (docs/api.md#e-mail-flows): address verification, password reset and address
 * change, each a message with a 6-digit code and a link, and the notices that go with them; and
 * sign-in by e-mailed code (docs/api.md#e-mailed-sign-in-codes), a message with a code alone.
 *
 * - A challenge row is written in the transaction of the change it belongs to, and its message is
 *   enqueued in that same transaction (references only: the code and the link are MACs of the
 *   row's id, derived again when the message is composed).
 * - A newer challenge of a purpose ends the older ones (`replaced`); using one ends it (`used`);
 *   `identity.maxCodeAttempts` wrong codes end it (`exhausted`); a password or address change ends
 *   the challenges it makes pointless (`superseded`), and a reset made before the password's last
 *   change is refused whichever region changed it.
 * - Anonymous requests (forgot, verify/send with `{email}`, otp/send) do not look anything up on
 *   the request path: they are limited, enqueued and answered 202, and a worker finds the account
 *   ({@link fulfil}). The answer and its timing are the same whether or not the account exists.
 * - A sign-in code ({@link signInWithCode}) is one more challenge purpose, `login`: the same
 *   MAC-derived code, the same replacement, exhaustion (`identity.otpMaxAttempts`) and single use,
 *   and using it proves the address. With `identity.otpSignup` a code may go to an address with
 *   no account (a challenge without a user): the account is created when the code is used.
 */
export class EmailFlows implements RegistrationHooks {
  constructor(private readonly opts: EmailFlowsOptions) {}

  get enabled(): boolean {
    return this.opts.identity.email !== 'off';
  }

  // ---- registration hooks (UserService.register)

  /** A user signed up with an address: its first verification, in the registration's transaction. */
  async registered(trx: Knex.Transaction, user: UserRecord): Promise<void> {
    if (!this.enabled || user.email === null) return;
    await this.startChallenge(trx, user, 'verify', user.email);
  }

  /**
   * Sign-up with an address that has an account (`requireVerifiedEmail`): its owner is told, within
   * the send limits, at the address as the account stores it (the local part keeps its case, and
   * the sign-up may have spelled it differently).
   */
  async addressTaken(email: string): Promise<void> {
    if (!(await this.opts.limits.allow('verify', email, undefined))) return;
    const to = (await this.opts.users.findByEmail(email))?.email ?? email;
    const requestedAt = this.opts.clock.now().toISOString();
    await this.opts.db.transaction((trx) => this.opts.mail.enqueue(trx, { kind: EMAIL_KINDS.signupAttempt, to, data: { requestedAt } }));
  }

  // ---- sending

  /** `POST /v1/auth/email/verify/send` with a Bearer token: a new verification of the caller's address. */
  async sendVerification(userId: string, ip: string | undefined): Promise<void> {
    this.assertOn();
    const user = await this.opts.users.findById(userId);
    if (!user) throw new AppError('not_found', 'no such user');
    if (user.email === null)
      throw invalidRequest([{ path: 'email', message: 'the account has no e-mail address' }], 'the account has no e-mail address to verify');
    if (user.emailVerifiedAt !== null) throw new AppError('conflict', 'the e-mail address is already verified');
    if (!(await this.opts.limits.allow('verify', user.email, ip))) return;
    await this.refundingOnFailure('verify', user.email, ip, () => this.opts.db.transaction((trx) => this.startChallenge(trx, user, 'verify', user.email!)));
  }

  /**
   * An anonymous request for a verification, reset or sign-in message: checked for shape (400 for
   * what is not an address or a username), limited, and enqueued for a worker — never looked up
   * here. Resolves the same way whatever the request names (202).
   */
  async request(flow: AnonymousFlow, who: { email?: string | undefined; username?: string | undefined }, ip: string | undefined): Promise<void> {
    this.assertOn();
    const data: EmailRequestData =
      who.email !== undefined ? { flow, email: normalizeEmail(who.email) } : { flow, username: normalizeUsername(who.username ?? '') };
    const limitKey = data.email ?? `username:${data.username!}`;
    if (!(await this.opts.limits.allow(flow, limitKey, ip))) return;
    await this.refundingOnFailure(flow, limitKey, ip, () => this.opts.requests.enqueue(data));
  }

  /**
   * A worker's half of {@link request}: finds the account and, if it has an address that wants the
   * message, sends it. A sign-in code for an address without an account goes out only with
   * `identity.otpSignup` (a challenge without a user, to that address).
   */
  async fulfil(data: EmailRequestData): Promise<void> {
    const user = data.email !== undefined ? await this.opts.users.findByEmail(data.email) : await this.opts.users.findByUsername(data.username ?? '');
    if (!user && data.flow === 'login' && data.email !== undefined && this.opts.identity.otpSignup) {
      const email = data.email;
      await this.opts.db.transaction((trx) => this.startChallenge(trx, null, 'login', email));
      return;
    }
    // Nothing to send, and nothing said about it (the request was answered long ago).
    if (!user || user.email === null || user.status !== 'active') return;
    if (data.flow === 'verify' && user.emailVerifiedAt !== null) return;
    await this.opts.db.transaction((trx) => this.startChallenge(trx, user, data.flow, user.email!));
  }

  /**
   * `POST /v1/me/email`: the new address gets a verification, and the change applies only when it
   * is verified; the current address (if any) is told now, so its owner can act if it was not them.
   * A taken address is `email_taken` — or, with `requireVerifiedEmail`, answered like any other
   * and nothing is sent (the caller learns nothing about other accounts).
   */
  async requestChange(userId: string, rawEmail: string, currentPassword: string, ip: string | undefined): Promise<void> {
    this.assertOn();
    const email = normalizeEmail(rawEmail);
    const user = await this.opts.users.findById(userId);
    if (!user) throw new AppError('not_found', 'no such user');
    if (!(await this.opts.hasher.verify(user.passwordHash, currentPassword))) throw new AppError('invalid_credentials', 'the current password is wrong');
    if (user.email !== null && emailKey(user.email) === emailKey(email)) {
      throw invalidRequest([{ path: 'email', message: 'that is already the address of this account' }], 'that is already the address of this account');
    }
    const holder = await this.opts.users.findByEmail(email);
    if (holder) {
      if (this.opts.identity.requireVerifiedEmail) return;
      throw new AppError('email_taken', 'that e-mail address is already in use');
    }
    if (!(await this.opts.limits.allow('change', email, ip))) return;
    await this.refundingOnFailure('change', email, ip, () =>
      this.opts.db.transaction(async (trx) => {
        const challengeId = await this.startChallenge(trx, user, 'change', email);
        if (user.email !== null) await this.opts.mail.enqueue(trx, { kind: EMAIL_KINDS.change, to: user.email, data: { challengeId } });
      }),
    );
  }

  // ---- using a code or link

  /**
   * `POST /v1/auth/email/verify`: proves an address. A verification marks the current address
   * verified; an address change replaces the address (and ends the resets sent to the old one).
   */
  async verify(proof: ChallengeProof): Promise<{ userId: string }> {
    this.assertOn();
    const challenge = await this.resolve(proof, ['verify', 'change']);
    const now = this.opts.clock.now();
    const outcome = await this.opts.db.transaction(async (trx): Promise<Outcome<string>> => {
      const live = await this.relock(trx, challenge.id, now);
      if (!live.ok) return live;
      const user = live.value.userId === null ? undefined : await this.opts.users.lock(live.value.userId, trx);
      if (!user) return { ok: false, error: invalidCode() };
      if (live.value.purpose === 'verify') {
        if (user.email === null || emailKey(user.email) !== emailKey(live.value.email)) {
          await this.opts.challenges.end(live.value.id, 'superseded', now, trx);
          return { ok: false, error: invalidCode('the address this code was sent to is no longer the address of the account') };
        }
        await this.opts.users.markEmailVerified(user.id, user.email, now, trx);
      } else {
        // email_taken (someone verified it first) rolls back and leaves the challenge usable.
        await this.opts.users.setEmail(user.id, live.value.email, now, now, trx);
        await this.opts.challenges.endLive(user.id, ['verify', 'change', 'reset', 'login'], 'superseded', now, trx, live.value.id);
      }
      await this.opts.challenges.end(live.value.id, 'used', now, trx);
      return { ok: true, value: user.id };
    });
    if (!outcome.ok) throw outcome.error;
    await this.opts.profileChanged(outcome.value);
    this.opts.log.info(challenge.purpose === 'verify' ? 'e-mail address verified' : 'e-mail address changed', {
      event: challenge.purpose === 'verify' ? 'user.email_verified' : 'user.email_changed',
      userId: outcome.value,
    });
    return { userId: outcome.value };
  }

  /**
   * `POST /v1/auth/password/reset`: sets a new password (the policy first: a weak one spends
   * nothing), revokes every session of the user through the session cut-off (so it holds in every
   * region), marks the address verified (it was just proven) and mails a notice.
   */
  async resetPassword(proof: ChallengeProof, newPassword: string): Promise<{ userId: string; revokedSessions: number }> {
    this.assertOn();
    const challenge = await this.resolve(proof, ['reset']);
    const userId = challenge.userId;
    const owner = userId === null ? undefined : await this.opts.users.findById(userId);
    if (!owner) throw invalidCode();
    checkPasswordPolicy(newPassword, { username: owner.username ?? owner.email ?? '', path: 'newPassword' });
    const passwordHash = await this.opts.hasher.hash(newPassword);
    const now = this.opts.clock.now();
    const outcome = await this.opts.sessions.revokeWithin(async (tx): Promise<Outcome<number>> => {
      const live = await this.relock(tx.ex, challenge.id, now);
      if (!live.ok) return live;
      const user = await this.opts.users.lock(owner.id, tx.ex);
      if (!user) return { ok: false, error: invalidCode() };
      if (user.passwordChangedAt.getTime() > live.value.createdAt.getTime()) {
        // The password changed after this was sent (here or in another region): it is spent.
        await this.opts.challenges.end(live.value.id, 'superseded', now, tx.ex);
        return { ok: false, error: invalidCode() };
      }
      if (user.email === null || emailKey(user.email) !== emailKey(live.value.email)) {
        // The address it went to is no longer the account's (changed, removed, or lost in a clash between regions).
        await this.opts.challenges.end(live.value.id, 'superseded', now, tx.ex);
        return { ok: false, error: invalidCode('the address this code was sent to is no longer the address of the account') };
      }
      if (user.status !== 'active') return { ok: false, error: new AppError('account_disabled', 'this account has been disabled by an administrator') };
      await this.opts.users.setPasswordHash(user.id, passwordHash, now, null, tx.ex);
      const revoked = await tx.revokeAllForUser(user.id, 'password_changed');
      await this.opts.challenges.end(live.value.id, 'used', now, tx.ex);
      await this.opts.challenges.endLive(user.id, ['reset'], 'superseded', now, tx.ex);
      if (user.emailVerifiedAt === null) await this.opts.users.markEmailVerified(user.id, user.email, now, tx.ex);
      await this.opts.mail.enqueue(tx.ex, {
        kind: EMAIL_KINDS.passwordChanged,
        to: user.email,
        data: { userId: user.id, changedAt: now.toISOString() },
      });
      return { ok: true, value: revoked.length };
    });
    if (!outcome.ok) throw outcome.error;
    await this.opts.profileChanged(owner.id);
    // Like `user.password_changed`: who and how many sessions, never anything of the credential itself.
    this.opts.log.info('credentials reset by e-mail', { event: 'user.credentials_reset', userId: owner.id, revokedSessions: outcome.value });
    return { userId: owner.id, revokedSessions: outcome.value };
  }

  /**
   * `POST /v1/auth/otp/verify`: uses an e-mailed sign-in code and resolves the user it signs in
   * (the caller then opens the session: AuthService.signIn). Using the code proves the address,
   * so it is marked verified; a code sent to an address without an account (`identity.otpSignup`)
   * creates the account now — verified, without a username or a password. The code is spent in
   * the transaction that does this, so of two concurrent uses exactly one succeeds. `admit`
   * refuses the user's login before the code is spent (the region policy: `wrong_region`).
   */
  async signInWithCode(rawEmail: string, code: string, admit?: (user: UserRecord) => void): Promise<UserRecord> {
    this.assertOn();
    const challenge = await this.resolve({ email: rawEmail, code }, ['login']);
    const now = this.opts.clock.now();
    type SignedIn = { user: UserRecord; change: 'created' | 'verified' | null };
    let outcome: Outcome<SignedIn>;
    try {
      outcome = await this.opts.db.transaction(async (trx): Promise<Outcome<SignedIn>> => {
        const live = await this.relock(trx, challenge.id, now);
        if (!live.ok) return live;
        const { email } = live.value;
        if (live.value.userId === null) {
          // The address found an account since (a sign-up, a replicated user) or sign-up by code
          // was turned off: this code was for creating one, and is spent.
          if (!this.opts.identity.otpSignup || (await this.opts.users.findByEmail(email, trx))) {
            await this.opts.challenges.end(live.value.id, 'superseded', now, trx);
            return { ok: false, error: invalidCode('this code can no longer be used: ask for a new one') };
          }
          const user = await this.opts.users.insert(passwordlessUser(uuidv7(), { username: null, email, emailVerifiedAt: now }, this.opts.region, now), trx);
          await this.opts.challenges.end(live.value.id, 'used', now, trx);
          return { ok: true, value: { user, change: 'created' } };
        }
        const user = await this.opts.users.lock(live.value.userId, trx);
        if (!user) return { ok: false, error: invalidCode() };
        if (user.email === null || emailKey(user.email) !== emailKey(email)) {
          await this.opts.challenges.end(live.value.id, 'superseded', now, trx);
          return { ok: false, error: invalidCode('the address this code was sent to is no longer the address of the account') };
        }
        if (user.status !== 'active') return { ok: false, error: new AppError('account_disabled', 'this account has been disabled by an administrator') };
        // What refuses the login itself (the region policy's wrong_region) refuses it before the code
        // is spent: the user can still use it where the answer sends them.
        try {
          admit?.(user);
        } catch (err) {
          if (err instanceof AppError) return { ok: false, error: err };
          throw err;
        }
        await this.opts.challenges.end(live.value.id, 'used', now, trx);
        if (user.emailVerifiedAt !== null) return { ok: true, value: { user, change: null } };
        const verified = await this.opts.users.markEmailVerified(user.id, user.email, now, trx);
        // The address is proven: a verification still on its way is pointless now.
        await this.opts.challenges.endLive(user.id, ['verify'], 'superseded', now, trx);
        return { ok: true, value: { user: verified ?? user, change: 'verified' } };
      });
    } catch (err) {
      // Someone took the address between the check and the insert (a sign-up here): as above.
      if (err instanceof AppError && err.code === 'email_taken') throw invalidCode('this code can no longer be used: ask for a new one');
      throw err;
    }
    if (!outcome.ok) throw outcome.error;
    const { user, change } = outcome.value;
    if (change === 'created') this.opts.telemetry.registered(user.id);
    if (change === 'verified') {
      await this.opts.profileChanged(user.id);
      this.opts.log.info('e-mail address verified', { event: 'user.email_verified', userId: user.id });
    }
    return user;
  }

  // ---- internals

  /**
   * Ends the older challenges of the purpose, writes a new one and enqueues its message, in `trx`.
   * `user` is null only for a sign-in code to an address without an account. Sign-in codes are
   * replaced by address (whoever they belong to, a sign-up code included): the newest code sent to
   * an address is the only one that works there.
   */
  private async startChallenge(trx: Knex.Transaction, user: UserRecord | null, purpose: ChallengePurpose, email: string): Promise<string> {
    this.codes();
    const now = this.opts.clock.now();
    const { identity } = this.opts;
    const ttl = purpose === 'reset' ? identity.resetTtl : purpose === 'login' ? identity.otpTtl : identity.verifyTtl;
    if (purpose === 'login') await this.opts.challenges.endLiveTo(email, [purpose], 'replaced', now, trx);
    else if (user) await this.opts.challenges.endLive(user.id, [purpose], 'replaced', now, trx);
    const challenge: EmailChallenge = {
      id: uuidv7(),
      userId: user?.id ?? null,
      purpose,
      email,
      homeRegion: this.opts.region,
      createdAt: now,
      expiresAt: new Date(now.getTime() + ttl * 1000),
      attempts: 0,
      endedAt: null,
      endReason: null,
      version: 1,
    };
    await this.opts.challenges.insert(challenge, trx);
    const kind = purpose === 'reset' ? EMAIL_KINDS.reset : purpose === 'login' ? EMAIL_KINDS.login : EMAIL_KINDS.verify;
    await this.opts.mail.enqueue(trx, { kind, to: email, data: { challengeId: challenge.id } });
    this.opts.log.info('e-mail challenge sent', { event: 'email.challenge_created', userId: user?.id ?? null, purpose, challengeId: challenge.id });
    return challenge.id;
  }

  /**
   * The live challenge a proof names, or `invalid_code`. A link's MAC is checked before any I/O.
   * A wrong code counts against the newest live challenge sent to that address, in its own
   * transaction (committed although the request fails); the last allowed wrong code ends it.
   */
  private async resolve(proof: ChallengeProof, purposes: ChallengePurpose[]): Promise<EmailChallenge> {
    const codes = this.codes();
    const now = this.opts.clock.now();
    if ('token' in proof) {
      const id = codes.idOf(proof.token);
      const challenge = id === undefined ? undefined : await this.opts.challenges.findById(id);
      if (!challenge || !purposes.includes(challenge.purpose) || !isLive(challenge, now)) throw invalidCode();
      return challenge;
    }
    let email: string;
    try {
      email = normalizeEmail(proof.email);
    } catch {
      throw invalidCode();
    }
    const outcome = await this.opts.db.transaction(async (trx): Promise<Outcome<EmailChallenge>> => {
      const challenge = await this.opts.challenges.lockLatestLive(email, purposes, trx);
      if (!challenge || !isLive(challenge, now)) return { ok: false, error: invalidCode() };
      if (codes.codeMatches(challenge.id, proof.code)) return { ok: true, value: challenge };
      const maxAttempts = challenge.purpose === 'login' ? this.opts.identity.otpMaxAttempts : this.opts.identity.maxCodeAttempts;
      const left = await this.opts.challenges.recordWrongCode(challenge.id, maxAttempts, now, trx);
      this.opts.log.info('wrong e-mail code', { event: 'email.code_wrong', userId: challenge.userId, purpose: challenge.purpose, triesLeft: left });
      return {
        ok: false,
        error: invalidCode(
          left > 0 ? `the code is wrong (${left} ${left === 1 ? 'try' : 'tries'} left)` : 'the code is wrong, and that was the last try: ask for a new one',
        ),
      };
    });
    if (!outcome.ok) throw outcome.error;
    return outcome.value;
  }

  /** The challenge locked in `trx`, if it is still live (another request may have used it meanwhile). */
  private async relock(trx: Knex.Transaction, id: string, now: Date): Promise<Outcome<EmailChallenge>> {
    const challenge = await this.opts.challenges.lock(id, trx);
    return challenge && isLive(challenge, now) ? { ok: true, value: challenge } : { ok: false, error: invalidCode() };
  }

  /** Runs what sends a message after its send was taken from the limits; gives the send back if that fails (nothing was sent). */
  private async refundingOnFailure(kind: SendKind, address: string, ip: string | undefined, send: () => Promise<unknown>): Promise<void> {
    try {
      await send();
    } catch (err) {
      await this.opts.limits.refund(kind, address, ip);
      throw err;
    }
  }

  private codes(): ChallengeCodes {
    if (!this.opts.codes) throw new AppError('bad_config', 'the e-mail flows need the server secret: set AUTHCTL_SECRET');
    return this.opts.codes;
  }

  private assertOn(): void {
    if (!this.enabled) throw new AppError('not_found', 'e-mail addresses are not enabled on this server (identity.email is "off")');
  }
}

function isLive(challenge: EmailChallenge, now: Date): boolean {
  return challenge.endedAt === null && challenge.expiresAt.getTime() > now.getTime();
}
