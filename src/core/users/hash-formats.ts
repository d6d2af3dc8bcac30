/**
 * The password hash formats authctl verifies (README "Moving users in and out"): its own argon2id,
 * and the formats of the systems users are imported from. Every stored hash is one string; each
 * format's string is the one its own ecosystem writes, or the PHC string format where a source
 * stores the parts apart (a Keycloak credential becomes `$pbkdf2-sha256$…`).
 *
 * | format | stored string |
 * |---|---|
 * | `argon2id`, `argon2i`, `argon2d` | PHC: `$argon2id$v=19$m=19456,t=2,p=1$<salt>$<digest>` (the `m,p,t` order the argon2 package wrote is read too) |
 * | `bcrypt` | `$2a$`, `$2b$` or `$2y$`, the cost, 22 characters of salt and 31 of digest (bcrypt's own base64) |
 * | `scrypt` | PHC: `$scrypt$ln=<log2 N>,r=<r>,p=<p>$<salt>$<digest>` |
 * | `pbkdf2-sha256`, `pbkdf2-sha512` | PHC: `$pbkdf2-sha256$i=<iterations>$<salt>$<digest>` (Keycloak's credentials, converted at import) |
 * | `django-pbkdf2-sha256` | Django's own: `pbkdf2_sha256$<iterations>$<salt>$<digest>` (the salt is used as its UTF-8 text) |
 *
 * PHC salts and digests are base64 without padding (standard alphabet, as the PHC format says).
 */
export const HASH_FORMATS = ['argon2id', 'argon2i', 'argon2d', 'bcrypt', 'scrypt', 'pbkdf2-sha256', 'pbkdf2-sha512', 'django-pbkdf2-sha256'] as const;
export type HashFormat = (typeof HASH_FORMATS)[number];

/** Every format but the one authctl writes: a user with one of these is rehashed at the next login. */
export type ForeignHashFormat = Exclude<HashFormat, 'argon2id'>;

/**
 * The costliest stored string each format is verified at. A stored hash is data (an import file
 * writes it): without a bound, `$scrypt$ln=30,…` would ask for 128 GiB, `$pbkdf2-sha256$i=99999999$…`
 * or `$2b$31$…` would hold a thread of the pool for minutes, and every failed login against such
 * an account would do it again. Past a bound the hash is one authctl cannot verify ({@link hashFormat}
 * is `undefined`: an import refuses it, a login against it fails). Each bound is well above what its
 * ecosystem writes today (bcrypt 10–12, scrypt ln=14–17 with r=8, Django's 1,200,000 iterations,
 * OWASP's 600,000 for PBKDF2-SHA256); argon2's are authctl's own configuration bounds.
 */
export const HASH_COST_LIMITS = Object.freeze({
  /** Highest bcrypt cost (2^14 rounds: about a second on one core). */
  bcryptCost: 14,
  /** Most memory one scrypt verification may take, bytes (128 · N · r): 64 MiB, ln=16 with r=8. */
  scryptMemory: 64 * 1024 * 1024,
  /** Highest scrypt parallelism (sequential work in node:crypto: p runs of the memory-hard loop). */
  scryptParallelism: 4,
  /** Most PBKDF2 iterations (PHC or Django). */
  pbkdf2Iterations: 2_000_000,
  /** argon2 memory (KiB), passes and lanes: the bounds of authctl's own `hash` configuration. */
  argon2MemoryKiB: 4_194_304,
  argon2TimeCost: 100,
  argon2Parallelism: 64,
  /** Digest lengths a PHC scrypt or PBKDF2 string may carry, bytes. */
  digestBytes: { min: 16, max: 256 },
});

/** A stored hash taken apart: what its verification needs (argon2 and bcrypt strings go to their libraries whole). */
export type ParsedHash =
  | { format: 'argon2id' | 'argon2i' | 'argon2d'; memoryCost: number; timeCost: number; parallelism: number }
  | { format: 'bcrypt'; cost: number }
  | { format: 'scrypt'; n: number; r: number; p: number; salt: Buffer; digest: Buffer }
  | { format: 'pbkdf2-sha256' | 'pbkdf2-sha512'; iterations: number; salt: Buffer; digest: Buffer }
  | { format: 'django-pbkdf2-sha256'; iterations: number; salt: Buffer; digest: Buffer };

const B64 = '([A-Za-z0-9+/]+)';
const ARGON2 = new RegExp(
  `^\\$(argon2(?:id|i|d))\\$v=(?:16|19)\\$(?:m=(\\d{1,7}),t=(\\d{1,3}),p=(\\d{1,2})|m=(\\d{1,7}),p=(\\d{1,2}),t=(\\d{1,3}))\\$${B64}\\$${B64}$`,
);
const BCRYPT = /^\$2[aby]\$(0[4-9]|[12]\d|3[01])\$[./A-Za-z0-9]{53}$/;
const SCRYPT = new RegExp(`^\\$scrypt\\$ln=(\\d{1,2}),r=(\\d{1,3}),p=(\\d{1,3})\\$${B64}\\$${B64}$`);
const PBKDF2 = new RegExp(`^\\$pbkdf2-(sha256|sha512)\\$i=(\\d{1,8})\\$${B64}\\$${B64}$`);
const DJANGO = /^pbkdf2_sha256\$(\d{1,8})\$([^$]{1,128})\$([A-Za-z0-9+/]{43}=)$/;

