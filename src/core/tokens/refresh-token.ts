import { createHmac, createSecretKey, timingSafeEqual, type KeyObject } from 'node:crypto';

/** What a refresh token names: a session, its home region, and the rotation counter. */
export interface RefreshTokenClaims {
  region: string;
  sessionId: string;
  counter: number;
}

// The format `rt_<region>_<sessionId>_<counter>_<mac>` is known here only: the codec below and
// homeRegionOf share these parts.
const REGION = '[a-z][a-z0-9-]{0,31}';
const TOKEN_RE = new RegExp(`^rt_(${REGION})_([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})_(0|[1-9]\\d{0,14})_[A-Za-z0-9_-]{22}$`);
const HOME_RE = new RegExp(`^rt_(${REGION})_`);
const MAC_BYTES = 16; // 128 bits: a guess succeeds with probability 2^-128.

/**
 * Refresh-token codec: `rt_<region>_<sessionId>_<counter>_<mac>`, where
 * `mac = HMAC-SHA256(K, "rt1|region|sessionId|counter")` truncated to 128 bits and K is derived
 * from the server secret. The token for any counter can be recomputed, so rotation is
 * deterministic (concurrent winners and grace retries get the same token, and regions never fork
 * a chain) and the database stores no token, hash or key material at all. The MAC is checked
 * before any I/O, so forged tokens cost no database work.
 */
export class RefreshTokenCodec {
  // KeyObjects, made once: HMAC with a raw Buffer key re-imports the key on every call (~5× slower).
  private readonly macKeys: KeyObject[];

  /** @param macKeys current key first; older keys are accepted for verification only. */
  constructor(macKeys: Buffer[]) {
    if (macKeys.length === 0) throw new Error('RefreshTokenCodec needs at least one MAC key');
    this.macKeys = macKeys.map((key) => createSecretKey(key));
  }

  encode(claims: RefreshTokenClaims): string {
    return this.format(this.macKeys[0]!, claims);
  }

  /** The claims of an authentic token, or `undefined` for anything malformed or forged. */
  decode(token: unknown): RefreshTokenClaims | undefined {
    if (typeof token !== 'string' || token.length > 160) return undefined;
    const match = TOKEN_RE.exec(token);
    if (!match) return undefined;
    const claims = { region: match[1]!, sessionId: match[2]!, counter: Number(match[3]) };
    // Compare the whole token with its canonical encoding, so each token has exactly one
    // accepted spelling (base64url's spare bits in the last character cannot vary).
    const presented = Buffer.from(token);
    const authentic = this.macKeys.some((key) => {
      const expected = Buffer.from(this.format(key, claims));
      return expected.length === presented.length && timingSafeEqual(expected, presented);
    });
    return authentic ? claims : undefined;
  }

  private format(key: KeyObject, claims: RefreshTokenClaims): string {
    return `rt_${claims.region}_${claims.sessionId}_${claims.counter}_${this.mac(key, claims).toString('base64url')}`;
  }

  private mac(key: KeyObject, { region, sessionId, counter }: RefreshTokenClaims): Buffer {
    return createHmac('sha256', key).update(`rt1|${region}|${sessionId}|${counter}`).digest().subarray(0, MAC_BYTES);
  }
}

/**
 * The home region a refresh token names, read from its prefix alone (no MAC check: for routing a
 * refresh, never for trusting it); `undefined` for anything that is not shaped like one.
 */
export function homeRegionOf(token: unknown): string | undefined {
  return typeof token === 'string' ? HOME_RE.exec(token)?.[1] : undefined;
}
