import { acrOf, type Amr } from '../../model/mfa.js';
import { isAppError } from '../../platform/errors.js';
import type { AuthService, Principal } from '../auth/auth-service.js';
import type { SessionService } from '../sessions/session-service.js';
import { homeRegionOf } from './refresh-token.js';

/** The two kinds of token authctl issues, as RFC 7662 and RFC 7009 name them (`token_type_hint`). */
export type TokenKind = 'access_token' | 'refresh_token';
export const TOKEN_KINDS: readonly TokenKind[] = ['access_token', 'refresh_token'];

/** What RFC 7662 §2.2 answers for a token that is active (the members authctl knows). */
export interface ActiveToken {
  active: true;
  /** Ory Hydra's name for which of the two kinds the token is. */
  token_use: TokenKind;
  /** RFC 6749 §7.1 token type; only access tokens are used as Bearer credentials. */
  token_type?: 'Bearer';
  sub: string;
  sid: string;
  iss: string;
  /** Access tokens only: a refresh token is for this server alone. */
  aud?: string;
  exp: number;
  iat: number;
  jti?: string;
  /** The region that issued the access token; the session's home region for a refresh token. */
  region: string;
  username?: string;
  email?: string;
  email_verified?: boolean;
  /** How and when the session's user last authenticated: the access token's claims; a refresh token's session's. */
  auth_time?: number;
  amr?: Amr[];
  acr?: 'aal1' | 'aal2';
  /** The provider the session was signed in through. */
  idp?: string;
}

/** RFC 7662 §2.2: a token that is not active gets this and nothing else (no reason is told). */
export interface InactiveToken {
  active: false;
}

export type Introspection = ActiveToken | InactiveToken;

export interface IntrospectionOptions {
  auth: Pick<AuthService, 'authenticate' | 'authenticateKnown'>;
  sessions: Pick<SessionService, 'peek' | 'sessionIdOf' | 'revoke'>;
  issuer: string;
}

const INACTIVE: InactiveToken = Object.freeze({ active: false });

/**
 * Whether a token looks like a refresh token (`rt_<region>_…`). The two formats cannot be
 * confused, so the kind is told from the token itself and `token_type_hint` is only a hint
 * (RFC 7662 §2.1, RFC 7009 §2.1): a wrong hint changes nothing.
 */
export function isRefreshShaped(token: string): boolean {
  return homeRegionOf(token) !== undefined;
}

/**
 * Token introspection (RFC 7662) and revocation (RFC 7009) over the checks every other route
 * makes. An access token is judged exactly as a Bearer header is (AuthService.authenticate: the
 * in-process signature check and revocation list, no database read); a refresh token by its MAC
 * first (a forged one costs no I/O), then its session's row, without rotating or spending it.
 */
export class TokenIntrospection {
  constructor(private readonly opts: IntrospectionOptions) {}

  /** Introspects a token; anything refused is `{active: false}`. Throws only `unavailable` (503). */
  async introspect(token: string): Promise<Introspection> {
    if (isRefreshShaped(token)) return this.introspectRefresh(token);
    const principal = await this.principal(token);
    return principal ? this.activeAccess(principal) : INACTIVE;
  }

  /**
   * Revokes the session of a token, through the one revocation path (this server at once, the
   * region by pub/sub, the peers by replication). A refresh token needs an authentic MAC, an
   * access token the whole Bearer check: a forged, expired or garbled token revokes nothing.
   * Who may revoke which kind is the caller's decision. Returns whether a live session was
   * revoked; an invalid token is not an error (RFC 7009 §2.2).
   */
  async revoke(token: string): Promise<boolean> {
    if (isRefreshShaped(token)) {
      const sessionId = this.opts.sessions.sessionIdOf(token);
      return sessionId !== undefined && (await this.opts.sessions.revoke(sessionId, 'logout'));
    }
    const principal = await this.principal(token);
    return principal !== undefined && (await this.opts.sessions.revoke(principal.sessionId, 'logout', principal.userId));
  }

  /** The Principal of a valid access token, by the Bearer check; undefined for any refusal. */
  private async principal(token: string): Promise<Principal | undefined> {
    try {
      return this.opts.auth.authenticateKnown(token) ?? (await this.opts.auth.authenticate(token));
    } catch (err) {
      if (isAppError(err, 'invalid_token')) return undefined;
      throw err;
    }
  }

  private activeAccess({ claims }: Principal): ActiveToken {
    const active: ActiveToken = {
      active: true,
      token_use: 'access_token',
      token_type: 'Bearer',
      sub: claims.sub,
      sid: claims.sid,
      iss: claims.iss,
      aud: claims.aud,
      exp: claims.exp,
      iat: claims.iat,
      jti: claims.jti,
      region: claims.region,
    };
    if (claims.preferred_username !== undefined) active.username = claims.preferred_username;
    if (claims.email !== undefined) active.email = claims.email;
    if (claims.email_verified !== undefined) active.email_verified = claims.email_verified;
    if (claims.auth_time !== undefined) active.auth_time = claims.auth_time;
    if (claims.amr !== undefined) active.amr = claims.amr;
    if (claims.acr !== undefined) active.acr = claims.acr;
    if (claims.idp !== undefined) active.idp = claims.idp;
    return active;
  }

  private async introspectRefresh(token: string): Promise<Introspection> {
    const live = await this.opts.sessions.peek(token);
    if (!live) return INACTIVE;
    const { session, owner } = live;
    const active: ActiveToken = {
      active: true,
      token_use: 'refresh_token',
      sub: owner.id,
      sid: session.id,
      iss: this.opts.issuer,
      exp: Math.floor(session.expiresAt.getTime() / 1000),
      // The current token was issued by the last rotation (or the login).
      iat: Math.floor(session.rotatedAt.getTime() / 1000),
      region: session.homeRegion,
    };
    if (owner.username !== null) active.username = owner.username;
    if (owner.email !== null) {
      active.email = owner.email;
      active.email_verified = owner.emailVerifiedAt !== null;
    }
    // What the next refresh's access token will say: the session's authentication.
    active.auth_time = Math.floor(session.authTime.getTime() / 1000);
    active.amr = session.amr;
    active.acr = acrOf(session.amr);
    if (session.idp !== null) active.idp = session.idp;
    return active;
  }
}
