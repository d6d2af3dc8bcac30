import { AppError, invalidRequest, isAppError } from '../../platform/errors.js';
import type { LoginMethod, Telemetry } from '../telemetry.js';
import type { Cache } from '../../store/cache/cache.js';
import type { MemoryCache } from '../../store/cache/memory.js';
import type { Amr, AuthContext, FirstFactor, SecondFactorType } from '../../model/mfa.js';
import type { SessionOwner, SessionRecord } from '../../model/session.js';
import type { UserRecord } from '../../model/user.js';
import type { LoginPolicy } from '../replication/login-policy.js';
import type { RefreshProxy, RelayedResponse } from '../replication/refresh-proxy.js';
import type { Clock } from '../../platform/clock.js';
import type { Db, Executor } from '../../store/pg/db.js';
import type { Config } from '../../config/schema.js';
import type { MfaFactors, SecondFactorProof } from '../mfa/mfa-factors.js';
import type { FirstStepVia, MfaTokenClaims, MfaTokenPurpose, MfaTokens } from '../mfa/mfa-tokens.js';
import type { ClientMeta, IssuedSession, SessionService } from '../sessions/session-service.js';
import type { AccessClaims, AccessTokens } from '../tokens/access-tokens.js';
import { toUserView, type LoginIdentifier, type Registration, type UserService, type UserView } from '../users/user-service.js';

/** `TokenResponse` (docs/api.md#tokenresponse). */
export interface TokenResponse {
  accessToken: string;
  tokenType: 'Bearer';
  expiresIn: number;
  refreshToken: string;
  refreshExpiresIn: number;
  sessionId: string;
  user: UserView;
}

/**
 * The answer to a first step when a second factor must follow (docs/api.md#two-step-login): no
 * tokens, a short-lived single-use `mfaToken` for `POST /v1/auth/mfa/verify` (or, when
 * `enrolmentRequired`, for enrolling a factor first), and the factors the user can answer with.
 */
export interface MfaChallenge {
  mfaRequired: true;
  mfaToken: string;
  expiresIn: number;
  factors: SecondFactorType[];
  enrolmentRequired: boolean;
}

/** What a login's first step answers: tokens, or the second step to take. */
export type SignInResult = TokenResponse | MfaChallenge;

/** What a first step through a provider adds to {@link AuthService.signIn}. */
export interface SignInOptions {
  /** The provider the first step went through (`first` is `fed`): the session's `idp`. */
  idp?: string;
  /** The passkey of a passkey's first step: the session's `passkeyId` (removing the passkey revokes the session). */
  passkeyId?: string;
  /**
   * Spends the single-use credential the first step was (a provider's one-time code, a passkey's
   * challenge and its use); throws when it was spent already. Run in the session's transaction when tokens are issued (both are
   * written, or neither), and before the mfaToken is issued when a second step follows.
   */
  spend?: (ex: Executor) => Promise<void>;
  /**
   * A passkey's first step whose authenticator verified its user (a PIN or biometric): two
   * factors in one — the session follows at once (`amr` gains `user`, `acr` is `aal2`), whatever
   * second factors the user has.
   */
  userVerified?: boolean;
}

/** A login between its two steps: its opened mfaToken and the user it names (for the throttle's name). */
export interface PendingLogin {
  claims: MfaTokenClaims;
  user: UserRecord;
}

/** `POST /v1/auth/reauthenticate`'s answer: a new access token of the same session (its refresh token is unchanged). */
export interface AccessTokenResponse {
  accessToken: string;
  tokenType: 'Bearer';
  expiresIn: number;
}

/** Who is calling, from a verified access token. */
export interface Principal {
  userId: string;
  sessionId: string;
  /** Null for a user known by address only. */
  username: string | null;
  claims: AccessClaims;
}

export interface SessionView {
  id: string;
  createdAt: string;
  lastUsedAt: string;
  expiresAt: string;
  region: string;
  userAgent: string | null;
  current: boolean;
}

