import { createHmac } from 'node:crypto';
import {
  generateAuthenticationOptions,
  generateRegistrationOptions,
  type AuthenticationResponseJSON,
  type PublicKeyCredentialCreationOptionsJSON,
  type PublicKeyCredentialRequestOptionsJSON,
  type RegistrationResponseJSON,
} from '@simplewebauthn/server';
import { v7 as uuidv7 } from 'uuid';
import type { Config } from '../../config/schema.js';
import type { Amr } from '../../model/mfa.js';
import { PASSKEY_TRANSPORTS, type PasskeyRecord, type PasskeyTransport } from '../../model/passkey.js';
import type { UserRecord } from '../../model/user.js';
import type { Clock } from '../../platform/clock.js';
import { AppError, isAppError } from '../../platform/errors.js';
import type { Logger } from '../../platform/logger.js';
import type { Db, Executor } from '../../store/pg/db.js';
import type { IdentitiesRepo } from '../../store/pg/identities-repo.js';
import { isCredentialTaken, type PasskeysRepo } from '../../store/pg/passkeys-repo.js';
import type { UsersRepo } from '../../store/pg/users-repo.js';
import type { AccessTokenResponse, AuthService, PendingLogin, Principal, SignInResult, TokenResponse } from '../auth/auth-service.js';
import type { MfaFactors } from '../mfa/mfa-factors.js';
import type { ClientMeta, RevokingTransaction, SessionService } from '../sessions/session-service.js';
import type { Telemetry } from '../telemetry.js';
import type { AccessTokens } from '../tokens/access-tokens.js';
import { emailKey, normalizeEmail } from '../users/email.js';
import { keepsWayToSignIn, lastWayToSignIn } from '../users/sign-in-methods.js';
import { foldUsername, normalizeUsername } from '../users/username.js';
import { CHALLENGE_TTL_SECONDS, type ChallengeBinding, type ChallengeClaims, type PasskeyCeremony, type PasskeyChallenges } from './challenges.js';
import {
  checkAssertion,
  checkRegistration,
  echoedChallenge,
  PASSKEY_ALGORITHMS,
  PasskeyRefusal,
  rejected,
  type Assertion,
  type RelyingParty,
} from './webauthn.js';

/** The HKDF purpose of the key that derives the decoy credentials of sign-in options. */
export const PASSKEY_DECOY_KEY_PURPOSE = 'authctl/v1/passkey-decoy';

/** A passkey as its user (and an administrator) sees it: never the public key. */
export interface PasskeyView {
  id: string;
  name: string;
  /** The authenticator model's AAGUID. */
  aaguid: string;
  transports: string[];
  /** A synced (multi-device) passkey, and whether it is backed up now. */
  backupEligible: boolean;
  backedUp: boolean;
  createdAt: string;
  lastUsedAt: string | null;
}

/** Who sign-in options are for: a username, an address, or nobody (discoverable credentials). */
export type PasskeyLoginHint = { username?: string; email?: string };

/**
 * Runs a sign-in attempt under the login limits: of the passkey's user, or of the client address
 * alone for a credential nobody has (the route's `LoginThrottle.guard`).
 */
export type PasskeyLimits = <T>(user: UserRecord | undefined, attempt: () => Promise<T>) => Promise<T>;

export interface PasskeysOptions {
  db: Db;
  repo: PasskeysRepo;
  users: Pick<UsersRepo, 'lock' | 'findById'>;
  /** The user's provider identities: a way to sign in that removing the last passkey leaves. */
  identities: Pick<IdentitiesRepo, 'listLive'>;
  challenges: PasskeyChallenges;
  /** `identity.webauthn` (rpName defaults to mail.productName). */
  webauthn: Config['identity']['webauthn'];
  productName: string;
  /** `identity.email`: whether a verified address is a way to sign in, and whether addresses name users. */
  email: Config['identity']['email'];
  /** `ServerSecrets.macKeys(PASSKEY_DECOY_KEY_PURPOSE)[0]`; absent without a server secret. */
  decoyKey: Buffer | undefined;
  /** Where a passkey's ceremony ends: a session, a login's second step, or a session's step-up. */
  auth: Pick<AuthService, 'signIn' | 'completeSecondStep' | 'reauthenticateWithPasskey' | 'needsSecondStep'>;
  /** Removing a passkey revokes the sessions it signed in, in the removal's transaction. */
  sessions: Pick<SessionService, 'revokeWithin'>;
  /** Whether a login offers a passkey as its second step. */
  mfa: Pick<MfaFactors, 'activeTypes'>;
  accessTokens: Pick<AccessTokens, 'assertCanSign'>;
  clock: Clock;
  log: Logger;
  telemetry: Telemetry;
  region: string;
}

