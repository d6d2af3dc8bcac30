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