export interface AuthServiceOptions {
  db: Pick<Db, 'transaction' | 'writer'>;
  /** `identity.mfa`: with `required`, a login of a user without a factor leads to enrolment. */
  mfaPolicy: Config['identity']['mfa'];
  mfaTokens: MfaTokens;
  /** The user's second factors: which are active (none with `identity.mfa` off), and the check of a code. */
  mfa: Pick<MfaFactors, 'activeTypes' | 'verify'>;
  users: UserService;
  sessions: SessionService;
  accessTokens: AccessTokens;
  cache: Cache;
  /** An in-process tier in front of `cache` for profiles (absent when `cache` is in-process already). */
  localProfiles?: MemoryCache;
  clock: Clock;
  telemetry: Telemetry;
  /** Refuses a login with the right password that belongs to another region (`regions.loginPolicy`). */
  loginPolicy?: Pick<LoginPolicy, 'assertHome'>;
  /** Sends a refresh of a session homed in another region to that region (absent: every refresh is served here). */
  refreshProxy?: Pick<RefreshProxy, 'homedElsewhere' | 'relay'>;
}

/**
 * The end-user flows of docs/api.md#endpoints — register, login, refresh, logout, password change,
 * Bearer authentication — composed from the user, session and token services.
 */
export class AuthService {
  constructor(private readonly opts: AuthServiceOptions) {}

  async register(username: string, password: string): Promise<UserView>;
  async register(input: Registration): Promise<UserView>;
  async register(input: Registration | string, password?: string): Promise<UserView> {
    try {
      return toUserView(await this.opts.users.register(typeof input === 'string' ? { username: input, password: password ?? '' } : input));
    } catch (err) {
      if (err instanceof AppError) this.opts.telemetry.registrationRefused(err.code);
      throw err;
    }
  }

  /** Logs in by `{username}` or `{email}` (a bare string is a username). */
  async login(identifier: LoginIdentifier | string, password: string, meta: ClientMeta): Promise<SignInResult> {
    // A server that cannot sign says so (503) before it checks a password it could not act on.
    this.opts.accessTokens.assertCanSign();
    const user = await this.opts.users.authenticate(identifier, password);
    return this.signIn(user, 'pwd', meta);
  }

  /**
   * Where every login's first step ends — a password checked, an e-mailed code or a passkey
   * used: the region check, then a session and its tokens; or, when a second factor must follow,
   * an {@link MfaChallenge} and no session: with `identity.mfa` on, a user with an active factor
   * gets an mfaToken for `POST /v1/auth/mfa/verify`; with `required`, a user without one gets an
   * mfaToken that allows enrolling a factor and nothing else. A passkey is never offered as the
   * second step of a passkey's first (one passkey cannot be both), and a passkey that verified
   * its user needs no second step at all.
   */
  async signIn(user: UserRecord, first: FirstFactor, meta: ClientMeta, options: SignInOptions = {}): Promise<SignInResult> {
    // After the first factor's check, so the answer says nothing about who exists where.
    this.opts.loginPolicy?.assertHome(user.homeRegion);
    const now = this.opts.clock.now();
    if (options.userVerified) return this.startSession(user, meta, { authTime: now, amr: [first, 'user'], ...signedInBy(options) }, first, options.spend);
    const { factors, purpose } = await this.secondStepOf(user.id, first);
    const auth: AuthContext = { authTime: now, amr: [first], ...signedInBy(options) };
    if (purpose === undefined) return this.startSession(user, meta, auth, first, options.spend);
    // Committed before the mfaToken is issued; in a transaction of its own, for a spend of several
    // writes (a passkey's challenge and its use: both, or neither).
    const spend = options.spend;
    if (spend) await this.opts.db.transaction((trx) => spend(trx));
    return this.challenge(user, first, purpose, factors, options);
  }

  /**
   * Whether a first step of `first` alone would leave a login of this user short of a session —
   * a second factor to answer, or one to enrol (`identity.mfa: "required"`). A step-up must prove
   * as much as a login: a passkey that did not verify its user is then not enough.
   */
  async needsSecondStep(userId: string, first: FirstFactor): Promise<boolean> {
    return (await this.secondStepOf(userId, first)).purpose !== undefined;
  }

  /**
   * The second step a login of `first` leads to: the factors it offers (never a passkey after a
   * passkey), and the mfaToken's purpose (none: no second step).
   */
  private async secondStepOf(userId: string, first: FirstFactor): Promise<{ factors: SecondFactorType[]; purpose: MfaTokenPurpose | undefined }> {
    const offered = await this.opts.mfa.activeTypes(userId);
    const factors = isPasskey(first) ? offered.filter((f) => f !== 'passkey') : offered;
    return { factors, purpose: factors.length > 0 ? 'verify' : this.opts.mfaPolicy === 'required' ? 'enrol' : undefined };
  }

