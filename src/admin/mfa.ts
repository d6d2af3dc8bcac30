import type { FactorView, MfaFactors } from '../core/mfa/mfa-factors.js';
import type { UserService } from '../core/users/user-service.js';
import type { UserRef } from './sessions.js';

export interface AdminMfaDeps {
  users: Pick<UserService, 'find'>;
  mfa: Pick<MfaFactors, 'overview' | 'activeTypes' | 'reset'>;
}

/** A user's second factors as an administrator sees them: never a secret or a code. */
export interface MfaListing {
  user: UserRef;
  /** Whether a login of this user asks for a second factor now. */
  mfaEnabled: boolean;
  factors: FactorView[];
  recoveryCodesLeft: number;
}

export interface MfaResetResult {
  user: UserRef;
  removedFactors: number;
  endedRecoveryCodes: number;
  revokedSessions: number;
}

/** `authctl user mfa list|reset`: a user's factors, and taking them away from a user who lost them. */
export class AdminMfa {
  constructor(private readonly deps: AdminMfaDeps) {}

  /** The factors of a user (id, username or address); `not_found` (exit 3) if none. */
  async list(userRef: string): Promise<MfaListing> {
    const user = await this.deps.users.find(userRef);
    const [overview, types] = await Promise.all([this.deps.mfa.overview(user.id), this.deps.mfa.activeTypes(user.id)]);
    return { user: { id: user.id, username: user.username, email: user.email }, mfaEnabled: types.length > 0, ...overview };
  }

  /**
   * Removes every factor and recovery code of a user and revokes every session of theirs, in one
   * transaction; `actor` (who ran it) goes into the `mfa.reset` log line.
   */
  async reset(userRef: string, actor: string): Promise<MfaResetResult> {
    const user = await this.deps.users.find(userRef);
    const result = await this.deps.mfa.reset(user.id, actor);
    return { user: { id: user.id, username: user.username, email: user.email }, ...result };
  }
}
