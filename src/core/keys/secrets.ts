import { createCipheriv, createDecipheriv, createHash, hkdfSync, randomBytes } from 'node:crypto';
import { AppError } from '../../platform/errors.js';

/**
 * Keys derived from the server secret (and the previous one during a rotation). Each purpose
 * gets its own HKDF-derived key, so the secret itself never keys anything directly and a key
 * for one purpose says nothing about another.
 */
export class ServerSecrets {
  private readonly entries: Array<{ id: string; secret: Buffer }>;

  constructor(current: string, previous?: string) {
    this.entries = [current, ...(previous ? [previous] : [])].map((s) => ({ id: secretId(s), secret: Buffer.from(s, 'utf8') }));
  }

  /** The refresh-token MAC keys, current first. */
  refreshMacKeys(): Buffer[] {
    return this.entries.map((e) => derive(e.secret, 'authctl/v1/refresh-token-mac'));
  }

  /**
   * The keys of one purpose (e.g. `authctl/v1/email-link`), current first: for MACs that must be
   * checked with the previous secret too during a rotation.
   */
  macKeys(purpose: string): Buffer[] {
    return this.entries.map((e) => derive(e.secret, purpose));
  }

  /**
   * Encrypts a secret for storage (a signing key's private JWK, a TOTP secret):
   * `v1.<secret id>.<iv>.<ciphertext>.<tag>` (AES-256-GCM). `context` is bound as associated data
   * (e.g. `mfa-totp:<factor id>`), so a sealed value moved to another row does not open there.
   */
  seal(plaintext: string, context: string): string {
    const { id, secret } = this.entries[0]!;
    const iv = randomBytes(12);
    const cipher = createCipheriv('aes-256-gcm', derive(secret, 'authctl/v1/key-wrap'), iv);
    cipher.setAAD(Buffer.from(context, 'utf8'));
    const body = Buffer.concat([cipher.update(plaintext, 'utf8'), cipher.final()]);
    return ['v1', id, iv.toString('base64url'), body.toString('base64url'), cipher.getAuthTag().toString('base64url')].join('.');
  }

  /** Decrypts what `seal` produced, with whichever known secret sealed it. */
  open(sealed: string, context: string): string {
    const [version, id, iv, body, tag] = sealed.split('.');
    const entry = this.entries.find((e) => e.id === id);
    if (version !== 'v1' || !entry || !iv || body === undefined || !tag) {
      throw new AppError(
        'bad_config',
        'a stored secret (a signing key or a TOTP factor) was sealed with a server secret this server does not have;' +
          ' set AUTHCTL_SECRET (and AUTHCTL_PREVIOUS_SECRET during a rotation)',
      );
    }
    try {
      const decipher = createDecipheriv('aes-256-gcm', derive(entry.secret, 'authctl/v1/key-wrap'), Buffer.from(iv, 'base64url'));
      decipher.setAAD(Buffer.from(context, 'utf8'));
      decipher.setAuthTag(Buffer.from(tag, 'base64url'));
      return Buffer.concat([decipher.update(Buffer.from(body, 'base64url')), decipher.final()]).toString('utf8');
    } catch (err) {
      throw new AppError('bad_config', 'a stored secret (a signing key or a TOTP factor) could not be decrypted with the configured server secret', {
        cause: err,
      });
    }
  }

  /** Whether `sealed` was sealed with the current secret (false: the previous one, during a rotation — re-seal it when next used). */
  sealedWithCurrent(sealed: string): boolean {
    return sealed.split('.')[1] === this.entries[0]!.id;
  }
}

function derive(secret: Buffer, info: string): Buffer {
  return Buffer.from(hkdfSync('sha256', secret, Buffer.alloc(0), info, 32));
}

/** A short public identifier of a secret (not reversible), to tell which one sealed a value. */
function secretId(secret: string): string {
  return createHash('sha256').update('authctl/v1/secret-id').update(secret).digest('hex').slice(0, 8);
}
