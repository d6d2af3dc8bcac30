import type { Logger } from '../platform/logger.js';
import type { RevokeReason } from '../model/session.js';
import type { Metrics } from '../platform/metrics.js';
import type { SecondFactorType } from '../model/mfa.js';
import type { PasskeyCeremony } from './passkeys/challenges.js';

/** The part of the usage recorder telemetry needs (hourly counters in PostgreSQL for `authctl stats`). */
export interface UsageSink {
  record(metric: 'logins' | 'login_failures' | 'registrations' | 'refreshes' | 'reuse_detections' | 'revocations', n?: number): void;
}

/** What a login's first step was: a password, an e-mailed code, or an OpenID Connect provider. */
export type LoginMethod = 'pwd' | 'otp' | 'oidc' | 'passkey';

export type LoginFailure = 'unknown_user' | 'mismatch' | 'disabled' | 'email_not_verified';

/**
 * One place where a domain event becomes a log line, a metric and a usage count, so the three
 * never disagree. Services call these methods; they never format log lines for these events.
 * Secrets are never passed in: only ids, reasons and counts.
 */
export class Telemetry {
  private readonly cacheLookupCounters = new Map<string, { inc(): void }>();

  constructor(private readonly deps: { log: Logger; metrics: Metrics; usage?: UsageSink }) {}

  registered(userId: string): void {
    this.deps.metrics.registrations.inc({ result: 'success' });
    this.deps.usage?.record('registrations');
    this.deps.log.info('user registered', { event: 'user.registered', userId });
  }

  registrationRefused(code: string): void {
    this.deps.metrics.registrations.inc({ result: code });
  }

  /** `method`: what the first step was (a password, an e-mailed code, a provider — named by `provider`). */
  loginSucceeded(userId: string, sessionId: string, method: LoginMethod, provider?: string): void {
    this.deps.metrics.logins.inc({ result: 'success' });
    this.deps.usage?.record('logins');
    this.deps.log.info('login succeeded', { event: 'login.succeeded', userId, sessionId, method, ...(provider ? { provider } : {}) });
  }

  /**
   * A provider sign-in that failed after authctl sent the browser to the provider, or a native
   * ID token refused: the reason is an error code (`invalid_id_token`, `provider_error`…). Never
   * a code, token, state or nonce.
   */
  oidcFailed(reason: string, provider: string): void {
    this.deps.metrics.oidcFailures.inc({ provider, reason });
    this.deps.log.info('provider sign-in failed', { event: 'oidc.failed', reason, provider });
  }

  /**
   * The client sees the same answer for an unknown user and a wrong password; the log keeps the
   * reason for the operator (a wrong password for a real account is a different signal).
   */
  loginFailed(reason: LoginFailure, userId?: string): void {
    this.deps.metrics.logins.inc({
      result: reason === 'disabled' ? 'account_disabled' : reason === 'email_not_verified' ? 'email_not_verified' : 'invalid_credentials',
    });
    this.deps.usage?.record('login_failures');
    this.deps.log.info('login failed', { event: 'login.failed', reason, ...(userId ? { userId } : {}) });
  }

  tokensIssued(access: number, refresh: number): void {
    if (access) this.deps.metrics.tokensIssued.inc({ type: 'access' }, access);
    if (refresh) this.deps.metrics.tokensIssued.inc({ type: 'refresh' }, refresh);
  }

  refreshed(result: 'rotated' | 'grace', userId: string, sessionId: string): void {
    this.deps.metrics.refreshes.inc({ result });
    this.deps.usage?.record('refreshes');
    this.deps.log.info('token refreshed', { event: 'token.refreshed', result, userId, sessionId });
  }

  refreshInvalid(): void {
    this.deps.metrics.refreshes.inc({ result: 'invalid' });
  }

  reuseDetected(userId: string, sessionId: string): void {
    this.deps.metrics.refreshes.inc({ result: 'reused' });
    this.deps.usage?.record('reuse_detections');
    this.deps.log.warn('refresh token reuse: session revoked', { event: 'token.reused', userId, sessionId });
  }

  sessionsRevoked(reason: RevokeReason, sessions: Array<{ id: string; userId?: string | null }>): void {
    if (sessions.length === 0) return;
    this.deps.metrics.sessionsRevoked.inc({ reason }, sessions.length);
    this.deps.usage?.record('revocations', sessions.length);
    for (const s of sessions) {
      this.deps.log.info('session revoked', { event: 'session.revoked', reason, sessionId: s.id, ...(s.userId ? { userId: s.userId } : {}) });
    }
  }

  cacheLookup(kind: 'session' | 'user', result: 'hit' | 'miss' | 'error'): void {
    // Once per Bearer request: the labelled child is looked up once, not hashed every time.
    const key = `${kind}:${result}`;
    let counter = this.cacheLookupCounters.get(key);
    if (!counter) this.cacheLookupCounters.set(key, (counter = this.deps.metrics.cacheLookups.labels({ kind, result })));
    counter.inc();
    // On the Bearer path for every request: skip building a debug entry nobody will see.
    if (result !== 'error' && this.deps.log.isDebugEnabled()) this.deps.log.debug(`cache ${result}`, { event: `cache.${result}`, kind });
  }