  /**
   * Opens the mfaToken of a login's second step (`purpose` verify) or of an enrolment it
   * requires (`enrol`): authentic, unexpired, of that purpose and unused, of a user who still
   * exists — else `invalid_mfa_token` — and may still log in (`account_disabled`; the region
   * policy, as at the first step).
   */
  async pendingLogin(mfaToken: unknown, purpose: MfaTokenPurpose): Promise<PendingLogin> {
    const claims = this.opts.mfaTokens.open(mfaToken, purpose);
    const [user] = await Promise.all([
      this.opts.users.get(claims.userId).catch((err: unknown) => (isAppError(err, 'not_found') ? undefined : Promise.reject(err as Error))),
      this.opts.mfaTokens.assertUnspent(claims),
    ]);
    if (!user) throw new AppError('invalid_mfa_token', 'the mfaToken is not valid: its user no longer exists');
    if (user.status !== 'active') throw new AppError('account_disabled', 'this account has been disabled by an administrator');
    this.opts.loginPolicy?.assertHome(user.homeRegion);
    return { claims, user };
  }

  /**
   * A login's second step (`POST /v1/auth/mfa/verify`): the code or recovery code is checked and
   * spent (`invalid_code` when wrong: the mfaToken stays good for another try), then the
   * mfaToken is spent in the transaction of the session it yields (so a replay, or a concurrent
   * second use, fails with `invalid_mfa_token`). The session is at `aal2`.
   */
  async verifySecondFactor(pending: PendingLogin, proof: SecondFactorProof, meta: ClientMeta): Promise<TokenResponse> {
    this.opts.accessTokens.assertCanSign();
    const second = await this.opts.mfa.verify(pending.user.id, proof);
    return this.completeSecondStep(pending, codeAmr(second), meta);
  }

  /**
   * The end of a login's second step once its answer was checked — a code, or a passkey
   * (src/core/passkeys/passkeys.ts): the session, at `aal2`, whose `amr` is the first step's, what
   * the second `proved` and `mfa`. The mfaToken is spent in the session's transaction, with what
   * `second.spend` spends (a passkey's challenge and its use). The session is signed in by the
   * passkey of either step: the first's (in the mfaToken), or `second.passkeyId`.
   */
  async completeSecondStep(
    pending: PendingLogin,
    proved: Amr[],
    meta: ClientMeta,
    second: { spend?: (ex: Executor) => Promise<void>; passkeyId?: string } = {},
  ): Promise<TokenResponse> {
    this.opts.accessTokens.assertCanSign();
    const auth: AuthContext = {
      authTime: this.opts.clock.now(),
      amr: withSecondFactor(pending.claims.first, proved),
      ...signedInBy({ idp: pending.claims.idp, passkeyId: second.passkeyId ?? pending.claims.passkeyId }),
    };
    return this.startSession(pending.user, meta, auth, pending.claims.first, async (ex) => {
      await second.spend?.(ex);
      await this.opts.mfaTokens.spend(pending.claims, ex);
    });
  }

  /**
   * Who may enrol with an mfaToken (`Authorization: Bearer mfa_…` on the enrolment routes): the
   * user of an enrolment token, only while they have no active TOTP factor — once one is active,
   * the token has nothing left to allow. (A passkey does not count: a passkey's first step without
   * user verification, under `required`, enrols a TOTP factor as its second.)
   */
  async enrolmentUser(mfaToken: string): Promise<PendingLogin> {
    const pending = await this.pendingLogin(mfaToken, 'enrol');
    if ((await this.opts.mfa.activeTypes(pending.user.id)).includes('totp')) {
      throw new AppError('invalid_mfa_token', 'the mfaToken is not valid: this account has a second factor already; log in again');
    }
    return pending;
  }

  /**
   * The end of a login whose user had to enrol a factor first (`identity.mfa: "required"`): the
   * factor was just confirmed with the login's `mfaToken` ({@link enrolmentUser} opened it), which
   * this spends; then the session and its tokens, as after a second step (the confirmation's code
   * was the second factor).
   */
  async completeEnrolment(pending: PendingLogin, meta: ClientMeta): Promise<TokenResponse> {
    this.opts.accessTokens.assertCanSign();
    if (!(await this.opts.mfa.activeTypes(pending.user.id)).includes('totp')) {
      throw new AppError('invalid_mfa_token', 'the mfaToken is not valid: no factor has been confirmed with it');
    }
    return this.completeSecondStep(pending, codeAmr('totp'), meta);
  }

