import { createHash, timingSafeEqual } from 'node:crypto';
import { v7 as uuidv7 } from 'uuid';
import { z } from 'zod';
import type { ProviderIdentity } from '../../model/identity.js';
import type { Clock } from '../../platform/clock.js';
import { AppError } from '../../platform/errors.js';
import type { Executor } from '../../store/pg/db.js';
import type { MfaTokenUsesRepo } from '../../store/pg/mfa-token-uses-repo.js';
import { SealedBox } from '../keys/sealed-box.js';

/** What a provider dance is for: signing in (the callback finds or creates the user), or linking to a signed-in user. */
export type OidcPurpose = 'login' | 'link';

/** The HKDF purposes (and AAD) of the sealed flow state and of the one-time codes. */
export const OIDC_STATE_KEY_PURPOSE = 'authctl/v1/oidc-state';
export const OIDC_CODE_KEY_PURPOSE = 'authctl/v1/oidc-code';

/** How long a one-time code lives: the app redeems it as soon as the browser lands. */
export const ONE_TIME_CODE_TTL_SECONDS = 60;

/** A PKCE challenge (RFC 7636 §4.2): base64url of a SHA-256, 43 characters. */
export const CODE_CHALLENGE = /^[A-Za-z0-9_-]{43}$/;
/** A PKCE verifier (RFC 7636 §4.1): 43 to 128 unreserved characters. */
const CODE_VERIFIER = /^[A-Za-z0-9._~-]{43,128}$/;

/** What the provider dance carries from `…/authorize` to `…/callback`, sealed in the `state` parameter. */
export interface FlowState {
  id: string;
  provider: string;
  purpose: OidcPurpose;
  /** The signed-in user, for `link`. */
  userId: string | undefined;
  redirectTo: string;
  /** The app's PKCE challenge: the one-time code is bound to it. */
  codeChallenge: string;
  /** authctl's own PKCE verifier towards the provider. */
  pkceVerifier: string;
  nonce: string;
  /** The redirect URI sent to the provider, which the code exchange must send again (the callback may land in another region). */
  redirectUri: string;
  expiresAt: Date;
}

/** What a one-time code carries to `POST /v1/auth/oidc/token` (a login) or to the link's redemption. */
export interface OneTimeCode {
  id: string;
  provider: string;
  purpose: OidcPurpose;
  /** The user signed in (login) or the user who started the link. */
  userId: string;
  codeChallenge: string;
  /** For `link`: the provider account to link. */
  identity: ProviderIdentity | undefined;
  expiresAt: Date;
}

const stateSchema = z.strictObject({
  id: z.uuid(),
  p: z.string(),
  u: z.enum(['login', 'link']),
  uid: z.uuid().optional(),
  r: z.string(),
  cc: z.string().regex(CODE_CHALLENGE),
  pv: z.string(),
  n: z.string(),
  ru: z.string(),
  exp: z.number().int().positive(),
});

const identitySchema = z.strictObject({
  provider: z.string(),
  subject: z.string(),
  email: z.string().nullable(),
  emailVerified: z.boolean(),
  name: z.string().nullable(),
  preferredUsername: z.string().nullable(),
});

const codeSchema = z.strictObject({
  id: z.uuid(),
  p: z.string(),
  u: z.enum(['login', 'link']),
  uid: z.uuid(),
  cc: z.string().regex(CODE_CHALLENGE),
  idn: identitySchema.optional(),
  exp: z.number().int().positive(),
});

export interface FlowSealsOptions {
  /** `ServerSecrets.macKeys(OIDC_STATE_KEY_PURPOSE)` and `…(OIDC_CODE_KEY_PURPOSE)`; absent without a server secret. */
  stateKeys: Buffer[] | undefined;
  codeKeys: Buffer[] | undefined;
  /** Where states and codes are spent (single use), replicated like the mfaTokens'. */
  uses: MfaTokenUsesRepo;
  clock: Clock;
  region: string;
  /** `identity.providerFlowTtl`: how long the browser may spend at the provider. */
  flowTtlSeconds: number;
}

const MISSING_SECRET = 'no server secret: set AUTHCTL_SECRET to sign in through a provider';

/**
 * The sealed flow state and the one-time codes of provider sign-in (docs/api.md#web-flow). Both
 * are {@link SealedBox}es — issuing stores nothing, so any region holding the server secret opens
 * what another issued — and both are single-use by their id in `mfa_token_uses`, which replicates.
 */
export class FlowSeals {
  private readonly states: SealedBox;
  private readonly codes: SealedBox;

  constructor(private readonly opts: FlowSealsOptions) {
    // A state carries a redirect_to of up to 1 KiB and three 43-character secrets.
    this.states = new SealedBox({ keys: opts.stateKeys, purpose: OIDC_STATE_KEY_PURPOSE, prefix: 'st_', maxLength: 2600, missingSecret: MISSING_SECRET });
    this.codes = new SealedBox({ keys: opts.codeKeys, purpose: OIDC_CODE_KEY_PURPOSE, prefix: 'oc_', maxLength: 2048, missingSecret: MISSING_SECRET });
  }

