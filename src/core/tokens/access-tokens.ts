import { randomUUID, sign } from 'node:crypto';
import { decodeProtectedHeader, errors as joseErrors, jwtVerify, type JWTPayload } from 'jose';
import { AppError } from '../../platform/errors.js';
import type { Clock } from '../../platform/clock.js';
import type { KeyRing, SigningAlg } from '../keys/key-ring.js';
import type { RevocationList } from '../sessions/revocation-list.js';

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
  preferred_username: string;
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

// Header members that would let a token choose its own key: always refused (RFC 8725 §3.1).
export const KEY_CHOOSING_HEADERS = ['jwk', 'jku', 'x5u', 'x5c', 'x5t', 'x5t#S256'] as const;
const MAX_TOKEN_LENGTH = 4096;
const KID = Symbol('kid');

function invalid(detail: string, cause?: unknown): AppError {
  return new AppError('invalid_token', detail, cause === undefined ? {} : { cause });
}

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
  private readonly verified = new Map<string, AccessClaims>();
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
   * ECDSA P-256 with the raw r||s signature JWS requires (RFC 7518 §3.4). jose verifies these
   * tokens (here and in tests); signing directly saves WebCrypto's async job per token.
   */
  issue(subject: { userId: string; username: string; sessionId: string }): string {
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
      preferred_username: subject.username,
    };
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
   * is not revoked. Every failure is `invalid_token`; the detail says which check failed.
   */
  async verify(token: string): Promise<AccessClaims> {
    if (token.length > MAX_TOKEN_LENGTH) throw invalid('the access token is too long');
    if (!this.opts.ring.ready || !this.opts.revocations.ready) {
      // Fail closed: without keys and the revocation list we cannot tell a revoked token apart.
      throw new AppError('unavailable', 'token verification is not ready yet', { retryAfter: 2 });
    }
    const known = this.verifyKnown(token);
    if (known) return known;
    const claims = await this.verifyFully(token);
    this.checkStillValid(claims, token);
    this.verified.set(token, claims);
    if (this.verified.size > AccessTokens.VERIFIED_MAX) this.verified.delete(this.verified.keys().next().value!);
    return claims;
  }

  /**
   * The synchronous fast path of {@link verify}: the claims of a token this server has fully
   * verified before and that has not expired since, after the checks that can change while a token
   * lives; `undefined` when the token needs the full verification. Throws `invalid_token` like verify.
   */
  verifyKnown(token: string): AccessClaims | undefined {
    const known = this.verified.get(token);
    if (!known || !this.opts.ring.ready || !this.opts.revocations.ready) return undefined;
    this.verified.delete(token);
    if (known.exp + this.opts.skewSeconds <= this.opts.clock.now().getTime() / 1000) return undefined;
    this.checkStillValid(known, token);
    this.verified.set(token, known);
    return known;
  }

  /** What may change while a token lives: its key's publication and its session's revocation. */
  private checkStillValid(claims: AccessClaims, token: string): void {
    if (this.opts.revocations.has(claims.sid)) throw invalid('the session of this access token has been revoked');
    const kid = (claims as AccessClaims & { [KID]?: string })[KID];
    if (kid !== undefined && !this.opts.ring.publicKey(kid)) {
      this.verified.delete(token);
      throw invalid('the access token was signed by a key that is no longer published');
    }
  }

  private async verifyFully(token: string): Promise<AccessClaims> {
    if (!isCanonicalJws(token)) throw invalid('the access token is malformed');
    let header: ReturnType<typeof decodeProtectedHeader>;
    try {
      header = decodeProtectedHeader(token);
    } catch (err) {
      throw invalid('the access token is malformed', err);
    }
    if (header.alg !== this.opts.alg) throw invalid('the access token uses an algorithm this server does not accept');
    if (header.typ !== 'at+jwt') throw invalid('the token is not an access token');
    if (KEY_CHOOSING_HEADERS.some((name) => name in header)) throw invalid('the access token names its own key');
    if (typeof header.kid !== 'string') throw invalid('the access token has no key id');
    let published = this.opts.ring.publicKey(header.kid);
    if (!published && (await this.opts.ring.reloadForUnknownKid())) published = this.opts.ring.publicKey(header.kid);
    if (!published || published.alg !== header.alg) throw invalid('the access token was signed by an unknown key');

    let payload: JWTPayload;
    const now = this.opts.clock.now();
    try {
      ({ payload } = await jwtVerify(token, published.key, {
        algorithms: [this.opts.alg],
        issuer: this.opts.issuer,
        audience: this.opts.audience,
        typ: 'at+jwt',
        clockTolerance: this.opts.skewSeconds,
        currentDate: now,
        requiredClaims: ['exp', 'iat', 'sub', 'jti'],
      }));
    } catch (err) {
      if (err instanceof joseErrors.JWTExpired) throw invalid('the access token has expired', err);
      throw invalid('the access token is not valid', err);
    }
    const claims = payload as Partial<AccessClaims>;
    if (typeof claims.sid !== 'string' || typeof claims.region !== 'string' || typeof claims.preferred_username !== 'string') {
      throw invalid('the access token lacks required claims');
    }
    if (claims.iat! > now.getTime() / 1000 + this.opts.skewSeconds) throw invalid('the access token was issued in the future');
    // Remember which key verified it (not enumerable: never part of the claims anyone sees).
    Object.defineProperty(claims, KID, { value: header.kid, enumerable: false });
    return claims as AccessClaims;
  }
}

// RFC 7515 §7.1: a compact JWS is exactly three unpadded base64url segments.
const COMPACT_JWS = /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$/;

/**
 * Only the canonical spelling of a JWS is accepted. Decoders (jose's included) tolerate padding
 * and ignore the spare bits of a segment's last character, so one token has many spellings;
 * anything keyed by the token text (the verified-token cache, logs, deny lists) must not be
 * fooled by that.
 */
export function isCanonicalJws(token: string): boolean {
  return COMPACT_JWS.test(token) && token.split('.').every((part) => Buffer.from(part, 'base64url').toString('base64url') === part);
}
