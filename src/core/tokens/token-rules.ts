import { verify as verifySignature } from 'node:crypto';
import { decodeJwt, decodeProtectedHeader } from 'jose';
import type { SessionRecord } from '../../model/session.js';
import type { KeyRing, PublicKey } from '../keys/key-ring.js';
import type { RevocationList } from '../sessions/revocation-list.js';

/**
 * The rules an access token must pass (API.md §1.3), defined once: `AccessTokens.verify` stops at
 * the first that fails and throws its error; `AccessTokens.explain` runs them all and reports
 * each. A rule reads a token decoded once ({@link ParsedToken}) and returns undefined when the
 * token passes, or the detail of the `invalid_token` error that refuses it: a constant, so the
 * rules a remembered token re-runs on every Bearer request allocate nothing. The words explain
 * reports are made by a rule's `describe`, which only explain calls.
 */

// Header members that would let a token choose its own key: always refused (RFC 8725 §3.1).
const KEY_CHOOSING_HEADERS = ['jwk', 'jku', 'x5u', 'x5c', 'x5t', 'x5t#S256'] as const;
const MAX_TOKEN_LENGTH = 4096;

/** The detail of each `invalid_token` error a rule refuses a token with. */
export const TOKEN_ERRORS = {
  tooLong: 'the access token is too long',
  malformed: 'the access token is malformed',
  alg: 'the access token uses an algorithm this server does not accept',
  typ: 'the token is not an access token',
  ownKey: 'the access token names its own key',
  noKid: 'the access token has no key id',
  unknownKey: 'the access token was signed by an unknown key',
  unpublishedKey: 'the access token was signed by a key that is no longer published',
  notValid: 'the access token is not valid',
  expired: 'the access token has expired',
  lacksClaims: 'the access token lacks required claims',
  future: 'the access token was issued in the future',
  revoked: 'the session of this access token has been revoked',
  // Only from a session row, which the servers do not read per request (explain reads it).
  sessionEnded: 'the session of this access token has ended',
} as const;

/** What the rules need besides the token. */
export interface RuleContext {
  ring: Pick<KeyRing, 'publicKey' | 'anyPublicKey'>;
  revocations: Pick<RevocationList, 'has'>;
  issuer: string;
  audience: string;
  alg: string;
  skewSeconds: number;
}

/** The names `token inspect` reports checks under; a check may take several rules. */
export type CheckName = 'format' | 'alg' | 'typ' | 'kid' | 'signature' | 'iss' | 'aud' | 'exp' | 'nbf' | 'iat' | 'claims' | 'session';

type Json = Record<string, unknown>;

/** A token decoded once, for the rules to read. A verified one is remembered as it is. */
export class ParsedToken {
  /** Set once the token has passed every rule; it is then remembered, and the live rules run again on each use. */
  verified = false;
  /** Its session's row, when the caller looked it up (explain): null for no such session. */
  session: SessionRecord | null | undefined = undefined;
  readonly canonical: boolean;
  /** Undefined when the part is not base64url-encoded JSON of an object. */
  readonly header: Json | undefined;
  readonly claims: Json | undefined;
  readonly kid: string | undefined;

  constructor(readonly text: string) {
    this.canonical = isCanonicalJws(text);
    this.header = decoded(decodeProtectedHeader, text);
    this.claims = decoded(decodeJwt, text);
    this.kid = typeof this.header?.kid === 'string' ? this.header.kid : undefined;
  }
}

function decoded(decode: (token: string) => object, text: string): Json | undefined {
  try {
    return decode(text) as Json;
  } catch {
    return undefined;
  }
}

export function tooLong(token: string): boolean {
  return token.length > MAX_TOKEN_LENGTH;
}

// RFC 7515 §7.1: a compact JWS is exactly three unpadded base64url segments.
const COMPACT_JWS = /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$/;

/**
 * Only the canonical spelling of a JWS is accepted. Decoders (jose's included) tolerate padding
 * and ignore the spare bits of a segment's last character, so one token has many spellings;
 * anything keyed by the token text (the verified-token cache, logs, deny lists) must not be
 * fooled by that.
 */