const TIMEOUT_MS = CHALLENGE_TTL_SECONDS * 1000;
const DECOY_TRANSPORTS: PasskeyTransport[] = ['hybrid', 'internal'];
const notFound = () => new AppError('not_found', 'no such passkey');

/**
 * Passkeys (README "Passkeys", docs/api.md#passkeys): the WebAuthn ceremonies — registration,
 * sign-in with or without a username, the second step of a two-step login, step-up — checked by
 * `@simplewebauthn/server`, and the user's list of passkeys.
 *
 * Every ceremony's challenge is sealed ({@link PasskeyChallenges}): bound to its ceremony (and
 * user, and login), five minutes long, spent in the transaction of what it yields. A passkey
 * signs in as `hwk` (device-bound: not backup-eligible) or `swk` (synced), with `user` when its
 * authenticator verified its user — then the session is `aal2` with no second step.
 */
export class Passkeys {
  private readonly rp: RelyingParty;

  constructor(private readonly opts: PasskeysOptions) {
    const { rpId = 'localhost', rpName, origins } = opts.webauthn;
    this.rp = { rpId, rpName: rpName ?? opts.productName, origins: origins.length > 0 ? origins : [`https://${rpId}`] };
  }

  get enabled(): boolean {
    return this.opts.webauthn.enabled;
  }

  /** The options of a registration (`startRegistration`): the user's passkeys excluded, a challenge bound to them. */
  async registrationOptions(userId: string): Promise<PublicKeyCredentialCreationOptionsJSON> {
    const { challenge } = this.opts.challenges.issue('register', { userId });
    const user = await this.opts.users.findById(userId);
    if (!user) throw new AppError('not_found', 'no such user');
    const name = user.username ?? user.email ?? user.id;
    return generateRegistrationOptions({
      rpName: this.rp.rpName,
      rpID: this.rp.rpId,
      userName: name,
      userID: userHandleOf(user.id),
      userDisplayName: name,
      challenge,
      timeout: TIMEOUT_MS,
      attestationType: 'none',
      excludeCredentials: (await this.opts.repo.listLive(userId)).map(descriptorOf),
      authenticatorSelection: { residentKey: 'preferred', userVerification: 'preferred' },
      supportedAlgorithmIDs: PASSKEY_ALGORITHMS,
    });
  }

  /**
   * Registers the passkey a registration response created: its challenge (this user's, unspent),
   * the checks of {@link checkRegistration}, then the passkey stored and the challenge spent in
   * one transaction, the user locked first. `conflict` for a credential registered already.
   */
  async register(userId: string, response: RegistrationResponseJSON, name?: string): Promise<PasskeyView> {
    return this.ceremony('register', userId, async () => {
      const { claims, echoed } = this.openChallenge(response, 'register', { userId });
      await this.opts.challenges.assertUnspent(claims);
      const credential = await checkRegistration(this.rp, response, echoed);
      const now = this.opts.clock.now();
      const record = await this.opts.db
        .transaction(async (trx) => {
          if (!(await this.opts.users.lock(userId, trx))) throw new AppError('not_found', 'no such user');
          if (await this.opts.repo.findByCredentialId(credential.credentialId, trx)) throw registeredAlready();
          const record: PasskeyRecord = {
            id: uuidv7(),
            userId,
            credentialId: credential.credentialId,
            publicKey: credential.publicKey,
            counter: credential.counter,
            transports: credential.transports.filter(isTransport),
            aaguid: credential.aaguid,
            backupEligible: credential.backupEligible,
            backedUp: credential.backedUp,
            name: name ?? `Passkey ${(await this.opts.repo.countLive(userId, trx)) + 1}`,
            homeRegion: this.opts.region,
            createdAt: now,
            updatedAt: now,
            lastUsedAt: null,
            removedAt: null,
            version: 1,
          };
          await this.opts.challenges.spend(claims, trx);
          await this.opts.repo.insert(record, trx);
          return record;
        })
        .catch((err: unknown) => Promise.reject(isCredentialTaken(err) ? registeredAlready() : (err as Error)));
      this.opts.telemetry.passkeyRegistered(userId, record.id, record.backupEligible);
      return toPasskeyView(record);
    });
  }

