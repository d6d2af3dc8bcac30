import type { Db, Executor } from './db.js';
import { guard } from './errors.js';
import type { SigningKeyRecord } from '../../model/signing-key.js';

interface SigningKeyDbRow {
  kid: string;
  alg: string;
  public_jwk: Record<string, unknown>;
  private_jwk_encrypted: string | null;
  home_region: string;
  created_at: Date;
  activates_at: Date;
  retires_at: Date | null;
}

function toRecord(row: SigningKeyDbRow): SigningKeyRecord {
  return {
    kid: row.kid,
    alg: row.alg,
    publicJwk: row.public_jwk,
    privateJwkEncrypted: row.private_jwk_encrypted,
    homeRegion: row.home_region,
    createdAt: row.created_at,
    activatesAt: row.activates_at,
    retiresAt: row.retires_at,
  };
}

/** All SQL on `signing_keys`. */
export class SigningKeysRepo {
  constructor(private readonly db: Db) {}

  async listAll(ex: Executor = this.db.writer): Promise<SigningKeyRecord[]> {
    const rows = await guard(ex<SigningKeyDbRow>('signing_keys').orderBy('activates_at', 'asc'));
    return rows.map(toRecord);
  }

  async insert(key: SigningKeyRecord, ex: Executor = this.db.writer): Promise<void> {
    await guard(
      ex('signing_keys').insert({
        kid: key.kid,
        alg: key.alg,
        public_jwk: JSON.stringify(key.publicJwk),
        private_jwk_encrypted: key.privateJwkEncrypted,
        home_region: key.homeRegion,
        created_at: key.createdAt,
        activates_at: key.activatesAt,
        retires_at: key.retiresAt,
      }),
    );
  }

  /** Schedules every key of `region` that would outlive `at` to leave the JWKS at `at`. */
  async scheduleRetirement(region: string, exceptKid: string, at: Date, ex: Executor = this.db.writer): Promise<string[]> {
    const rows = await guard(
      ex('signing_keys')
        .where({ home_region: region })
        .whereNot({ kid: exceptKid })
        .where((q) => {
          void q.whereNull('retires_at').orWhere('retires_at', '>', at);
        })
        .update({ retires_at: at, version: ex.raw('version + 1') })
        .returning<Array<{ kid: string }>>('kid'),
    );
    return rows.map((r) => r.kid);
  }

  /** Moves one key's retirement to `at` unless it already retires earlier; returns whether it changed. */
  async retire(kid: string, at: Date, ex: Executor = this.db.writer): Promise<boolean> {
    const rows = await guard(
      ex('signing_keys')
        .where({ kid })
        .where((q) => {
          void q.whereNull('retires_at').orWhere('retires_at', '>', at);
        })
        .update({ retires_at: at, version: ex.raw('version + 1') })
        .returning<Array<{ kid: string }>>('kid'),
    );
    return rows.length > 0;
  }

  /** Deletes keys that left the JWKS before `before` (no token they signed can still be valid); returns their kids. */
  async deleteRetiredBefore(before: Date, ex: Executor = this.db.writer): Promise<string[]> {
    const rows = await guard(ex('signing_keys').whereNotNull('retires_at').where('retires_at', '<', before).delete().returning<Array<{ kid: string }>>('kid'));
    return rows.map((r) => r.kid);
  }

  /** Serializes key creation across servers starting at once (first boot of a region). */
  async lockForKeyCreation(trx: Executor): Promise<void> {
    await guard(trx.raw(`select pg_advisory_xact_lock(hashtext('authctl.signing_keys'))`));
  }
}