  /**
   * Step-up (`POST /v1/auth/reauthenticate`): the caller proves who they are again — the
   * password, and a code when they have an active factor — and their session's `auth_time`
   * becomes now (its `amr`, what was just shown). The answer is a new access token of the same
   * session; the refresh token is unchanged, and later refreshes carry the new `auth_time`.
   * Callers run this under the login throttle (wrong passwords and codes count alike). An account
   * whose only second factor is a passkey (`identity.mfa: "required"`) cannot step up with its
   * password (`400`): it steps up with the passkey ({@link reauthenticateWithPasskey}).
   */
  async reauthenticate(principal: Principal, password: string, code: SecondFactorProof | undefined): Promise<AccessTokenResponse> {
    this.opts.accessTokens.assertCanSign();
    const user = await this.opts.users.get(principal.userId);
    if (!user.passwordHash) {
      throw new AppError('invalid_request', 'this account has no password: step up with a passkey, or log in again, for a fresh authentication');
    }
    const factors = await this.opts.mfa.activeTypes(user.id);
    const totp = factors.includes('totp');
    if (!totp && factors.includes('passkey')) {
      throw new AppError('invalid_request', "this account's second factor is a passkey: step up with the passkey (`passkey`) instead");
    }
    if (totp && code === undefined) {
      throw invalidRequest(
        [{ path: 'code', message: 'required: this account has a second factor' }],
        'this account has a second factor: send `code` with the password',
      );
    }
    if (!(await this.opts.users.passwordMatches(user, password))) throw new AppError('invalid_credentials', 'the password is wrong');
    const second = totp && code !== undefined ? await this.opts.mfa.verify(user.id, code) : undefined;
    const auth: AuthContext = { authTime: this.opts.clock.now(), amr: second ? withSecondFactor('pwd', codeAmr(second)) : ['pwd'] };
    return this.renew(principal, auth);
  }

  /**
   * Step-up with a passkey (`POST /v1/auth/reauthenticate` with `passkey`, checked by
   * src/core/passkeys/passkeys.ts): the session's `auth_time` becomes now and its `amr` what the
   * passkey `proved` (`hwk` or `swk`, and `user` when its authenticator verified its user: `aal2`).
   * What `spend` spends (the challenge and the passkey's use) is written in the transaction that
   * renews the session: both, or neither. The answer is that of the password's step-up.
   */
  async reauthenticateWithPasskey(principal: Principal, proved: Amr[], spend: (ex: Executor) => Promise<void>): Promise<AccessTokenResponse> {
    this.opts.accessTokens.assertCanSign();
    return this.renew(principal, { authTime: this.opts.clock.now(), amr: proved }, spend);
  }

  /** Records a new authentication in the caller's session (and spends what it used, in the same transaction); its new access token. */
  private async renew(principal: Principal, auth: AuthContext, spend?: (ex: Executor) => Promise<void>): Promise<AccessTokenResponse> {
    const renewed = await this.opts.db.transaction(async (trx) => {
      await spend?.(trx);
      const session = await this.opts.sessions.reauthenticate(principal.sessionId, principal.userId, auth, trx);
      if (!session) throw new AppError('invalid_token', 'the session of this access token has ended');
      return session;
    });
    return { accessToken: this.accessTokenOf(renewed.session, renewed.owner), tokenType: 'Bearer', expiresIn: this.opts.accessTokens.ttlSeconds };
  }

  private challenge(user: UserRecord, first: FirstFactor, purpose: MfaTokenPurpose, factors: SecondFactorType[], via: FirstStepVia): MfaChallenge {
    const { token } = this.opts.mfaTokens.issue(user.id, first, purpose, via);
    return { mfaRequired: true, mfaToken: token, expiresIn: this.opts.mfaTokens.ttlSeconds, factors, enrolmentRequired: purpose === 'enrol' };
  }

  /**
   * A new session and its tokens. With a single-use credential to `spend` (the mfaToken of a
   * two-step login, a provider's one-time code), it is spent in the session's transaction: both
   * are written, or neither.
   */
  private async startSession(
    user: UserRecord,
    meta: ClientMeta,
    auth: AuthContext,
    first: FirstFactor,
    spend?: (ex: Executor) => Promise<void>,
  ): Promise<TokenResponse> {
    const issued = this.opts.sessions.open(user, meta, auth);
    const response = this.tokenResponse(issued);
    if (spend) {
      await this.opts.db.transaction(async (trx) => {
        await spend(trx);
        await this.opts.sessions.save(issued, trx);
      });
    } else {
      await this.opts.sessions.save(issued);
    }
    this.opts.telemetry.loginSucceeded(user.id, issued.session.id, loginMethodOf(first), auth.idp ?? undefined);
    this.opts.telemetry.tokensIssued(1, 1);
    return response;
  }