  sealState(fields: Omit<FlowState, 'id' | 'expiresAt'>): { state: string; claims: FlowState } {
    const exp = this.nowSeconds() + this.opts.flowTtlSeconds;
    const claims: FlowState = { ...fields, id: uuidv7(), expiresAt: new Date(exp * 1000) };
    const state = this.states.seal({
      id: claims.id,
      p: fields.provider,
      u: fields.purpose,
      ...(fields.userId ? { uid: fields.userId } : {}),
      r: fields.redirectTo,
      cc: fields.codeChallenge,
      pv: fields.pkceVerifier,
      n: fields.nonce,
      ru: fields.redirectUri,
      exp,
    });
    return { state, claims };
  }

  /**
   * Opens the callback's state: sealed by us, unexpired, of `provider` — else `invalid_oidc_state`.
   * No I/O: {@link spendState} makes it single-use.
   */
  openState(state: unknown, provider: string): FlowState {
    const parsed = stateSchema.safeParse(this.states.open(state));
    if (!parsed.success) throw invalidState('it was not issued by this server, or was changed');
    const p = parsed.data;
    if (p.p !== provider) throw invalidState('it was issued for another provider');
    if (p.exp * 1000 <= this.opts.clock.now().getTime()) throw invalidState('it has expired; start the sign-in again');
    return {
      id: p.id,
      provider: p.p,
      purpose: p.u,
      userId: p.uid,
      redirectTo: p.r,
      codeChallenge: p.cc,
      pkceVerifier: p.pv,
      nonce: p.n,
      redirectUri: p.ru,
      expiresAt: new Date(p.exp * 1000),
    };
  }

  /** Spends a state before its code is exchanged: a second callback with it is `invalid_oidc_state`. */
  async spendState(state: FlowState): Promise<void> {
    const fresh = await this.opts.uses.insertOnce({
      id: state.id,
      userId: null,
      homeRegion: this.opts.region,
      usedAt: this.opts.clock.now(),
      expiresAt: state.expiresAt,
    });
    if (!fresh) throw invalidState('it was used already; start the sign-in again');
  }

  issueCode(fields: Omit<OneTimeCode, 'id' | 'expiresAt'>): string {
    const exp = this.nowSeconds() + ONE_TIME_CODE_TTL_SECONDS;
    return this.codes.seal({
      id: uuidv7(),
      p: fields.provider,
      u: fields.purpose,
      uid: fields.userId,
      cc: fields.codeChallenge,
      ...(fields.identity ? { idn: fields.identity } : {}),
      exp,
    });
  }

  /**
   * Opens a one-time code of `purpose` and checks the app's verifier against the challenge it is
   * bound to (S256, compared in constant time): `invalid_oidc_code` for anything malformed,
   * forged, expired, of the other purpose, or with a verifier that does not match. No I/O.
   */
  openCode(code: unknown, codeVerifier: unknown, purpose: OidcPurpose): OneTimeCode {
    const parsed = codeSchema.safeParse(this.codes.open(code));
    if (!parsed.success || parsed.data.u !== purpose || parsed.data.exp * 1000 <= this.opts.clock.now().getTime()) {
      throw invalidCode('the code is not valid: it is malformed, expired, or not for this endpoint; sign in again');
    }
    const p = parsed.data;
    if (typeof codeVerifier !== 'string' || !CODE_VERIFIER.test(codeVerifier) || !challengeMatches(codeVerifier, p.cc)) {
      throw invalidCode('codeVerifier does not match the code_challenge the sign-in started with');
    }
    return { id: p.id, provider: p.p, purpose: p.u, userId: p.uid, codeChallenge: p.cc, identity: p.idn, expiresAt: new Date(p.exp * 1000) };
  }

  /** Spends a code in `ex` (the session's transaction); `invalid_oidc_code` when it was used already. */
  async spendCode(code: OneTimeCode, ex?: Executor): Promise<void> {
    const fresh = await this.opts.uses.insertOnce(
      { id: code.id, userId: code.userId, homeRegion: this.opts.region, usedAt: this.opts.clock.now(), expiresAt: code.expiresAt },
      ex,
    );
    if (!fresh) throw invalidCode('the code was used already; sign in again');
  }

  private nowSeconds(): number {
    return Math.floor(this.opts.clock.now().getTime() / 1000);
  }
}

/** RFC 7636 §4.6: BASE64URL(SHA256(verifier)) equals the challenge. */
function challengeMatches(verifier: string, challenge: string): boolean {
  const computed = createHash('sha256').update(verifier, 'ascii').digest();
  const expected = Buffer.from(challenge, 'base64url');
  return expected.length === computed.length && timingSafeEqual(computed, expected);
}

function invalidState(why: string): AppError {
  return new AppError('invalid_oidc_state', `the sign-in's state is not valid: ${why}`);
}

function invalidCode(detail: string): AppError {
  return new AppError('invalid_oidc_code', detail);
}