  /** The user's live passkeys, oldest first. */
  async list(userId: string): Promise<PasskeyView[]> {
    return (await this.opts.repo.listLive(userId)).map(toPasskeyView);
  }

  /** Renames one of the user's passkeys; `not_found` for anyone else's or an unknown id. */
  async rename(userId: string, id: string, name: string): Promise<PasskeyView> {
    const renamed = await this.opts.repo.rename(userId, id, name, this.opts.clock.now());
    if (!renamed) throw notFound();
    return toPasskeyView(renamed);
  }

  /**
   * Removes one of the user's passkeys (`DELETE /v1/me/passkeys/:id`); `last_sign_in_method` when
   * the account would have no way left to sign in, `not_found` for anyone else's or an unknown id.
   * The sessions the passkey signed in end with it ({@link revokeSignedIn}) — the caller's own
   * too, when the passkey signed it in: whoever removes a passkey may be removing it because
   * someone else holds it, and a session it opened is one that someone may be using.
   */
  async remove(userId: string, id: string): Promise<void> {
    const now = this.opts.clock.now();
    await this.opts.sessions.revokeWithin(async (tx) => {
      const trx = tx.ex;
      // Locked first: two concurrent removals of a user's last two ways cannot both pass the check.
      const user = await this.opts.users.lock(userId, trx);
      if (!user) throw new AppError('not_found', 'no such user');
      const live = await this.opts.repo.listLive(userId, trx);
      if (!live.some((p) => p.id === id)) throw notFound();
      const left = { identities: (await this.opts.identities.listLive(userId, trx)).length, passkeys: live.length - 1 };
      if (!keepsWayToSignIn(user, left, this.opts.email)) throw lastWayToSignIn('passkey');
      await this.opts.repo.remove(userId, [id], now, trx);
      await revokeSignedIn(tx, userId, id);
    });
    this.opts.telemetry.passkeyRemoved(userId, id, { via: 'self' });
  }

  /**
   * `authctl user passkeys remove`: removes one passkey of the user (no last-way check: support
   * acts on purpose) and ends the sessions it signed in, as the user's own removal does; logs who
   * ran it. Returns the passkey and how many sessions ended.
   */
  async removeByAdmin(userId: string, id: string, actor: string): Promise<{ passkey: PasskeyView; sessionsRevoked: number }> {
    const now = this.opts.clock.now();
    const { removed, sessionsRevoked } = await this.opts.sessions.revokeWithin(async (tx) => {
      if (!(await this.opts.users.lock(userId, tx.ex))) throw new AppError('not_found', 'no such user');
      const [removed] = await this.opts.repo.remove(userId, [id], now, tx.ex);
      if (!removed) throw notFound();
      return { removed, sessionsRevoked: await revokeSignedIn(tx, userId, id) };
    });
    this.opts.telemetry.passkeyRemoved(userId, id, { via: 'admin', actor });
    return { passkey: toPasskeyView(removed), sessionsRevoked };
  }

  /**
   * The options of a sign-in (`startAuthentication`). Without a hint: no credentials listed, so
   * the browser offers the user's discoverable passkeys (usernameless, conditional UI). With a
   * username or an address: that user's passkeys — and for a user nobody has, or one without
   * passkeys, credentials derived from the identifier under the server secret, the same ones
   * every time: the answer tells nobody who exists or who has passkeys.
   */
  async loginOptions(hint: PasskeyLoginHint): Promise<PublicKeyCredentialRequestOptionsJSON> {
    const { challenge } = this.opts.challenges.issue('login');
    if (hint.username === undefined && hint.email === undefined) return this.requestOptions(challenge, []);
    const passkeys = await this.passkeysNamed(hint);
    return this.requestOptions(challenge, passkeys.length > 0 ? passkeys.map(descriptorOf) : this.decoys(hint));
  }

  /** The options of a login's second step: the user's passkeys, a challenge bound to the user and this login. */
  async secondStepOptions(pending: PendingLogin): Promise<PublicKeyCredentialRequestOptionsJSON> {
    await this.assertOffered(pending);
    const { challenge } = this.opts.challenges.issue('mfa', { userId: pending.user.id, mfaTokenId: pending.claims.id });
    return this.requestOptions(challenge, (await this.opts.repo.listLive(pending.user.id)).map(descriptorOf));
  }