/**
 * Takes a stored hash apart and checks its cost against {@link HASH_COST_LIMITS}; `undefined` when
 * it is no format authctl verifies, is malformed, or costs more than the bounds allow. Never throws.
 */
export function parseHash(hash: string): ParsedHash | undefined {
  if (typeof hash !== 'string' || hash.length > 1024) return undefined;
  const L = HASH_COST_LIMITS;
  let m: RegExpExecArray | null;
  if ((m = ARGON2.exec(hash))) {
    const [memoryCost, timeCost, parallelism] = (m[2] !== undefined ? [m[2], m[3], m[4]] : [m[5], m[7], m[6]]).map(Number) as [number, number, number];
    if (memoryCost > L.argon2MemoryKiB || timeCost < 1 || timeCost > L.argon2TimeCost || parallelism < 1 || parallelism > L.argon2Parallelism) return undefined;
    return { format: m[1] as 'argon2id' | 'argon2i' | 'argon2d', memoryCost, timeCost, parallelism };
  }
  if ((m = BCRYPT.exec(hash))) {
    const cost = Number(m[1]);
    return cost <= L.bcryptCost ? { format: 'bcrypt', cost } : undefined;
  }
  if ((m = SCRYPT.exec(hash))) {
    const [ln, r, p] = [Number(m[1]), Number(m[2]), Number(m[3])];
    const digest = phcBytes(m[5]!);
    if (ln < 1 || r < 1 || p < 1 || p > L.scryptParallelism || 128 * 2 ** ln * r > L.scryptMemory || !digest) return undefined;
    return { format: 'scrypt', n: 2 ** ln, r, p, salt: Buffer.from(m[4]!, 'base64'), digest };
  }
  if ((m = PBKDF2.exec(hash))) {
    const iterations = Number(m[2]);
    const digest = phcBytes(m[4]!);
    if (iterations < 1 || iterations > L.pbkdf2Iterations || !digest) return undefined;
    return { format: `pbkdf2-${m[1] as 'sha256' | 'sha512'}`, iterations, salt: Buffer.from(m[3]!, 'base64'), digest };
  }
  if ((m = DJANGO.exec(hash))) {
    const iterations = Number(m[1]);
    if (iterations < 1 || iterations > L.pbkdf2Iterations) return undefined;
    // Django hashes the salt's text, not a decoding of it; the digest is 32 bytes, base64 with padding.
    return { format: 'django-pbkdf2-sha256', iterations, salt: Buffer.from(m[2]!, 'utf8'), digest: Buffer.from(m[3]!, 'base64') };
  }
  return undefined;
}

/** The bytes of a PHC digest, when their number is within {@link HASH_COST_LIMITS}.digestBytes. */
function phcBytes(b64: string): Buffer | undefined {
  const bytes = Buffer.from(b64, 'base64');
  const { min, max } = HASH_COST_LIMITS.digestBytes;
  return bytes.length >= min && bytes.length <= max ? bytes : undefined;
}

/** The format of a stored hash string, or `undefined` when it is none authctl can verify ({@link parseHash}). */
export function hashFormat(hash: string): HashFormat | undefined {
  return parseHash(hash)?.format;
}

/** A PHC PBKDF2 string from its parts (Keycloak keeps salt, digest and iterations apart; standard base64 in, padding dropped). */
export function pbkdf2Phc(digest: 'sha256' | 'sha512', iterations: number, saltBase64: string, hashBase64: string): string {
  const unpad = (s: string) => s.replace(/=+$/, '');
  return `$pbkdf2-${digest}$i=${iterations}$${unpad(saltBase64)}$${unpad(hashBase64)}`;
}

/** Users with a foreign hash, by format; `unrecognized` counts stored strings of no format authctl verifies. */
export type ForeignHashCounts = Partial<Record<ForeignHashFormat | 'unrecognized', number>>;

/** The format of a hash's class, the part before its salt (`$2b$10$`, `pbkdf2_sha256$870000$`; null: none). */
export function formatOfHashClass(cls: string | null): ForeignHashFormat | 'unrecognized' {
  if (cls === null) return 'unrecognized';
  const name = (cls.startsWith('$') ? cls.split('$')[1] : cls.split('$')[0]) ?? '';
  if (name === '2a' || name === '2b' || name === '2y') return 'bcrypt';
  if (name === 'pbkdf2_sha256') return 'django-pbkdf2-sha256';
  return name !== 'argon2id' && (HASH_FORMATS as readonly string[]).includes(name) ? (name as ForeignHashFormat) : 'unrecognized';
}

/** Per-class counts summed by format, in {@link HASH_FORMATS} order with `unrecognized` last (the same order in every report). */
export function countByFormat(classes: ReadonlyArray<{ hashClass: string | null; count: number }>): ForeignHashCounts {
  const byFormat = new Map<ForeignHashFormat | 'unrecognized', number>();
  for (const { hashClass, count } of classes) {
    const format = formatOfHashClass(hashClass);
    byFormat.set(format, (byFormat.get(format) ?? 0) + count);
  }
  const order: Array<ForeignHashFormat | 'unrecognized'> = [...HASH_FORMATS.filter((f): f is ForeignHashFormat => f !== 'argon2id'), 'unrecognized'];
  return Object.fromEntries(order.filter((f) => byFormat.has(f)).map((f) => [f, byFormat.get(f)!]));
}