  /**
   * Rotates a refresh token (docs/api.md#rotation-grace-window-and-reuse). A session homed in another region is refreshed there
   * while that region answers, and its answer — tokens or a problem — comes back as a
   * {@link RelayedResponse} to pass on as it is; otherwise (and when the home region does not
   * answer) the session is rotated here. The token's MAC is checked once per call: a forged token
   * never costs the home region a request, nor this region any I/O.
   */
  async refresh(refreshToken: unknown, requestId?: string): Promise<TokenResponse | RelayedResponse> {
    const { sessions, refreshProxy } = this.opts;
    if (refreshProxy?.homedElsewhere(refreshToken)) {
      const claims = sessions.decode(refreshToken);
      const relayed = claims && (await refreshProxy.relay(refreshToken, claims.region, requestId));
      if (relayed) return relayed;
      // From the local replica (availability over consistency: the rotation replicates home).
      this.opts.accessTokens.assertCanSign();
      return this.refreshed(await sessions.rotate(claims));
    }
    // Rotating and then failing to sign would spend the client's token: make sure we can sign first.
    this.opts.accessTokens.assertCanSign();
    return this.refreshed(await sessions.rotate(sessions.decode(refreshToken)));
  }

  private refreshed(issued: IssuedSession): TokenResponse {
    const response = this.tokenResponse(issued);
    const outcome = issued.outcome ?? 'rotated';
    this.opts.telemetry.refreshed(outcome, issued.owner.id, issued.session.id);
    // A grace retry hands back the token the winner got: no new refresh token exists.
    this.opts.telemetry.tokensIssued(1, outcome === 'rotated' ? 1 : 0);
    return response;
  }

  /** Verifies a Bearer access token: signature, claims, and that its session is not revoked. */
  async authenticate(accessToken: string): Promise<Principal> {
    return principalOf(await this.opts.accessTokens.verify(accessToken));
  }

  /**
   * {@link authenticate} for a token this server has verified before, without a promise (this runs
   * on every Bearer request); `undefined` when the token needs the full check. Throws like it.
   */
  authenticateKnown(accessToken: string): Principal | undefined {
    const known = this.opts.accessTokens.verifyKnown(accessToken);
    return known && principalOf(known);
  }

  /** Ends the caller's session and, if given, the session of a refresh token the caller owns. */
  async logout(principal: Principal, refreshToken?: unknown): Promise<void> {
    await this.opts.sessions.revoke(principal.sessionId, 'logout', principal.userId);
    const other = refreshToken === undefined ? undefined : this.opts.sessions.sessionIdOf(refreshToken);
    if (other && other !== principal.sessionId) await this.opts.sessions.revoke(other, 'logout', principal.userId);
  }

  async logoutAll(principal: Principal): Promise<number> {
    return (await this.opts.users.logoutEverywhere(principal.userId)).length;
  }

  async changePassword(principal: Principal, currentPassword: string, newPassword: string): Promise<void> {
    if (!(await this.opts.users.verifyPassword(principal.userId, currentPassword))) {
      throw new AppError('invalid_credentials', 'the current password is wrong');
    }
    await this.opts.users.setPassword(principal.userId, newPassword, principal.sessionId);
  }

  /**
   * Self-service account deletion, confirmed by the current password: the same
   * {@link UserService.delete} as `authctl user delete` (every session revoked in its transaction
   * and published, the deletion replicated as a tombstone, `user.deleted` logged).
   */
  async deleteAccount(principal: Principal, currentPassword: string): Promise<void> {
    if (!(await this.opts.users.verifyPassword(principal.userId, currentPassword))) {
      throw new AppError('invalid_credentials', 'the current password is wrong');
    }
    await this.opts.users.delete(principal.userId);
    await this.forgetProfile(principal.userId);
  }

