import { validate as isUuid } from 'uuid';
import type { Passkeys, PasskeyView } from '../core/passkeys/passkeys.js';
import type { UserService } from '../core/users/user-service.js';
import { AppError } from '../platform/errors.js';
import type { UserRef } from './sessions.js';

export interface AdminPasskeysDeps {
  users: Pick<UserService, 'find'>;
  passkeys: Pick<Passkeys, 'list' | 'removeByAdmin'>;
}

/** A user's passkeys as support sees them: never a public key or a credential id. */
export interface PasskeyListing {
  user: UserRef;
  passkeys: PasskeyView[];
}

/** What `authctl user passkeys remove` did. */
export interface PasskeyRemoveResult {
  user: UserRef;
  passkey: PasskeyView;
  /** The sessions the passkey had signed in, revoked with it (`passkey_removed`). */
  sessionsRevoked: number;
}

/** `authctl user passkeys list|remove`: a user's passkeys, and taking one away (a lost or stolen device). */
export class AdminPasskeys {
  constructor(private readonly deps: AdminPasskeysDeps) {}

  /** The live passkeys of a user (id, username or address); `not_found` (exit 3) if none. */
  async list(userRef: string): Promise<PasskeyListing> {
    const user = await this.deps.users.find(userRef);
    return { user: refOf(user), passkeys: await this.deps.passkeys.list(user.id) };
  }

  /**
   * Removes one passkey of a user; `not_found` (exit 3) for an unknown user or a passkey that is
   * not theirs (or gone already). The sessions the passkey signed in end with it. `actor` (who
   * ran it) goes into the `passkey.removed` log line.
   */
  async remove(userRef: string, id: string, actor: string): Promise<PasskeyRemoveResult> {
    const user = await this.deps.users.find(userRef);
    // Passkey ids are UUIDs: anything else names none (and must not reach the uuid column).
    if (!isUuid(id)) throw new AppError('not_found', 'no such passkey');
    return { user: refOf(user), ...(await this.deps.passkeys.removeByAdmin(user.id, id.toLowerCase(), actor)) };
  }
}

function refOf(user: UserRef): UserRef {
  return { id: user.id, username: user.username, email: user.email };
}
