import { invalidRequest } from '../../platform/errors.js';

/** Human-readable summary of the username rules, for help text and error hints. */
export const USERNAME_RULES = 'letters, digits, ".", "_", "-" and "@"; 3–64 characters';

/** Inclusive bounds on the length of a normalized username, in Unicode code points. */
export const USERNAME_MIN_LENGTH = 3;
export const USERNAME_MAX_LENGTH = 64;

// Letters, combining marks (scripts such as Devanagari keep vowel signs as marks even after NFKC),
// decimal digits and the four allowed punctuation characters. Whitespace, control (Cc) and
// format (Cf: zero-width joiner, bidi overrides, ...) characters are not in the set, so they are
// refused without a separate check.
const ALLOWED = /^[\p{L}\p{M}\p{Nd}._@-]+$/u;

/**
 * Applies NFKC normalization and case folding without validating anything. Used for the stored
 * username and for case-insensitive comparisons against it (for example in the password policy).
 */
export function foldUsername(raw: string): string {
  // JavaScript has no full Unicode case folding, so toLowerCase() stands in for it. Lowercasing can
  // produce output that is no longer NFKC-normalized (e.g. "İ" becomes "i" + U+0307), so we
  // normalize again afterwards to make the result stable: fold(fold(x)) === fold(x).
  return raw.normalize('NFKC').toLowerCase().normalize('NFKC');
}

/**
 * Returns the canonical form of a username (docs/api.md#usernames-and-passwords): NFKC-normalized and case-folded, 3–64
 * code points of letters, combining marks, decimal digits, `.`, `_`, `-` and `@`. Usernames are
 * stored and compared in this form. Throws an `invalid_request` AppError on the `username` field
 * when the normalized value breaks a rule.
 */
export function normalizeUsername(raw: string): string {
  const username = foldUsername(raw);
  const length = [...username].length;
  if (length < USERNAME_MIN_LENGTH || length > USERNAME_MAX_LENGTH) {
    const message = `username must be ${USERNAME_MIN_LENGTH}–${USERNAME_MAX_LENGTH} characters`;
    throw invalidRequest([{ path: 'username', message }], message);
  }
  if (!ALLOWED.test(username)) {
    const message = 'username may contain only letters, digits and . _ - @';
    throw invalidRequest([{ path: 'username', message }], message);
  }
  return username;
}

/** How much of a provider's name a derived username keeps (the rest of the 64 is room for a suffix). */
const DERIVED_BASE_MAX = 48;
// What a username may hold, but "@" (a derived username should not look like an address).
const NOT_NAME = /[^\p{L}\p{M}\p{Nd}._-]/gu;

/**
 * A username for an account a provider sign-in creates, from what the provider said, in order:
 * its `preferred_username`, the local part of its address, its `name` — the first that leaves
 * at least 3 characters once folded like a username, spaces turned into ".", everything else a
 * username may not hold removed (and "@" with what follows it), "._-" trimmed from the ends and
 * cut to 48 code points; `user` when none does. `Ada Lovelace` → `ada.lovelace`.
 */
export function usernameBase(sources: ReadonlyArray<string | null | undefined>): string {
  for (const source of sources) {
    if (!source) continue;
    const at = source.indexOf('@');
    const name = foldUsername(at >= 0 ? source.slice(0, at) : source)
      .replace(/\s+/gu, '.')
      .replace(NOT_NAME, '')
      .replace(/^[._-]+|[._-]+$/gu, '');
    const cut = [...name]
      .slice(0, DERIVED_BASE_MAX)
      .join('')
      .replace(/[._-]+$/u, '');
    if ([...cut].length >= USERNAME_MIN_LENGTH) return foldUsername(cut);
  }
  return 'user';
}

/**
 * The usernames to try for a base, in order: the base, then `<base>2` … `<base>20` — or, with
 * `tail`, only `<base>-<tail>` after the base. Each is valid by the rules above.
 */
export function usernameCandidates(base: string, tail?: string): string[] {
  if (tail !== undefined) return [base, `${base}-${tail}`];
  return [base, ...Array.from({ length: 19 }, (_, i) => `${base}${i + 2}`)];
}