  /**
   * A sign-in with a passkey (`POST /v1/auth/passkey/verify`): the credential (a live passkey,
   * else `passkey_rejected`), its challenge (a sign-in's, unspent), the checks of
   * {@link checkAssertion}, the counter, the user handle; then `AuthService.signIn` with `hwk` or
   * `swk` — a session at once when the authenticator verified its user — spending the challenge
   * and recording the use in the session's transaction. Under the login limits of `limits`.
   */
  async signIn(response: AuthenticationResponseJSON, meta: ClientMeta, limits: PasskeyLimits): Promise<SignInResult> {
    this.opts.accessTokens.assertCanSign();
    const passkey = await this.opts.repo.findByCredentialId(response.id);
    const user = passkey && (await this.opts.users.findById(passkey.userId));
    return limits(user, () =>
      this.ceremony('login', user?.id, async () => {
        if (!passkey || !user) throw rejected('unknown_credential', 'no passkey has this credential id (or it was removed)');
        const { claims, echoed } = this.openChallenge(response, 'login');
        await this.opts.challenges.assertUnspent(claims);
        const assertion = await this.verify(passkey, response, echoed);
        assertUserHandle(response, user.id);
        if (user.status !== 'active') throw new AppError('account_disabled', 'this account has been disabled by an administrator');
        const result = await this.opts.auth.signIn(user, kindOf(passkey), meta, {
          userVerified: assertion.userVerified,
          passkeyId: passkey.id,
          spend: this.spending(claims, passkey, assertion, user.id),
        });
        this.opts.telemetry.passkeyUsed(user.id, passkey.id, 'login', assertion.userVerified);
        return result;
      }),
    );
  }

  /**
   * A login's second step answered with a passkey (`POST /v1/auth/mfa/verify` with `passkey`):
   * one of the user's passkeys, a challenge of this login's, the checks of a sign-in; then the
   * session (`amr`: the first step's, `hwk`/`swk`, `user` when verified, `mfa`), the challenge
   * and the mfaToken spent and the use recorded in its transaction. A refusal leaves the
   * mfaToken good for another try.
   */
  async verifySecondStep(pending: PendingLogin, response: AuthenticationResponseJSON, meta: ClientMeta): Promise<TokenResponse> {
    this.opts.accessTokens.assertCanSign();
    const userId = pending.user.id;
    await this.assertOffered(pending);
    return this.ceremony('mfa', userId, async () => {
      const passkey = await this.opts.repo.findByCredentialId(response.id);
      if (passkey?.userId !== userId) throw rejected('unknown_credential', 'this is not a passkey of the user of this login');
      const { claims, echoed } = this.openChallenge(response, 'mfa', { userId, mfaTokenId: pending.claims.id });
      await this.opts.challenges.assertUnspent(claims);
      const assertion = await this.verify(passkey, response, echoed);
      const tokens = await this.opts.auth.completeSecondStep(pending, provedBy(passkey, assertion), meta, {
        spend: this.spending(claims, passkey, assertion, userId),
        passkeyId: passkey.id,
      });
      this.opts.telemetry.passkeyUsed(userId, passkey.id, 'mfa', assertion.userVerified);
      return tokens;
    });
  }

  /**
   * The options of a step-up (`POST /v1/auth/passkey/options` with `{purpose: "reauthenticate"}`
   * and the caller's access token): the caller's passkeys, a challenge bound to the user and to
   * the session of the token. `not_found` for a user without passkeys.
   */
  async reauthenticationOptions(principal: Pick<Principal, 'userId' | 'sessionId'>): Promise<PublicKeyCredentialRequestOptionsJSON> {
    const passkeys = await this.opts.repo.listLive(principal.userId);
    if (passkeys.length === 0) throw new AppError('not_found', 'this account has no passkey: step up with the password');
    const { challenge } = this.opts.challenges.issue('reauthenticate', { userId: principal.userId, sessionId: principal.sessionId });
    return this.requestOptions(challenge, passkeys.map(descriptorOf));
  }

