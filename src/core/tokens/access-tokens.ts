import { randomUUID, sign } from 'node:crypto';
import { AppError } from '../../platform/errors.js';
import type { Clock } from '../../platform/clock.js';
import { acrOf, type Amr, type AuthContext } from '../../model/mfa.js';
import type { SessionRecord } from '../../model/session.js';
import type { KeyRing, SigningAlg } from '../keys/key-ring.js';
import type { RevocationList } from '../sessions/revocation-list.js';
import { explainRules, firstFailure, firstLiveFailure, ParsedToken, TOKEN_ERRORS, tooLong, type TokenExplanation } from './token-rules.js';

/** The claims authctl puts in every access token (docs/api.md#access-tokens). */
export interface AccessClaims {
  iss: string;
  sub: string;
  aud: string;
  exp: number;
  iat: number;
  jti: string;
  sid: string;
  region: string;
  /** Present when the user has a username. */
  preferred_username?: string;
  /** OIDC Core §5.1: present when the user has an address. */
  email?: string;
  email_verified?: boolean;
  /** OIDC Core §2: when the user last authenticated in this session (seconds). */
  auth_time?: number;
  /** RFC 8176: how (`pwd`, `otp`, `mfa`; `fed` through a provider, src/model/mfa.ts). */
  amr?: Amr[];
  /** `aal1`, or `aal2` after a second factor (NIST SP 800-63B). */
  acr?: 'aal1' | 'aal2';
  /** The provider (`identity.providers` id) the session was signed in through; absent otherwise. */
  idp?: string;
}

/** Whom a token is issued to. */
export interface TokenSubject {
  userId: string;
  username: string | null;
  email: string | null;
  emailVerified: boolean;
  sessionId: string;
  /** How and when the session's user last authenticated (the `auth_time`, `amr`, `acr` and `idp` claims). */
  auth?: AuthContext;
}

export interface AccessTokenOptions {
  ring: KeyRing;
  revocations: RevocationList;
  clock: Clock;
  issuer: string;
  audience: string;
  alg: SigningAlg;
  ttlSeconds: number;
  skewSeconds: number;
  region: string;
}

function invalid(detail: string): AppError {
  return new AppError('invalid_token', detail);
}

/** How explain reads a session's row (servers consult only the revocation list per request). */
export type FindSession = (id: string) => Promise<SessionRecord | undefined>;

/**
 * Signs and verifies access tokens: RFC 9068 `at+jwt`, EdDSA (or ES256) with a kid from the
 * region's key ring. Verification is in-process: keys and the revocation list are in memory.
 */
export class AccessTokens {
  /**
   * Tokens whose signature and claims were verified, by their exact text (a client sends the same
   * token for up to its whole lifetime). A hit still re-checks expiry, the key's publication and
   * revocation — everything that can change — and skips only the work that cannot: parsing and
   * the signature check. Bounded, least recently used first out.
   */
  private readonly verified = new Map<string, ParsedToken>();
  private static readonly VERIFIED_MAX = 10_000;

  constructor(private readonly opts: AccessTokenOptions) {}

  get ttlSeconds(): number {
    return this.opts.ttlSeconds;
  }

  /** Throws `unavailable` when no signing key is loaded (e.g. the database was down at start). */
  assertCanSign(): void {
    this.opts.ring.signingKey();
  }

