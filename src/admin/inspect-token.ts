import { decodeJwt, decodeProtectedHeader, type JWTPayload, type ProtectedHeaderParameters } from 'jose';
import { validate as isUuid } from 'uuid';
import { AppError } from '../platform/errors.js';
import type { KeyInfo, KeyRing } from '../core/keys/key-ring.js';
import type { SessionService } from '../core/sessions/session-service.js';
import type { AccessTokens } from '../core/tokens/access-tokens.js';
import { isoSeconds, TOKEN_ERRORS, type TokenCheck as RuleCheck } from '../core/tokens/token-rules.js';

export type TokenCheck = Pick<RuleCheck, 'check' | 'ok' | 'detail'>;

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

export interface InspectTokenDeps {
  tokens: Pick<AccessTokens, 'explain'>;
  /** Every signing key of the database, published or retired (a retired key explains a failure). */
  keys: Pick<KeyRing, 'load' | 'list'>;
  sessions: Pick<SessionService, 'findById'>;
}

/**
 * `authctl token inspect`: the header and claims decoded for display, and every check a server
 * runs ({@link AccessTokens.explain}), with the key's state spelled out from the key list. A token
 * that is not a JWT at all is `invalid_request`; anything else is a report whose `reason` is the
 * check a server stops at.
 */
export async function inspectToken(token: string, deps: InspectTokenDeps): Promise<TokenInspection> {
  let header: ProtectedHeaderParameters;
  let claims: JWTPayload;
  try {
    header = decodeProtectedHeader(token);
    claims = decodeJwt(token);
  } catch {
    throw new AppError('invalid_request', 'this is not a JWT: expected three base64url parts separated by dots (header.claims.signature)');
  }
  await deps.keys.load();
  const { checks, failed } = await deps.tokens.explain(token, (id) => (isUuid(id) ? deps.sessions.findById(id.toLowerCase()) : Promise.resolve(undefined)));
  const keys = deps.keys.list();
  const shown = checks.map((c): TokenCheck => ({ check: c.check, ok: c.ok, detail: keyDecided(c) ? keyState(c, header.kid, keys) : c.detail }));
  const reason = failed ? shown.find((c) => c.check === failed.check)! : undefined;
  return {
    valid: failed === null,
    reason: reason ? `${reason.check}: ${reason.detail}` : null,
    header,
    claims,
    expiresAt: isoSeconds(claims.exp),
    issuedAt: isoSeconds(claims.iat),
    checks: shown,
  };
}

/** The kid check passed, or failed because no published key has the kid. */
function keyDecided(c: RuleCheck): boolean {
  return c.check === 'kid' && (c.ok || c.error === TOKEN_ERRORS.unknownKey);
}

function keyState(c: RuleCheck, kid: unknown, keys: KeyInfo[]): string {
  const key = keys.find((k) => k.kid === kid);
  if (!key) return `unknown kid ${String(kid)}: no key of this region's database has it (signed by another deployment, or the key was deleted after retiring)`;
  if (key.state === 'retired') return `key ${key.kid} (region ${key.region}) was retired at ${key.retiresAt!.toISOString()} and is no longer published`;
  return c.ok ? `key ${key.kid} (region ${key.region}) is published` : c.detail;
}