  /** A TOTP factor was confirmed (its first code accepted) and recovery codes issued. */
  mfaEnrolled(userId: string, factorId: string): void {
    this.deps.log.info('second factor enrolled', { event: 'mfa.enrolled', userId, factorId, factor: 'totp' });
  }

  /** Factors removed: by the user (`self`) or by an administrator (`admin`, with who ran it). */
  mfaRemoved(userId: string, factorIds: string[], by: { via: 'self' } | { via: 'admin'; actor: string }): void {
    this.deps.log.info('second factor removed', { event: 'mfa.removed', userId, factorIds, ...by });
  }

  /** A second factor passed; a recovery code also logs that it is spent and how many are left. */
  mfaVerified(userId: string, factor: SecondFactorType, recoveryCodesLeft?: number): void {
    this.deps.metrics.mfaVerifications.inc({ factor, result: 'success' });
    this.deps.log.info('second factor verified', { event: 'mfa.verified', userId, factor });
    if (factor === 'recovery_code') {
      this.deps.log.info('recovery code used', { event: 'mfa.recovery_code_used', userId, left: recoveryCodesLeft ?? 0 });
    }
  }

  /** A wrong, replayed or unusable second factor (the reason is for the operator; the client sees `invalid_code`). */
  mfaFailed(userId: string, factor: SecondFactorType, reason: 'wrong' | 'replayed' | 'no_factor'): void {
    this.deps.metrics.mfaVerifications.inc({ factor, result: 'failure' });
    this.deps.log.info('second factor failed', { event: 'mfa.failed', userId, factor, reason });
  }

  // ---- accounts and their provider identities (src/core/oidc/identity-accounts.ts)

  /** A first sign-in through a provider created the user (`user.registered` with `method: "oidc"`). */
  registeredWithProvider(userId: string, provider: string): void {
    this.deps.metrics.registrations.inc({ result: 'success' });
    this.deps.usage?.record('registrations');
    this.deps.log.info('user registered', { event: 'user.registered', method: 'oidc', provider, userId });
  }

  /** A provider identity was linked: by a first sign-in whose verified address an account held (`verified-email`), or by its user (`self`). */
  identityLinked(userId: string, identityId: string, provider: string, how: 'verified-email' | 'self'): void {
    this.deps.log.info('provider identity linked', { event: 'identity.linked', userId, identityId, provider, how });
  }

  /** Provider identities removed: by the user (`self`) or by an administrator (`admin`, with who ran it). */
  identityUnlinked(userId: string, identityIds: string[], provider: string, by: { via: 'self' } | { via: 'admin'; actor: string }): void {
    this.deps.log.info('provider identity unlinked', { event: 'identity.unlinked', userId, identityIds, provider, ...by });
  }

  // ---- passkeys (src/core/passkeys/passkeys.ts): ids only, never a challenge, response, public key or credential id

  /** A passkey was registered; `synced`: backup-eligible (a passkey provider copies it between devices). */
  passkeyRegistered(userId: string, passkeyId: string, synced: boolean): void {
    this.deps.metrics.passkeyCeremonies.inc({ ceremony: 'register', result: 'success' });
    this.deps.log.info('passkey registered', { event: 'passkey.registered', userId, passkeyId, synced });
  }

  /** A passkey was removed: by its user (`self`) or by an administrator (`admin`, with who ran it). */
  passkeyRemoved(userId: string, passkeyId: string, by: { via: 'self' } | { via: 'admin'; actor: string }): void {
    this.deps.log.info('passkey removed', { event: 'passkey.removed', userId, passkeyId, ...by });
  }

  /** A passkey answered a sign-in (`login`), a second step (`mfa`) or a step-up (`reauthenticate`). */
  passkeyUsed(userId: string, passkeyId: string, ceremony: Exclude<PasskeyCeremony, 'register'>, userVerified: boolean): void {
    this.deps.metrics.passkeyCeremonies.inc({ ceremony, result: 'success' });
    this.deps.log.info('passkey used', { event: 'passkey.used', userId, passkeyId, ceremony, userVerified });
  }

  /** A ceremony refused: `reason` says which check (an error code or a check's name), never what the response held. */
  passkeyFailed(ceremony: PasskeyCeremony, reason: string, userId?: string): void {
    this.deps.metrics.passkeyCeremonies.inc({ ceremony, result: 'failure' });
    this.deps.log.info('passkey ceremony failed', { event: 'passkey.failed', ceremony, reason, ...(userId ? { userId } : {}) });
  }

  /** A valid signature whose counter did not move forwards: the authenticator may have been cloned. */
  passkeyCounterRegressed(userId: string, passkeyId: string, stored: number, received: number): void {
    this.deps.log.warn('passkey signature counter went backwards: possibly a cloned authenticator', {
      event: 'passkey.counter_regressed',
      userId,
      passkeyId,
      stored,
      received,
    });
  }

  passwordHash(op: 'hash' | 'verify', seconds: number): void {
    this.deps.metrics.passwordHashDuration.observe({ op }, seconds);
  }
}