  /**
   * A step-up answered with a passkey (`POST /v1/auth/reauthenticate` with `passkey`): one of the
   * caller's passkeys, a challenge of this session's step-up, the checks of a sign-in (the
   * signature, backup eligibility, the counter, the user handle); then the session's `auth_time`
   * is now and its `amr` what the passkey proved, the challenge spent and the use recorded in the
   * transaction that renews it. A step-up proves what a login would: for an account whose logins
   * ask a second factor after a passkey that did not verify its user, such a passkey is refused
   * (`user_verification`). The caller runs this under the login limits.
   */
  async reauthenticate(principal: Principal, response: AuthenticationResponseJSON): Promise<AccessTokenResponse> {
    this.opts.accessTokens.assertCanSign();
    const { userId, sessionId } = principal;
    return this.ceremony('reauthenticate', userId, async () => {
      const passkey = await this.opts.repo.findByCredentialId(response.id);
      if (passkey?.userId !== userId) throw rejected('unknown_credential', 'this is not a passkey of this account (or it was removed)');
      const { claims, echoed } = this.openChallenge(response, 'reauthenticate', { userId, sessionId });
      await this.opts.challenges.assertUnspent(claims);
      const assertion = await this.verify(passkey, response, echoed);
      assertUserHandle(response, userId);
      if (!assertion.userVerified && (await this.opts.auth.needsSecondStep(userId, kindOf(passkey)))) {
        throw rejected(
          'user_verification',
          'this account signs in with a second factor: the authenticator must verify its user (a PIN or biometric) — or step up with the password and a code',
        );
      }
      const renewed = await this.opts.auth.reauthenticateWithPasskey(
        principal,
        provedBy(passkey, assertion),
        this.spending(claims, passkey, assertion, userId),
      );
      this.opts.telemetry.passkeyUsed(userId, passkey.id, 'reauthenticate', assertion.userVerified);
      return renewed;
    });
  }

  /**
   * The checks of an assertion, its backup eligibility, and the counter. Backup eligibility is
   * fixed when a credential is made (WebAuthn §7.2): an assertion whose BE flag is not the one
   * registered comes from another authenticator than the passkey's — and a device-bound passkey's
   * key that turned up synced would sign in as `hwk`, a claim no longer true — so it is refused. A
   * counter that did not move forwards (when either is non-zero: an authenticator that keeps none
   * reports 0 every time) is a cloned authenticator's, or a replayed answer — refused and logged,
   * whatever the library makes of it.
   */
  private async verify(passkey: PasskeyRecord, response: AuthenticationResponseJSON, challenge: string): Promise<Assertion> {
    const assertion = await checkAssertion(this.rp, response, challenge, passkey);
    if (assertion.backupEligible !== passkey.backupEligible) {
      throw rejected('backup_eligibility', 'its backup eligibility is not the one it was registered with (another authenticator?)');
    }
    const stored = passkey.counter;
    if ((assertion.counter > 0 || stored > 0) && assertion.counter <= stored) {
      this.opts.telemetry.passkeyCounterRegressed(passkey.userId, passkey.id, stored, assertion.counter);
      throw rejected('counter_regressed', 'its signature counter did not move forwards (a cloned authenticator?)');
    }
    return assertion;
  }

  /** What the session's transaction spends: the challenge, and the passkey's use (forward-only: a concurrent use that got further wins). */
  private spending(claims: ChallengeClaims, passkey: PasskeyRecord, assertion: Assertion, userId: string): (ex: Executor) => Promise<void> {
    return async (ex) => {
      await this.opts.challenges.spend(claims, ex, userId);
      if (!(await this.opts.repo.recordUse(passkey.id, assertion.counter, assertion.backedUp, this.opts.clock.now(), ex))) {
        throw rejected('counter_race', 'another use of this passkey got further meanwhile (or it was removed)');
      }
    };
  }

  /** `not_found` unless this login offers a passkey as its second step (never after a passkey's first: one passkey is not two steps). */
  private async assertOffered(pending: PendingLogin): Promise<void> {
    const first = pending.claims.first;
    if (first === 'hwk' || first === 'swk' || !(await this.opts.mfa.activeTypes(pending.user.id)).includes('passkey')) {
      throw new AppError('not_found', 'this login does not offer a passkey as its second step');
    }
  }

  /** Opens the challenge a response echoes; the echo itself is what the library then checks the response against. */
  private openChallenge(
    response: { response: { clientDataJSON: string } },
    ceremony: PasskeyCeremony,
    expect?: ChallengeBinding,
  ): { claims: ChallengeClaims; echoed: string } {
    const echoed = echoedChallenge(response);
    return { claims: this.opts.challenges.open(echoed, ceremony, expect), echoed: echoed as string };
  }

  /** Runs a ceremony; a refusal is logged as `passkey.failed` with the check that refused (and counted). */
  private async ceremony<T>(ceremony: PasskeyCeremony, userId: string | undefined, run: () => Promise<T>): Promise<T> {
    try {
      return await run();
    } catch (err) {
      const reason = err instanceof PasskeyRefusal ? err.reason : isAppError(err, 'invalid_passkey_challenge') ? 'challenge' : undefined;
      if (reason) this.opts.telemetry.passkeyFailed(ceremony, reason, userId);
      throw err;
    }
  }