function isCanonicalJws(token: string): boolean {
  return COMPACT_JWS.test(token) && token.split('.').every((part) => Buffer.from(part, 'base64url').toString('base64url') === part);
}

const epoch = (nowMs: number): number => Math.floor(nowMs / 1000);

/** A NumericDate as ISO 8601, or null when it is not a finite number. */
export function isoSeconds(seconds: unknown): string | null {
  return typeof seconds === 'number' && Number.isFinite(seconds) ? new Date(seconds * 1000).toISOString() : null;
}

/** A header or claim value in a sentence: strings as they are, anything else as JSON. */
function shown(value: unknown): string {
  return typeof value === 'string' ? value : (JSON.stringify(value) ?? 'undefined');
}

function ago(seconds: number): string {
  const s = Math.round(Math.abs(seconds));
  if (s < 120) return `${s} s`;
  if (s < 7200) return `${Math.round(s / 60)} min`;
  if (s < 172_800) return `${Math.round(s / 3600)} h`;
  return `${Math.round(s / 86_400)} days`;
}

/** The key-choosing members a header has (a loop: no closure, no array unless there is one). */
function ownKeyMembers(header: Json | undefined): string[] | undefined {
  let found: string[] | undefined;
  if (header !== undefined) for (const name of KEY_CHOOSING_HEADERS) if (name in header) (found ??= []).push(name);
  return found;
}

/**
 * RFC 7515 §4.1.11: a `crit` extension the verifier does not implement refuses the token. The one
 * extension JOSE defines for JWS, `b64` (RFC 7797), is allowed only as its default, true: a JWT
 * never has an unencoded payload (RFC 7797 §7).
 */
function understoodCrit(header: Json | undefined): boolean {
  const crit = header?.crit;
  if (crit === undefined) return true;
  return Array.isArray(crit) && crit.length > 0 && crit.every((name) => name === 'b64') && header!.b64 === true;
}

function signedBy(text: string, key: PublicKey): boolean {
  const dot = text.lastIndexOf('.');
  const input = Buffer.from(text.slice(0, dot), 'latin1');
  const signature = Buffer.from(text.slice(dot + 1), 'base64url');
  try {
    if (key.alg === 'EdDSA') return verifySignature(null, input, key.key, signature);
    // JWS carries ECDSA signatures as raw r||s (RFC 7518 §3.4).
    if (key.alg === 'ES256') return verifySignature('sha256', input, { key: key.key, dsaEncoding: 'ieee-p1363' }, signature);
    return false;
  } catch {
    return false;
  }
}

/**
 * RFC 9068 §2.1: `typ` is `at+jwt`, which RFC 7515 §4.1.9 lets a producer spell as the full media
 * type (`application/at+jwt`), compared case-insensitively — as jose compares it.
 */
function isAccessTokenTyp(typ: unknown): boolean {
  if (typeof typ !== 'string') return false;
  const lower = typ.toLowerCase();
  return lower === 'at+jwt' || lower === 'application/at+jwt';
}

/** One rule: the check it belongs to, its test, and explain's words for the outcome. */
export interface Rule {
  readonly check: CheckName;
  /** Can change while a token lives (time, key publication, revocation): re-run on every use of a remembered token. */
  readonly live: boolean;
  readonly test: (t: ParsedToken, c: RuleContext, nowMs: number) => string | undefined;
  /** What explain says: about the failure `failure`, or about a pass when undefined. */
  readonly describe: (t: ParsedToken, c: RuleContext, nowMs: number, failure: string | undefined) => string;
}

const E = TOKEN_ERRORS;
/** The claims authctl adds to the registered ones (API.md §1.3). */
const AUTHCTL_CLAIMS = ['sid', 'region'] as const;
/** Identity claims, each present when the user has it (a user has a username, an address, or both). */
const IDENTITY_CLAIMS = ['preferred_username', 'email'] as const;

