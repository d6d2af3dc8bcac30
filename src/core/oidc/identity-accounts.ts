import type { IdentityRecord, LinkingPolicy, ProviderIdentity } from '../../model/identity.js';
import type { UserRecord } from '../../model/user.js';

/**
 * Accounts and their provider identities (README "Sign in with Google and other providers",
 * "Accounts and linking"): who a provider sign-in is, linking, and unlinking.
 */
export class IdentityAccounts {
  /**
   * The user a provider sign-in is: the one the identity is linked to; else, with `linking:
   * "verified-email"` and a provider-verified address that an account holds, that account (the
   * identity linked to it); else, when the address is held (or unverified), `identity_not_linked`;
   * else a new user (no password) with the identity.
   */
  signInWith(identity: ProviderIdentity, linking: LinkingPolicy): Promise<UserRecord> {
    (void identity, linking);
    throw new Error('not implemented');
  }

  /** Links a provider account to a signed-in user; `identity_taken` when another user has it. */
  link(userId: string, identity: ProviderIdentity): Promise<IdentityRecord> {
    (void userId, identity);
    throw new Error('not implemented');
  }

  list(userId: string): Promise<IdentityRecord[]> {
    void userId;
    throw new Error('not implemented');
  }

  /** Removes one identity of a user; `last_sign_in_method` when it is the last way to sign in. */
  unlink(userId: string, identityIdOrProvider: string): Promise<IdentityRecord> {
    (void userId, identityIdOrProvider);
    throw new Error('not implemented');
  }
}