  private requestOptions(challenge: string, allowCredentials: Array<{ id: string; transports: string[] }>): Promise<PublicKeyCredentialRequestOptionsJSON> {
    return generateAuthenticationOptions({ rpID: this.rp.rpId, challenge, allowCredentials, timeout: TIMEOUT_MS, userVerification: 'preferred' });
  }

  /**
   * The live passkeys of the user a hint names, as a password login would find them — one query
   * whoever it names (see {@link PasskeysRepo.listLiveByLogin}); none for an identifier that
   * cannot be anyone's.
   */
  private async passkeysNamed(hint: PasskeyLoginHint): Promise<PasskeyRecord[]> {
    try {
      if (hint.email !== undefined) return this.opts.email === 'off' ? [] : await this.opts.repo.listLiveByLogin({ email: normalizeEmail(hint.email) });
      return await this.opts.repo.listLiveByLogin({ username: normalizeUsername(hint.username ?? '') });
    } catch (err) {
      if (isAppError(err, 'invalid_request')) return [];
      throw err;
    }
  }

  /** The credentials an identifier without passkeys is answered with: an HMAC of its folded form under the server secret. */
  private decoys(hint: PasskeyLoginHint): Array<{ id: string; transports: string[] }> {
    if (!this.opts.decoyKey) throw new AppError('bad_config', 'no server secret: set AUTHCTL_SECRET to use passkeys');
    const folded = hint.email !== undefined ? `email:${foldEmail(hint.email)}` : `username:${foldUsername(hint.username ?? '')}`;
    return [{ id: createHmac('sha256', this.opts.decoyKey).update(folded).digest('base64url'), transports: DECOY_TRANSPORTS }];
  }
}

export function toPasskeyView(p: PasskeyRecord): PasskeyView {
  return {
    id: p.id,
    name: p.name,
    aaguid: p.aaguid,
    transports: p.transports,
    backupEligible: p.backupEligible,
    backedUp: p.backedUp,
    createdAt: p.createdAt.toISOString(),
    lastUsedAt: p.lastUsedAt?.toISOString() ?? null,
  };
}

/** What a passkey proves: `hwk` for one bound to its device, `swk` for a synced (backup-eligible) one. */
function kindOf(passkey: PasskeyRecord): 'hwk' | 'swk' {
  return passkey.backupEligible ? 'swk' : 'hwk';
}

/** What an assertion proves: the passkey's kind, and `user` when its authenticator verified its user. */
function provedBy(passkey: PasskeyRecord, assertion: Assertion): Amr[] {
  return assertion.userVerified ? [kindOf(passkey), 'user'] : [kindOf(passkey)];
}

/** A user handle, when the response has one (a discoverable credential's), must be the user's. */
function assertUserHandle(response: AuthenticationResponseJSON, userId: string): void {
  const handle = response.response.userHandle;
  if (handle && handle !== userHandleOf(userId).toString('base64url')) {
    throw rejected('user_handle', "the response's user handle is not the passkey's user");
  }
}

/** Revokes, in a removal's transaction, the user's sessions the passkey signed in (`passkey_removed`); how many. */
async function revokeSignedIn(tx: RevokingTransaction, userId: string, passkeyId: string): Promise<number> {
  return (await tx.revokeAllForUser(userId, 'passkey_removed', { passkeyId })).length;
}

/** The WebAuthn user handle of a user: their id's 16 bytes, stable for as long as the account lives. */
function userHandleOf(userId: string): Buffer<ArrayBuffer> {
  return Buffer.from(userId.replace(/-/g, ''), 'hex');
}

function descriptorOf(p: PasskeyRecord): { id: string; transports: string[] } {
  return { id: p.credentialId, transports: p.transports };
}

function isTransport(t: string): t is PasskeyTransport {
  return (PASSKEY_TRANSPORTS as readonly string[]).includes(t);
}

/** An address as look-ups compare it; a string that is no address, trimmed and lower-cased. */
function foldEmail(raw: string): string {
  try {
    return emailKey(normalizeEmail(raw));
  } catch {
    return raw.trim().toLowerCase();
  }
}

function registeredAlready(): AppError {
  return new AppError('conflict', 'this passkey is registered already');
}