function identityClaimsOk(claims: Record<string, unknown>): boolean {
  const present = IDENTITY_CLAIMS.filter((n) => claims[n] !== undefined);
  return (
    present.length > 0 &&
    present.every((n) => typeof claims[n] === 'string') &&
    (claims.email === undefined ? claims.email_verified === undefined : typeof claims.email_verified === 'boolean')
  );
}

/** A required NumericDate claim (RFC 7519 §2): present, and a number. */
function numericDate(name: 'exp' | 'iat'): Rule {
  return {
    check: name,
    live: false,
    test: (t) => (typeof t.claims?.[name] === 'number' ? undefined : E.notValid),
    describe: (t) => (t.claims?.[name] === undefined ? `no ${name} claim` : `${name} is ${JSON.stringify(t.claims[name])}, not a number`),
  };
}

/**
 * The rules, in the order verify runs them: the header's before the signature (no key is looked
 * up for a token that names its own, no signature checked with a key the token may not use), the
 * signature before any claim is believed, and the claims in the order that decides which error a
 * token with several faults gets — part of the API, kept as it was: every "not valid" first, then
 * "expired", the claims authctl adds, the issue time, the session. A check may take several
 * rules (exp: a number, then not past), reported by explain as one.
 */
export const RULES: readonly Rule[] = [
  {
    check: 'format',
    live: false,
    test: (t) => (tooLong(t.text) ? E.tooLong : !t.canonical || t.header === undefined ? E.malformed : undefined),
    describe: (t, _c, _now, failure) =>
      failure === E.tooLong
        ? `${t.text.length} characters: servers refuse access tokens over ${MAX_TOKEN_LENGTH}`
        : failure === undefined
          ? 'compact JWS, canonical base64url'
          : !t.canonical
            ? 'not the canonical spelling (padding or altered spare bits): servers refuse it, even if the signature checks'
            : 'the header is not base64url-encoded JSON',
  },
  {
    check: 'alg',
    live: false,
    test: (t, c) => (t.header?.alg === c.alg ? undefined : E.alg),
    describe: (t, c, _now, failure) => (failure ? `the token uses ${shown(t.header?.alg)}; this region accepts ${c.alg} only` : c.alg),
  },
  {
    check: 'typ',
    live: false,
    test: (t) => (isAccessTokenTyp(t.header?.typ) ? undefined : E.typ),
    describe: (t, _c, _now, failure) => (failure ? `typ is ${shown(t.header?.typ ?? 'missing')}, not at+jwt: this is not an authctl access token` : 'at+jwt'),
  },
  {
    check: 'kid',
    live: false,
    test: (t) => (ownKeyMembers(t.header) !== undefined ? E.ownKey : t.kid === undefined ? E.noKid : undefined),
    describe: (t, _c, _now, failure) =>
      failure === E.ownKey
        ? `the header names its own key (${ownKeyMembers(t.header)!.join(', ')}): always refused`
        : failure
          ? 'the header has no kid'
          : `kid ${t.kid}`,
  },
  {
    check: 'kid',
    live: true,
    test: (t, c, now) => {
      const key = t.kid === undefined ? undefined : c.ring.publicKey(t.kid, now);
      if (key === undefined || key.alg !== c.alg) return t.verified ? E.unpublishedKey : E.unknownKey;
      return undefined;
    },
    describe: (t, c, _now, failure) => (failure ? `no published ${c.alg} key has kid ${String(t.kid)}` : `key ${t.kid} is published`),
  },
  {
    check: 'signature',
    live: false,
    test: (t, c) => {
      if (!understoodCrit(t.header)) return E.notValid;
      const key = t.kid === undefined ? undefined : c.ring.anyPublicKey(t.kid);
      return key !== undefined && signedBy(t.text, key) ? undefined : E.notValid;
    },
    describe: (t, c, _now, failure) => {
      if (!failure) return `valid signature by ${t.kid}`;
      if (!understoodCrit(t.header)) return `crit ${JSON.stringify(t.header?.crit)} asks for processing this server does not do: refused`;
      if (t.kid === undefined || !c.ring.anyPublicKey(t.kid)) return 'not checked: no key to check it with';
      return `bad signature: the token was altered, or signed by a different key that claims kid ${t.kid}`;
    },
  },
  {
    check: 'iss',
    live: false,
    test: (t, c) => (t.claims?.iss === c.issuer ? undefined : E.notValid),
    describe: (t, c, _now, failure) =>
      failure ? `wrong issuer ${JSON.stringify(t.claims?.iss ?? null)}; this region issues as ${JSON.stringify(c.issuer)}` : c.issuer,
  },
  {
    check: 'aud',
    live: false,
    test: (t, c) => {
      const aud = t.claims?.aud;
      return (typeof aud === 'string' ? aud === c.audience : Array.isArray(aud) && aud.includes(c.audience)) ? undefined : E.notValid;
    },
    describe: (t, c, _now, failure) =>
      failure ? `wrong audience ${JSON.stringify(t.claims?.aud ?? null)}; this region expects ${JSON.stringify(c.audience)}` : c.audience,
  },
  numericDate('exp'),
  {
    check: 'nbf',
    live: false,
    test: (t, c, now) => {
      const nbf = t.claims?.nbf;
      return nbf === undefined || (typeof nbf === 'number' && nbf <= epoch(now) + c.skewSeconds) ? undefined : E.notValid;
    },
    describe: (t, _c, _now, failure) => {
      const nbf = t.claims?.nbf;
      if (typeof nbf !== 'number') return nbf === undefined ? 'no nbf claim' : `nbf is ${JSON.stringify(nbf)}, not a number`;
      return failure ? `not valid before ${isoSeconds(nbf)}` : `valid since ${isoSeconds(nbf)}`;
    },
  },
  numericDate('iat'),
  {
    check: 'claims',
    live: false,
    test: (t) => (t.claims !== undefined && Object.hasOwn(t.claims, 'sub') && Object.hasOwn(t.claims, 'jti') ? undefined : E.notValid),
    describe: (t) =>
      t.claims === undefined
        ? 'the claims are not base64url-encoded JSON of an object'
        : `missing claims: ${['sub', 'jti'].filter((n) => !Object.hasOwn(t.claims!, n)).join(', ')}`,
  },
  {
    check: 'exp',
    live: true,
    test: (t, c, now) => {
      const exp = t.claims?.exp;
      return typeof exp === 'number' && exp <= epoch(now) - c.skewSeconds ? E.expired : undefined;
    },
    describe: (t, _c, now, failure) => {
      const exp = t.claims?.exp as number;
      return failure ? `expired ${ago(now / 1000 - exp)} ago, at ${isoSeconds(exp)}` : `expires in ${ago(exp - now / 1000)}, at ${isoSeconds(exp)}`;
    },
  },
  {
    check: 'claims',
    live: false,
    test: (t) => {
      const claims = t.claims;
      return claims !== undefined && typeof claims.sid === 'string' && typeof claims.region === 'string' && identityClaimsOk(claims)
        ? undefined
        : E.lacksClaims;
    },
    describe: (t, _c, _now, failure) =>
      failure
        ? `missing claims: ${[
            ...AUTHCTL_CLAIMS.filter((n) => typeof t.claims?.[n] !== 'string'),
            ...(t.claims && identityClaimsOk(t.claims) ? [] : ['preferred_username or email (with email_verified)']),
          ].join(', ')}`
        : `sub, jti, sid, region, ${IDENTITY_CLAIMS.filter((n) => t.claims?.[n] !== undefined).join(', ')} present`,
  },
  {
    check: 'iat',
    live: false,
    test: (t, c, now) => {
      const iat = t.claims?.iat;
      return typeof iat === 'number' && iat > now / 1000 + c.skewSeconds ? E.future : undefined;
    },
    describe: (t, _c, now, failure) => {
      const iat = t.claims?.iat as number;
      return failure ? `issued in the future (${isoSeconds(iat)}): check the clocks` : `issued ${ago(now / 1000 - iat)} ago, at ${isoSeconds(iat)}`;
    },
  },
  {
    check: 'session',
    live: true,
    test: (t, c, now) => {
      const sid = t.claims?.sid;
      if (typeof sid !== 'string') return undefined;
      if (c.revocations.has(sid)) return E.revoked;
      const row = t.session;
      if (row === undefined) return undefined;
      if (row === null) return E.sessionEnded;
      if (row.revokedAt !== null) return E.revoked;
      return row.expiresAt.getTime() <= now ? E.sessionEnded : undefined;
    },
    describe: (t, _c, _now, failure) => {
      const sid = t.claims?.sid;
      const row = t.session;
      if (typeof sid !== 'string') return 'no sid claim: no session to check';
      if (row === null) return `session ${sid} is unknown to this region's database`;
      if (row?.revokedAt) return `session ${row.id} was revoked at ${row.revokedAt.toISOString()} (${row.revokeReason ?? 'no reason recorded'})`;
      if (failure === E.revoked) return `session ${sid} is on the revocation list`;
      if (row === undefined) return `session ${sid} is not on the revocation list`;
      return failure ? `session ${row.id} expired at ${row.expiresAt.toISOString()}` : `session ${row.id} is live`;
    },
  },
];

