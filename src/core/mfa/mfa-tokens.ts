import { v7 as uuidv7 } from 'uuid';
import { z } from 'zod';
import type { FirstFactor } from '../../model/mfa.js';
import type { Clock } from '../../platform/clock.js';
import { AppError } from '../../platform/errors.js';
import type { Executor } from '../../store/pg/db.js';
import type { MfaTokenUsesRepo } from '../../store/pg/mfa-token-uses-repo.js';
import { SealedBox } from '../keys/sealed-box.js';

/** What an mfaToken lets its holder do: answer the second step, or (with no factor yet, `identity.mfa: required`) enrol one. */
export type MfaTokenPurpose = 'verify' | 'enrol';

/** What an mfaToken says, once opened. */
export interface MfaTokenClaims {
  id: string;
  userId: string;
  /** What the login's first step proved. */
  first: FirstFactor;
  purpose: MfaTokenPurpose;
  expiresAt: Date;
  /** The provider of a first step through one (`first` is `fed`): the session it yields keeps it as `idp`. */
  idp?: string;
  /** The passkey of a first step with one (`first` is `hwk` or `swk`): the session it yields records it as signed in by it. */
  passkeyId?: string;
}

/** What signed a first step in, beyond its factor: a provider, or a passkey. */
export interface FirstStepVia {
  idp?: string | undefined;
  passkeyId?: string | undefined;
}

export interface MfaTokensOptions {
  /** The sealing keys, current first (`ServerSecrets.macKeys`); absent without a server secret. */
  keys: Buffer[] | undefined;
  repo: MfaTokenUsesRepo;
  clock: Clock;
  region: string;
  ttlSeconds: number;
}

/** The purpose of the key the tokens are sealed under (HKDF info, src/core/keys/secrets.ts), and their AAD. */
export const MFA_TOKEN_KEY_PURPOSE = 'authctl/v1/mfa-token';
const PREFIX = 'mfa_';
// A sealed payload is ~170 characters (~230 with a provider, ~280 with a passkey); anything much longer is not one of ours.
const MAX_LENGTH = 512;

const payloadSchema = z.strictObject({
  id: z.uuid(),
  sub: z.uuid(),
  first: z.enum(['pwd', 'otp', 'fed', 'hwk', 'swk']),
  purpose: z.enum(['verify', 'enrol']),
  exp: z.number().int().positive(),
  idp: z.string().max(32).optional(),
  pk: z.uuid().optional(),
});

/**
 * The `mfaToken` of a two-step login (docs/api.md#two-step-login): `mfa_` and an AES-256-GCM
 * sealed payload — its id (UUIDv7), the user, what the first step proved, its purpose and its
 * expiry — under a key derived from the server secret (the previous secret's key opens it too,
 * during a rotation). Sealed rather than only signed so that neither the user id nor the first
 * factor can be read off a token in a log or a browser's history. Issuing stores nothing; using
 * one inserts its id into `mfa_token_uses` in the transaction of the session it yields
 * ({@link spend}), which is what makes it single-use.
 */
export class MfaTokens {
  private readonly box: SealedBox;

  constructor(private readonly opts: MfaTokensOptions) {
    this.box = new SealedBox({
      keys: opts.keys,
      purpose: MFA_TOKEN_KEY_PURPOSE,
      prefix: PREFIX,
      maxLength: MAX_LENGTH,
      missingSecret: 'no server secret: set AUTHCTL_SECRET to issue or accept mfaTokens',
    });
  }

  get ttlSeconds(): number {
    return this.opts.ttlSeconds;
  }

  /** Whether a credential is spelt like an mfaToken (so a Bearer header can be told apart without opening it). */
  static looksLike(token: string): boolean {
    return token.startsWith(PREFIX);
  }

  issue(userId: string, first: FirstFactor, purpose: MfaTokenPurpose, via: FirstStepVia = {}): { token: string; claims: MfaTokenClaims } {
    const exp = Math.floor(this.opts.clock.now().getTime() / 1000) + this.opts.ttlSeconds;
    const { idp, passkeyId } = via;
    const claims: MfaTokenClaims = {
      id: uuidv7(),
      userId,
      first,
      purpose,
      expiresAt: new Date(exp * 1000),
      ...(idp ? { idp } : {}),
      ...(passkeyId ? { passkeyId } : {}),
    };
    const token = this.box.seal({ id: claims.id, sub: userId, first, purpose, exp, ...(idp ? { idp } : {}), ...(passkeyId ? { pk: passkeyId } : {}) });
    return { token, claims };
  }

  /**
   * Opens a token for `purpose`: `invalid_mfa_token` for anything malformed, forged, tampered
   * with, expired or issued for the other purpose. No I/O: whether it was used is {@link assertUnspent}.
   */
  open(token: unknown, purpose: MfaTokenPurpose): MfaTokenClaims {
    const claims = this.decode(token);
    if (!claims || claims.purpose !== purpose || claims.expiresAt.getTime() <= this.opts.clock.now().getTime()) throw invalidMfaToken();
    return claims;
  }

  /** Refuses a token that was used already (before a code is judged, so a spent token tells nothing about codes). */
  async assertUnspent(claims: MfaTokenClaims): Promise<void> {
    if (await this.opts.repo.findById(claims.id)) throw invalidMfaToken();
  }

  /**
   * Spends a token in `ex`, the transaction of the session it yields; `invalid_mfa_token` when it
   * was spent already. Inserting is the check: two concurrent uses meet at the primary key, the
   * second waits for the first to commit and then inserts nothing; a use that rolls back frees
   * the token again.
   */
  async spend(claims: MfaTokenClaims, ex: Executor): Promise<void> {
    const fresh = await this.opts.repo.insertOnce(
      { id: claims.id, userId: claims.userId, homeRegion: this.opts.region, usedAt: this.opts.clock.now(), expiresAt: claims.expiresAt },
      ex,
    );
    if (!fresh) throw invalidMfaToken();
  }

  private decode(token: unknown): MfaTokenClaims | undefined {
    const parsed = payloadSchema.safeParse(this.box.open(token));
    if (!parsed.success) return undefined;
    const p = parsed.data;
    return {
      id: p.id,
      userId: p.sub,
      first: p.first,
      purpose: p.purpose,
      expiresAt: new Date(p.exp * 1000),
      ...(p.idp ? { idp: p.idp } : {}),
      ...(p.pk ? { passkeyId: p.pk } : {}),
    };
  }
}

function invalidMfaToken(): AppError {
  return new AppError('invalid_mfa_token', 'the mfaToken is not valid: it is malformed, expired, already used, or not for this step; log in again');
}
