import type { Config } from '../../config/schema.js';
import type { PasskeyRecord } from '../../model/passkey.js';
import type { Clock } from '../../platform/clock.js';
import { AppError } from '../../platform/errors.js';
import type { Logger } from '../../platform/logger.js';
import type { Db } from '../../store/pg/db.js';
import type { PasskeysRepo } from '../../store/pg/passkeys-repo.js';
import type { UsersRepo } from '../../store/pg/users-repo.js';
import type { Telemetry } from '../telemetry.js';
import type { PasskeyChallenges } from './challenges.js';

/** A passkey as its user (and an administrator) sees it: never the public key. */
export interface PasskeyView {
  id: string;
  name: string;
  /** The authenticator model's AAGUID. */
  aaguid: string;
  transports: string[];
  /** A synced (multi-device) passkey, and whether it is backed up now. */
  backupEligible: boolean;
  backedUp: boolean;
  createdAt: string;
  lastUsedAt: string | null;
}

export interface PasskeysOptions {
  db: Db;
  repo: PasskeysRepo;
  users: Pick<UsersRepo, 'lock' | 'findById'>;
  challenges: PasskeyChallenges;
  /** `identity.webauthn` (rpName defaults to mail.productName). */
  webauthn: Config['identity']['webauthn'];
  productName: string;
  clock: Clock;
  log: Logger;
  telemetry: Telemetry;
  region: string;
}

/**
 * Passkeys (README "Passkeys", docs/api.md#passkeys): the WebAuthn ceremonies — registration,
 * sign-in with or without a username, the second step of a two-step login — checked by
 * `@simplewebauthn/server`, and the user's list of passkeys.
 */
export class Passkeys {
  constructor(private readonly opts: PasskeysOptions) {}

  get enabled(): boolean {
    return this.opts.webauthn.enabled;
  }

  /** The user's live passkeys, oldest first. */
  async list(userId: string): Promise<PasskeyView[]> {
    return (await this.opts.repo.listLive(userId)).map(toPasskeyView);
  }

  /** `authctl user passkeys remove`: removes one passkey of the user (no last-way check: support acts on purpose); logs who ran it. */
  async removeByAdmin(userId: string, id: string, actor: string): Promise<PasskeyView> {
    const now = this.opts.clock.now();
    const [removed] = await this.opts.db.transaction(async (trx) => {
      if (!(await this.opts.users.lock(userId, trx))) throw new AppError('not_found', 'no such user');
      return this.opts.repo.remove(userId, [id], now, trx);
    });
    if (!removed) throw new AppError('not_found', 'no such passkey');
    this.opts.log.info('passkey removed by an administrator', { event: 'passkey.removed', userId, passkeyId: id, via: 'admin', actor });
    return toPasskeyView(removed);
  }
}

export function toPasskeyView(p: PasskeyRecord): PasskeyView {
  return {
    id: p.id,
    name: p.name,
    aaguid: p.aaguid,
    transports: p.transports,
    backupEligible: p.backupEligible,
    backedUp: p.backedUp,
    createdAt: p.createdAt.toISOString(),
    lastUsedAt: p.lastUsedAt?.toISOString() ?? null,
  };
}