/** The rules a remembered token passes again on every use: its key's publication, its expiry, its session. */
export const LIVE_RULES: readonly Rule[] = RULES.filter((rule) => rule.live);
// firstLiveFailure calls them one by one: a rule made live must be added there too.
if (LIVE_RULES.length !== 3) throw new Error(`firstLiveFailure calls 3 live rules, but there are ${LIVE_RULES.length}`);
const [liveKey, liveExpiry, liveSession] = LIVE_RULES.map((rule) => rule.test) as [Rule['test'], Rule['test'], Rule['test']];

/** The error of the first rule the token fails, or undefined when it passes them all. */
export function firstFailure(t: ParsedToken, c: RuleContext, nowMs: number): string | undefined {
  for (let i = 0; i < RULES.length; i++) {
    const failure = RULES[i]!.test(t, c, nowMs);
    if (failure !== undefined) return failure;
  }
  return undefined;
}

/**
 * {@link firstFailure} over the live rules, for a remembered token: the hottest code of a server
 * (every Bearer request). The calls are written out instead of looped, to constants: each call
 * site then sees one rule and V8 inlines it (measured: a loop, whose one call site sees all three,
 * made a remembered token's check 10–15 % slower).
 */
export function firstLiveFailure(t: ParsedToken, c: RuleContext, nowMs: number): string | undefined {
  return liveKey(t, c, nowMs) ?? liveExpiry(t, c, nowMs) ?? liveSession(t, c, nowMs);
}

/** One check as explain reports it. */
export interface TokenCheck {
  check: CheckName;
  ok: boolean;
  /** What was found, in words for an admin. */
  detail: string;
  /** The detail of the `invalid_token` error this failure is refused with; null when ok. */
  error: string | null;
}

export interface TokenExplanation {
  /** Every check once, in rule order; a check of several rules reports the first that fails. */
  checks: TokenCheck[];
  /** The check of the first failing rule (where verify stops, with `error` as its error); null when the token is valid. */
  failed: TokenCheck | null;
}

/** Runs every rule and reports each check. */
export function explainRules(t: ParsedToken, c: RuleContext, nowMs: number): TokenExplanation {
  const checks: TokenCheck[] = [];
  let failed: TokenCheck | null = null;
  for (const rule of RULES) {
    let entry = checks.find((e) => e.check === rule.check);
    if (!entry) {
      entry = { check: rule.check, ok: true, detail: '', error: null };
      checks.push(entry);
    }
    if (!entry.ok) continue;
    const failure = rule.test(t, c, nowMs);
    entry.detail = rule.describe(t, c, nowMs, failure);
    if (failure !== undefined) {
      entry.ok = false;
      entry.error = failure;
      failed ??= entry;
    }
  }
  return { checks, failed };
}
