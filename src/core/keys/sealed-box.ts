import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';
import { AppError } from '../../platform/errors.js';

export interface SealedBoxOptions {
  /** The sealing keys, current first (`ServerSecrets.macKeys(purpose)`); absent without a server secret. */
  keys: Buffer[] | undefined;
  /** Bound as associated data: a value sealed for one purpose never opens as another's. */
  purpose: string;
  /** What a sealed value starts with (`mfa_`, `oc_`…), so it can be told apart without opening it. */
  prefix: string;
  /** Longer than this is not one of ours: refused before any work. */
  maxLength: number;
  /** What the `bad_config` problem says when there is no server secret. */
  missingSecret: string;
}

const IV_BYTES = 12;
const TAG_BYTES = 16;

/**
 * A JSON payload sealed with AES-256-GCM under a key derived from the server secret: a prefix
 * and `base64url(iv ‖ ciphertext ‖ tag)`. Sealed rather than only signed so that nothing in it
 * (a user id, a verifier, a redirect) can be read off a value in a log, a browser's history or a
 * provider's records; authenticated so that nothing in it can be changed. Any server holding the
 * secret opens what another sealed (the previous secret's key opens too, during a rotation), which
 * is what lets one region finish what another started. Sealing stores nothing: single use is the
 * caller's (an id spent in `mfa_token_uses`).
 */
export class SealedBox {
  constructor(private readonly opts: SealedBoxOptions) {}

  seal(payload: unknown): string {
    const [key] = this.keys();
    const iv = randomBytes(IV_BYTES);
    const cipher = createCipheriv('aes-256-gcm', key!, iv);
    cipher.setAAD(Buffer.from(this.opts.purpose));
    const body = Buffer.concat([cipher.update(JSON.stringify(payload), 'utf8'), cipher.final()]);
    return this.opts.prefix + Buffer.concat([iv, body, cipher.getAuthTag()]).toString('base64url');
  }

  /**
   * The payload of a value this box sealed (parsed JSON, for the caller's schema to check), or
   * `undefined` for anything malformed, respelled, forged or tampered with. No I/O.
   */
  open(value: unknown): unknown {
    const { prefix, maxLength, purpose } = this.opts;
    if (typeof value !== 'string' || !value.startsWith(prefix) || value.length > maxLength) return undefined;
    const raw = Buffer.from(value.slice(prefix.length), 'base64url');
    // A respelled value (base64url decoding forgives some) is not the value that was issued.
    if (raw.length <= IV_BYTES + TAG_BYTES || raw.toString('base64url') !== value.slice(prefix.length)) return undefined;
    const iv = raw.subarray(0, IV_BYTES);
    const body = raw.subarray(IV_BYTES, raw.length - TAG_BYTES);
    const tag = raw.subarray(raw.length - TAG_BYTES);
    for (const key of this.keys()) {
      let plaintext: string;
      try {
        const decipher = createDecipheriv('aes-256-gcm', key, iv);
        decipher.setAAD(Buffer.from(purpose));
        decipher.setAuthTag(tag);
        plaintext = Buffer.concat([decipher.update(body), decipher.final()]).toString('utf8');
      } catch {
        // Not sealed under this key: the next one (the previous secret's), or forged.
        continue;
      }
      try {
        return JSON.parse(plaintext) as unknown;
      } catch {
        return undefined;
      }
    }
    return undefined;
  }

  private keys(): Buffer[] {
    if (!this.opts.keys) throw new AppError('bad_config', this.opts.missingSecret);
    return this.opts.keys;
  }
}
