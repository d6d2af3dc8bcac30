import type { Config } from '../../config/schema.js';
import type { UserRecord } from '../../model/user.js';
import { AppError } from '../../platform/errors.js';

/** What an account would have left after a removal: its live provider identities and passkeys. */
export interface MethodsLeft {
  identities: number;
  passkeys: number;
}

/**
 * Whether an account keeps a way to sign in (README "Accounts and linking"): a password, a
 * provider identity, a passkey, or a verified address that e-mailed sign-in codes and password
 * resets reach (with `identity.email` on). Asked, in the removal's transaction with the user
 * locked, before unlinking an identity and before removing a passkey.
 */
export function keepsWayToSignIn(user: UserRecord, left: MethodsLeft, email: Config['identity']['email']): boolean {
  return user.passwordHash !== null || left.identities > 0 || left.passkeys > 0 || (email !== 'off' && user.email !== null && user.emailVerifiedAt !== null);
}

/** `last_sign_in_method`: what removing `what` would leave the account without, and what to do first. */
export function lastWayToSignIn(what: 'identity' | 'passkey'): AppError {
  return new AppError(
    'last_sign_in_method',
    `this ${what} is the last way to sign in to the account: set a password (a password reset sets a first one), add a passkey or link a provider first`,
  );
}
