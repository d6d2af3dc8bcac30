import type { PasskeyView } from '../../src/core/passkeys/passkeys.js';
import { table } from '../_io.js';

/**
 * A user's passkeys as a text table (`user show`, `user passkeys list`): id, name, created, last
 * used, synced (a passkey provider copies it between devices) or device-bound, backed up, AAGUID.
 */
export function passkeyTable(passkeys: PasskeyView[]): string {
  const rows = passkeys.map((p) => ({
    ...p,
    kind: p.backupEligible ? 'synced' : 'device-bound',
    backedUp: p.backedUp ? 'yes' : 'no',
  }));
  return table(rows, ['id', 'name', 'createdAt', 'lastUsedAt', 'kind', 'backedUp', 'aaguid']);
}
