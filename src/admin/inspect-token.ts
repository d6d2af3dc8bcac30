import { compactVerify, decodeJwt, decodeProtectedHeader, importJWK, type JWK, type JWTPayload, type ProtectedHeaderParameters } from 'jose';
import type { Config } from '../config/schema.js';
import { AppError } from '../platform/errors.js';
import type { SessionRecord } from '../model/session.js';
import type { SigningKeyRecord } from '../model/signing-key.js';
import { isCanonicalJws, KEY_CHOOSING_HEADERS } from '../core/tokens/access-tokens.js';

export interface TokenCheck {
  check: 'format' | 'alg' | 'typ' | 'kid' | 'signature' | 'iss' | 'aud' | 'exp' | 'nbf' | 'iat' | 'claims' | 'session';
  ok: boolean;
  detail: string;
}

export interface TokenInspection {
  valid: boolean;
  /** The first failed check, in words; null when valid. */
  reason: string | null;
  header: ProtectedHeaderParameters;
  claims: JWTPayload;
  expiresAt: string | null;
  issuedAt: string | null;
  checks: TokenCheck[];
}

export interface InspectSources {
  config: Pick<Config, 'tokens'>;
  /** Every signing key of the database, published or not (a retired key explains a failure). */
  keys: SigningKeyRecord[];
  findSession: (id: string) => Promise<SessionRecord | undefined>;
  now: Date;
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

function iso(seconds: unknown): string | null {
  return typeof seconds === 'number' && Number.isFinite(seconds) ? new Date(seconds * 1000).toISOString() : null;
}

function ago(ms: number): string {
  const s = Math.round(Math.abs(ms) / 1000);
  if (s < 120) return `${s} s`;
  if (s < 7200) return `${Math.round(s / 60)} min`;
  if (s < 172_800) return `${Math.round(s / 3600)} h`;
  return `${Math.round(s / 86_400)} days`;
}

/**
 * Decodes an access token and runs every check a server runs (docs/api.md#access-tokens), reporting each one,
 * so an admin learns exactly why a token is refused: a malformed token is `invalid_request`;
 * anything else is a report whose `reason` is the first failed check.
 */
export async function inspectToken(token: string, sources: InspectSources): Promise<TokenInspection> {
  const { tokens } = sources.config;
  let header: ProtectedHeaderParameters;
  let claims: JWTPayload;
  try {
    header = decodeProtectedHeader(token);
    claims = decodeJwt(token);
  } catch {
    throw new AppError('invalid_request', 'this is not a JWT: expected three base64url parts separated by dots (header.claims.signature)');
  }
  const nowSeconds = sources.now.getTime() / 1000;
  const checks: TokenCheck[] = [];
  const add = (check: TokenCheck['check'], ok: boolean, detail: string) => checks.push({ check, ok, detail });

  const canonical = isCanonicalJws(token);
  add(
    'format',
    canonical,
    canonical
      ? 'compact JWS, canonical base64url'
      : 'not the canonical spelling (padding or altered spare bits): servers refuse it, even if the signature checks',
  );
  add(
    'alg',
    header.alg === tokens.alg,
    header.alg === tokens.alg ? `${tokens.alg}` : `the token uses ${String(header.alg)}; this region accepts ${tokens.alg} only`,
  );
  add(
    'typ',
    header.typ === 'at+jwt',
    header.typ === 'at+jwt' ? 'at+jwt' : `typ is ${String(header.typ ?? 'missing')}, not at+jwt: this is not an authctl access token`,
  );
  const chooses = KEY_CHOOSING_HEADERS.filter((name) => name in header);
  if (chooses.length) add('kid', false, `the header names its own key (${chooses.join(', ')}): always refused`);

  const record = typeof header.kid === 'string' ? sources.keys.find((k) => k.kid === header.kid) : undefined;
  if (typeof header.kid !== 'string') add('kid', false, 'the header has no kid');
  else if (!record)
    add(
      'kid',
      false,
      `unknown kid ${header.kid}: no key of this region's database has it (signed by another deployment, or the key was deleted after retiring)`,
    );
  else if (record.retiresAt && record.retiresAt <= sources.now)
    add('kid', false, `key ${record.kid} (region ${record.homeRegion}) was retired at ${record.retiresAt.toISOString()} and is no longer published`);
  else add('kid', true, `key ${record.kid} (region ${record.homeRegion}) is published`);

  if (record) {
    try {
      await compactVerify(token, await importJWK(record.publicJwk as JWK, record.alg), { algorithms: [record.alg] });
      add('signature', true, `valid signature by ${record.kid}`);
    } catch {
      add('signature', false, `bad signature: the token was altered, or signed by a different key that claims kid ${record.kid}`);
    }
  } else {
    add('signature', false, 'not checked: no key to check it with');
  }

  add(
    'iss',
    claims.iss === tokens.issuer,
    claims.iss === tokens.issuer ? tokens.issuer : `wrong issuer ${JSON.stringify(claims.iss ?? null)}; this region issues as ${JSON.stringify(tokens.issuer)}`,
  );
  const audiences = Array.isArray(claims.aud) ? claims.aud : claims.aud === undefined ? [] : [claims.aud];
  const audOk = audiences.includes(tokens.audience);
  add('aud', audOk, audOk ? tokens.audience : `wrong audience ${JSON.stringify(claims.aud ?? null)}; this region expects ${JSON.stringify(tokens.audience)}`);

  const skew = tokens.clockSkew;
  if (typeof claims.exp !== 'number') add('exp', false, 'no exp claim');
  else if (claims.exp + skew <= nowSeconds) add('exp', false, `expired ${ago((nowSeconds - claims.exp) * 1000)} ago, at ${iso(claims.exp)}`);
  else add('exp', true, `expires in ${ago((claims.exp - nowSeconds) * 1000)}, at ${iso(claims.exp)}`);
  if (typeof claims.nbf === 'number' && claims.nbf - skew > nowSeconds) add('nbf', false, `not valid before ${iso(claims.nbf)}`);
  if (typeof claims.iat !== 'number') add('iat', false, 'no iat claim');
  else if (claims.iat - skew > nowSeconds) add('iat', false, `issued in the future (${iso(claims.iat)}): check the clocks`);
  else add('iat', true, `issued ${ago((nowSeconds - claims.iat) * 1000)} ago, at ${iso(claims.iat)}`);

  const missing = ['sub', 'jti', 'sid', 'region', 'preferred_username'].filter((name) => typeof claims[name] !== 'string');
  add('claims', missing.length === 0, missing.length ? `missing claims: ${missing.join(', ')}` : 'sub, jti, sid, region, preferred_username present');

  if (typeof claims.sid === 'string') {
    const session = UUID.test(claims.sid) ? await sources.findSession(claims.sid.toLowerCase()) : undefined;
    if (!session) add('session', false, `session ${claims.sid} is unknown to this region's database`);
    else if (session.revokedAt)
      add('session', false, `session ${session.id} was revoked at ${session.revokedAt.toISOString()} (${session.revokeReason ?? 'no reason recorded'})`);
    else if (session.expiresAt <= sources.now) add('session', false, `session ${session.id} expired at ${session.expiresAt.toISOString()}`);
    else add('session', true, `session ${session.id} is live`);
  }

  const failed = checks.find((c) => !c.ok);
  return {
    valid: failed === undefined,
    reason: failed ? `${failed.check}: ${failed.detail}` : null,
    header,
    claims,
    expiresAt: iso(claims.exp),
    issuedAt: iso(claims.iat),
    checks,
  };
}
