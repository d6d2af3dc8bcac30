import { createHmac, timingSafeEqual } from 'node:crypto';
import { parse as parseUuid, stringify as stringifyUuid } from 'uuid';
import type { ServerSecrets } from '../keys/secrets.js';

const LINK_PURPOSE = 'authctl/v1/email-link';
const CODE_PURPOSE = 'authctl/v1/email-code';
const MAC_BYTES = 16;
const TOKEN = /^([A-Za-z0-9_-]{22})\.([A-Za-z0-9_-]{22})$/;

/**
 * The secret parts of an e-mail challenge, derived from its id under the server secret: the link
 * token `<id>.<MAC>` (44 characters) and the 6-digit code. Nothing secret is stored (the row holds
 * the id only), so a reader of the database or of a job row can compute neither; every region
 * shares the secret, so any region can check a token another region sent; and the same id always
 * yields the same code and link, so a message sent twice (a retry) is an identical copy.
 */
export class ChallengeCodes {
  private readonly linkKeys: Buffer[];
  private readonly codeKeys: Buffer[];

  constructor(secrets: Pick<ServerSecrets, 'macKeys'>) {
    this.linkKeys = secrets.macKeys(LINK_PURPOSE);
    this.codeKeys = secrets.macKeys(CODE_PURPOSE);
  }

  /** The link token of a challenge (current secret). */
  token(challengeId: string): string {
    const id = Buffer.from(parseUuid(challengeId));
    return `${id.toString('base64url')}.${mac(this.linkKeys[0]!, id).toString('base64url')}`;
  }

  /** The challenge id a token names, if its MAC is right under the current or the previous secret. */
  idOf(token: unknown): string | undefined {
    if (typeof token !== 'string') return undefined;
    const m = TOKEN.exec(token);
    if (!m) return undefined;
    const id = Buffer.from(m[1]!, 'base64url');
    const given = Buffer.from(m[2]!, 'base64url');
    if (id.length !== 16 || given.length !== MAC_BYTES) return undefined;
    // Only the canonical spelling: base64url leaves bits over in the last character of each half,
    // and a decoder ignores them, so without this one link would have 16 × 16 spellings.
    if (id.toString('base64url') !== m[1] || given.toString('base64url') !== m[2]) return undefined;
    let ok = false;
    for (const key of this.linkKeys) ok = timingSafeEqual(mac(key, id), given) || ok;
    return ok ? stringifyUuid(id) : undefined;
  }

  /** The 6-digit code of a challenge (current secret). */
  code(challengeId: string): string {
    return codeWith(this.codeKeys[0]!, challengeId);
  }

  /** Whether `code` is the challenge's code (under the current or the previous secret), in constant time. */
  codeMatches(challengeId: string, code: string): boolean {
    const given = Buffer.from(code.padEnd(6, ' ').slice(0, 6));
    let ok = /^\d{6}$/.test(code);
    let any = false;
    for (const key of this.codeKeys) any = timingSafeEqual(Buffer.from(codeWith(key, challengeId)), given) || any;
    ok = ok && any;
    return ok;
  }
}

function mac(key: Buffer, id: Buffer): Buffer {
  return createHmac('sha256', key).update(id).digest().subarray(0, MAC_BYTES);
}

function codeWith(key: Buffer, challengeId: string): string {
  const digest = createHmac('sha256', key).update(challengeId).digest();
  // 48 bits modulo 10^6: the bias is below 2^-28.
  return String(digest.readUIntBE(0, 6) % 1_000_000).padStart(6, '0');
}