  /**
   * A compact JWS (RFC 7515) over the claims of docs/api.md#access-tokens, signed with node:crypto: Ed25519, or
   * ECDSA P-256 with the raw r||s signature JWS requires (RFC 7518 §3.4), and verified with it
   * too (token-rules.ts; jose checks them in tests): WebCrypto's async job per token is spared.
   */
  issue(subject: TokenSubject): string {
    const { kid, alg, key } = this.opts.ring.signingKey();
    const iat = Math.floor(this.opts.clock.now().getTime() / 1000);
    const claims: AccessClaims = {
      iss: this.opts.issuer,
      sub: subject.userId,
      aud: this.opts.audience,
      exp: iat + this.opts.ttlSeconds,
      iat,
      // 122 random bits; randomUUID draws from a cached block of entropy instead of a call per token.
      jti: randomUUID(),
      sid: subject.sessionId,
      region: this.opts.region,
    };
    if (subject.username !== null) claims.preferred_username = subject.username;
    if (subject.email !== null) {
      claims.email = subject.email;
      claims.email_verified = subject.emailVerified;
    }
    if (subject.auth) {
      claims.auth_time = Math.floor(subject.auth.authTime.getTime() / 1000);
      claims.amr = subject.auth.amr;
      claims.acr = acrOf(subject.auth.amr);
      if (subject.auth.idp) claims.idp = subject.auth.idp;
    }
    const input = `${this.header(kid, alg)}.${Buffer.from(JSON.stringify(claims)).toString('base64url')}`;
    const data = Buffer.from(input);
    const signature = alg === 'EdDSA' ? sign(null, data, key) : sign('sha256', data, { key, dsaEncoding: 'ieee-p1363' });
    return `${input}.${signature.toString('base64url')}`;
  }

  private readonly headers = new Map<string, string>();

  /** The encoded protected header per kid (the same bytes for every token a key signs). */
  private header(kid: string, alg: SigningAlg): string {
    let header = this.headers.get(kid);
    if (header === undefined) {
      header = Buffer.from(JSON.stringify({ alg, kid, typ: 'at+jwt' })).toString('base64url');
      this.headers.set(kid, header);
    }
    return header;
  }

  /**
   * Verifies signature, alg, typ, iss, aud, exp/nbf/iat (with bounded skew) and that the session
   * is not revoked: the rules of token-rules.ts, in order, up to the first that fails. Every
   * failure is `invalid_token`; the detail says which check failed.
   */
  async verify(token: string): Promise<AccessClaims> {
    if (tooLong(token)) throw invalid(TOKEN_ERRORS.tooLong);
    if (!this.opts.ring.ready || !this.opts.revocations.ready) {
      // Fail closed: without keys and the revocation list we cannot tell a revoked token apart.
      throw new AppError('unavailable', 'token verification is not ready yet', { retryAfter: 2 });
    }
    const known = this.verifyKnown(token);
    if (known) return known;
    const parsed = new ParsedToken(token);
    let failure = firstFailure(parsed, this.opts, this.opts.clock.now().getTime());
    // Another server may have rotated: look for the kid once more (the ring limits how often).
    if (failure === TOKEN_ERRORS.unknownKey && (await this.opts.ring.reloadForUnknownKid())) {
      failure = firstFailure(parsed, this.opts, this.opts.clock.now().getTime());
    }
    if (failure !== undefined) throw invalid(failure);
    parsed.verified = true;
    this.verified.set(token, parsed);
    if (this.verified.size > AccessTokens.VERIFIED_MAX) this.verified.delete(this.verified.keys().next().value!);
    return parsed.claims as unknown as AccessClaims;
  }

  /**
   * The synchronous fast path of {@link verify}: the claims of a token this server has fully
   * verified before, after the rules that can change while a token lives (its key's publication,
   * its expiry, its session's revocation); `undefined` when the token needs the full verification.
   * Throws `invalid_token` like verify.
   */
  verifyKnown(token: string): AccessClaims | undefined {
    const known = this.verified.get(token);
    if (!known || !this.opts.ring.ready || !this.opts.revocations.ready) return undefined;
    this.verified.delete(token);
    const failure = firstLiveFailure(known, this.opts, this.opts.clock.now().getTime());
    if (failure !== undefined) throw invalid(failure);
    this.verified.set(token, known);
    return known.claims as unknown as AccessClaims;
  }

  /**
   * Runs every rule verify runs and reports each check, for an admin asking why a token is
   * refused. With `findSession` the session's row is read too, so a session that has ended or is
   * gone shows (the servers read only the revocation list). Needs the key ring loaded.
   */
  async explain(token: string, findSession?: FindSession): Promise<TokenExplanation> {
    if (!this.opts.ring.ready) throw new AppError('unavailable', 'the signing keys are not loaded');
    const parsed = new ParsedToken(token);
    const sid = parsed.claims?.sid;
    if (findSession && typeof sid === 'string') parsed.session = (await findSession(sid)) ?? null;
    return explainRules(parsed, this.opts, this.opts.clock.now().getTime());
  }
}