  /**
   * The caller's profile. Served from the cache when it can be: a stale profile is harmless,
   * because what could make it wrong (disable, delete) also revokes the session, which the
   * Bearer check refuses before we get here. From the in-process tier it comes without a promise
   * (the common case on every `GET /v1/me`); else from the shared cache or the database.
   */
  me(principal: Principal): UserView | Promise<UserView> {
    return this.opts.localProfiles?.peekUser(principal.userId) ?? this.loadProfile(principal.userId);
  }

  /**
   * Drops a user's cached profile in both tiers after a change `GET /v1/me` shows (address,
   * verification). Other servers' in-process tiers keep theirs for at most 30 s.
   */
  async forgetProfile(userId: string): Promise<void> {
    await this.opts.localProfiles?.deleteUser(userId);
    await this.opts.cache.deleteUser(userId);
  }

  private async loadProfile(userId: string): Promise<UserView> {
    const shared = await this.opts.cache.getUser(userId);
    if (shared) {
      void this.opts.localProfiles?.putUser(shared);
      return shared;
    }
    const user = toUserView(await this.opts.users.get(userId));
    void this.opts.cache.putUser(user);
    void this.opts.localProfiles?.putUser(user);
    return user;
  }

  async listSessions(principal: Principal): Promise<SessionView[]> {
    const sessions = await this.opts.sessions.listForUser(principal.userId);
    return sessions.map((s) => ({
      id: s.id,
      createdAt: s.createdAt.toISOString(),
      lastUsedAt: s.lastUsedAt.toISOString(),
      expiresAt: s.expiresAt.toISOString(),
      region: s.homeRegion,
      userAgent: s.userAgent,
      current: s.id === principal.sessionId,
    }));
  }

  /** Revokes one of the caller's own sessions; anyone else's is `not_found`, as is an unknown id. */
  async revokeOwnSession(principal: Principal, sessionId: string): Promise<void> {
    // Unknown, someone else's, already revoked or expired: nothing of the caller's to revoke.
    if (!(await this.opts.sessions.revoke(sessionId, 'logout', principal.userId))) {
      throw new AppError('not_found', 'no such session');
    }
  }

  /** The tokens of a session; its access token carries the session's authentication (`auth_time`, `amr`, `acr`). */
  /** An access token of `session` for its owner, with the session's authentication context. */
  private accessTokenOf(session: SessionRecord, owner: SessionOwner): string {
    return this.opts.accessTokens.issue({
      userId: owner.id,
      username: owner.username,
      email: owner.email,
      emailVerified: owner.emailVerifiedAt !== null,
      sessionId: session.id,
      auth: { authTime: session.authTime, amr: session.amr, idp: session.idp },
    });
  }

  private tokenResponse(issued: IssuedSession): TokenResponse {
    const owner: SessionOwner = issued.owner;
    const accessToken = this.accessTokenOf(issued.session, owner);
    const now = this.opts.clock.now().getTime();
    return {
      accessToken,
      tokenType: 'Bearer',
      expiresIn: this.opts.accessTokens.ttlSeconds,
      refreshToken: issued.refreshToken,
      refreshExpiresIn: Math.max(0, Math.floor((issued.session.expiresAt.getTime() - now) / 1000)),
      sessionId: issued.session.id,
      user: toUserView(owner),
    };
  }
}

/** How telemetry names a first factor. */
function loginMethodOf(first: FirstFactor): LoginMethod {
  return isPasskey(first) ? 'passkey' : first === 'fed' ? 'oidc' : first;
}

/** What a session records of how it was signed in: its provider, its passkey (only those there are). */
function signedInBy(via: FirstStepVia): Pick<AuthContext, 'idp' | 'passkeyId'> {
  return { ...(via.idp ? { idp: via.idp } : {}), ...(via.passkeyId ? { passkeyId: via.passkeyId } : {}) };
}

function isPasskey(first: FirstFactor): first is 'hwk' | 'swk' {
  return first === 'hwk' || first === 'swk';
}

/** What a code of a second step adds to `amr`: `otp` for a TOTP code, nothing for a recovery code. */
function codeAmr(second: SecondFactorType): Amr[] {
  return second === 'totp' ? ['otp'] : [];
}

/** The values of a two-step authentication: the first factor (`fed` for a provider), what the second proved, and `mfa`. */
function withSecondFactor(first: FirstFactor, proved: readonly Amr[]): Amr[] {
  return [...new Set<Amr>([first, ...proved, 'mfa'])];
}

function principalOf(claims: AccessClaims): Principal {
  return { userId: claims.sub, sessionId: claims.sid, username: claims.preferred_username ?? null, claims };
}
