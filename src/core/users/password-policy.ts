import { AppError } from '../../platform/errors.js';
import { COMMON_PASSWORDS } from './common-passwords.js';
import { foldUsername } from './username.js';

/** Inclusive bounds on password length, in Unicode code points (docs/api.md#usernames-and-passwords). */
export const PASSWORD_MIN_LENGTH = 8;
export const PASSWORD_MAX_LENGTH = 256;

/** Context for {@link checkPasswordPolicy}. */
export interface PasswordPolicyContext {
  /** The account's username (raw or normalized); the password may not equal it. */
  username?: string;
  /** Field path reported in the error, e.g. `newPassword`; defaults to `password`. */
  path?: string;
}

/**
 * Enforces the NIST SP 800-63B password rules of docs/api.md#usernames-and-passwords: 8–256 code points, not on the
 * bundled common-password list and not the account's own username (both compared
 * case-insensitively); deliberately no composition rules. Throws a `weak_password` AppError whose
 * messages never contain the password.
 */
export function checkPasswordPolicy(password: string, context: PasswordPolicyContext = {}): void {
  const path = context.path ?? 'password';
  const fail = (message: string): never => {
    throw new AppError('weak_password', message, { errors: [{ path, message }] });
  };

  const length = [...password].length;
  if (length < PASSWORD_MIN_LENGTH) fail(`password must be at least ${PASSWORD_MIN_LENGTH} characters`);
  if (length > PASSWORD_MAX_LENGTH) fail(`password must be at most ${PASSWORD_MAX_LENGTH} characters`);

  // The list is lowercased ASCII. Also checking the NFKC-folded form means fullwidth or other
  // compatibility spellings of a common password ("ｐａｓｓｗｏｒｄ１") are refused as well.
  const folded = foldUsername(password);
  if (COMMON_PASSWORDS.has(password.toLowerCase()) || COMMON_PASSWORDS.has(folded)) {
    fail('password is too common; choose a less common one');
  }

  if (context.username !== undefined && context.username !== '' && folded === foldUsername(context.username)) {
    fail('password must not be the same as the username');
  }
}
