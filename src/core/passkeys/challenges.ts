import { v7 as uuidv7 } from 'uuid';
import { z } from 'zod';
import type { Clock } from '../../platform/clock.js';
import { AppError } from '../../platform/errors.js';
import type { Executor } from '../../store/pg/db.js';
import type { MfaTokenUsesRepo } from '../../store/pg/mfa-token-uses-repo.js';
import { SealedBox } from '../keys/sealed-box.js';

/** Which ceremony a challenge is for: registering a passkey, signing in with one, a two-step login's second step, or a session's step-up. */
export type PasskeyCeremony = 'register' | 'login' | 'mfa' | 'reauthenticate';

/** Whom (and what) a challenge is for. */
export interface ChallengeBinding {
  userId?: string;
  /** For `mfa`: the login. */
  mfaTokenId?: string;
  /** For `reauthenticate`: the session. */
  sessionId?: string;
}

/** The HKDF purpose (and AAD) of the challenges' sealing key (src/core/keys/secrets.ts). */
export const PASSKEY_CHALLENGE_KEY_PURPOSE = 'authctl/v1/passkey-challenge';

/** How long a ceremony may take, from its options to its response. */
export const CHALLENGE_TTL_SECONDS = 300;

/** What a challenge says, once opened. */
export interface ChallengeClaims {
  id: string;
  ceremony: PasskeyCeremony;
  /** The user a registration, a second step or a step-up is for; absent for a sign-in (the credential names its user). */
  userId: string | undefined;
  /** For `mfa`: the id of the login's mfaToken, so the answer serves that login and no other. */
  mfaTokenId: string | undefined;
  /** For `reauthenticate`: the session it renews, so the answer renews that session and no other. */
  sessionId: string | undefined;
  expiresAt: Date;
}

const PREFIX = 'pk_';
// A sealed payload is ~200 characters; anything much longer is not one of ours.
const MAX_LENGTH = 512;

const payloadSchema = z.strictObject({
  id: z.uuid(),
  c: z.enum(['register', 'login', 'mfa', 'reauthenticate']),
  uid: z.uuid().optional(),
  mt: z.uuid().optional(),
  sid: z.uuid().optional(),
  exp: z.number().int().positive(),
});

export interface PasskeyChallengesOptions {
  /** `ServerSecrets.macKeys(PASSKEY_CHALLENGE_KEY_PURPOSE)`; absent without a server secret. */
  keys: Buffer[] | undefined;
  /** Where challenges are spent (single use), replicated like the mfaTokens'. */
  uses: MfaTokenUsesRepo;
  clock: Clock;
  region: string;
}

/**
 * The challenges of the WebAuthn ceremonies (docs/api.md#passkeys). A challenge is a
 * {@link SealedBox} — its id, its ceremony, the user (and mfaToken, or session) it is for and its expiry,
 * sealed under a key derived from the server secret — and that sealed value is the very challenge
 * the authenticator signs: the browser echoes it in `clientDataJSON`, so the response alone says
 * what it answers. Issuing stores nothing, so any region holding the server secret finishes a
 * ceremony another region started; spending its id in `mfa_token_uses` (in the transaction of what
 * it yields) makes it single-use, and the use replicates.
 */
export class PasskeyChallenges {
  private readonly box: SealedBox;

  constructor(private readonly opts: PasskeyChallengesOptions) {
    this.box = new SealedBox({
      keys: opts.keys,
      purpose: PASSKEY_CHALLENGE_KEY_PURPOSE,
      prefix: PREFIX,
      maxLength: MAX_LENGTH,
      missingSecret: 'no server secret: set AUTHCTL_SECRET to use passkeys',
    });
  }

  /**
   * A new challenge for `ceremony`: the string to pass as `challenge` to the options generator
   * (the authenticator signs its UTF-8 bytes) and what it says.
   */
  issue(ceremony: PasskeyCeremony, bound: ChallengeBinding = {}): { challenge: string; claims: ChallengeClaims } {
    const exp = Math.floor(this.opts.clock.now().getTime() / 1000) + CHALLENGE_TTL_SECONDS;
    const claims: ChallengeClaims = {
      id: uuidv7(),
      ceremony,
      userId: bound.userId,
      mfaTokenId: bound.mfaTokenId,
      sessionId: bound.sessionId,
      expiresAt: new Date(exp * 1000),
    };
    const challenge = this.box.seal({
      id: claims.id,
      c: ceremony,
      ...(bound.userId ? { uid: bound.userId } : {}),
      ...(bound.mfaTokenId ? { mt: bound.mfaTokenId } : {}),
      ...(bound.sessionId ? { sid: bound.sessionId } : {}),
      exp,
    });
    return { challenge, claims };
  }

  /**
   * Opens the challenge a response echoes (`clientDataJSON.challenge`, base64url of the sealed
   * value's bytes) for `ceremony`: `invalid_passkey_challenge` for anything not sealed by us,
   * changed, expired, or issued for another ceremony, user, login or session. No I/O: {@link spend} makes it single-use.
   */
  open(echoed: unknown, ceremony: PasskeyCeremony, expect: ChallengeBinding = {}): ChallengeClaims {
    const sealed = typeof echoed === 'string' && echoed.length <= MAX_LENGTH * 2 ? Buffer.from(echoed, 'base64url').toString('utf8') : undefined;
    // The echo must be the very spelling the options gave: base64url decoding forgives some respellings.
    const canonical = sealed !== undefined && Buffer.from(sealed, 'utf8').toString('base64url') === echoed;
    const parsed = payloadSchema.safeParse(canonical ? this.box.open(sealed) : undefined);
    if (!parsed.success) throw invalidChallenge('it was not issued by this server, or was changed');
    const p = parsed.data;
    if (p.c !== ceremony) throw invalidChallenge('it was issued for another ceremony');
    if (p.exp * 1000 <= this.opts.clock.now().getTime()) throw invalidChallenge('it has expired; ask for new options');
    if (expect.userId !== undefined && p.uid !== expect.userId) throw invalidChallenge('it was issued to another user');
    if (expect.mfaTokenId !== undefined && p.mt !== expect.mfaTokenId) throw invalidChallenge('it was issued for another login');
    if (expect.sessionId !== undefined && p.sid !== expect.sessionId) throw invalidChallenge('it was issued for another session');
    return { id: p.id, ceremony: p.c, userId: p.uid, mfaTokenId: p.mt, sessionId: p.sid, expiresAt: new Date(p.exp * 1000) };
  }

  /**
   * Spends a challenge in `ex` (the transaction of the passkey or session it yields);
   * `invalid_passkey_challenge` when it was spent already. Inserting is the check: two concurrent
   * uses meet at the primary key, and a use that rolls back frees the challenge again. The use
   * names the user the challenge is bound to or, for a sign-in's (bound to nobody), `userId`:
   * whose credential answered it.
   */
  async spend(claims: ChallengeClaims, ex?: Executor, userId?: string): Promise<void> {
    const fresh = await this.opts.uses.insertOnce(
      {
        id: claims.id,
        userId: claims.userId ?? userId ?? null,
        homeRegion: this.opts.region,
        usedAt: this.opts.clock.now(),
        expiresAt: claims.expiresAt,
      },
      ex,
    );
    if (!fresh) throw invalidChallenge('it was used already; ask for new options');
  }

  /** Refuses a challenge spent already (checked before the signature, so a replay is told as one). */
  async assertUnspent(claims: ChallengeClaims): Promise<void> {
    if (await this.opts.uses.findById(claims.id)) throw invalidChallenge('it was used already; ask for new options');
  }
}

function invalidChallenge(why: string): AppError {
  return new AppError('invalid_passkey_challenge', `the passkey challenge is not valid: ${why}`);
}
