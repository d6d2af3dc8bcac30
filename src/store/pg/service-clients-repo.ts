import type { ClientScope, ServiceClientRecord } from '../../model/service-client.js';
import type { Db, Executor } from './db.js';
import { guard } from './errors.js';

/** A `service_clients` row as node-pg returns it (migration 0008-service-clients). */
export interface ServiceClientDbRow {
  id: string;
  name: string;
  scopes: ClientScope[];
  secret_hash: string;
  home_region: string;
  created_at: Date;
  updated_at: Date;
  secret_rotated_at: Date;
  version: string | number;
}

export function toServiceClient(row: ServiceClientDbRow): ServiceClientRecord {
  return {
    id: row.id,
    name: row.name,
    scopes: row.scopes,
    secretHash: row.secret_hash,
    homeRegion: row.home_region,
    createdAt: row.created_at,
    updatedAt: row.updated_at,
    secretRotatedAt: row.secret_rotated_at,
    version: Number(row.version),
  };
}

/** The columns of a client, as written (here and when a peer's change is applied). */
export function serviceClientColumns(c: ServiceClientRecord) {
  return {
    id: c.id,
    name: c.name,
    scopes: c.scopes,
    secret_hash: c.secretHash,
    home_region: c.homeRegion,
    created_at: c.createdAt,
    updated_at: c.updatedAt,
    secret_rotated_at: c.secretRotatedAt,
    version: c.version,
  };
}

/**
 * All SQL on `service_clients`. Every write bumps `version` and replicates (the capture triggers
 * of 0008-service-clients; a delete leaves a tombstone). Reads go to the writer: whether a secret
 * still works is a security outcome, and a replica's lag would keep a rotated one alive.
 */
export class ServiceClientsRepo {
  constructor(private readonly db: Db) {}

  async insert(client: ServiceClientRecord, ex: Executor = this.db.writer): Promise<void> {
    await guard(ex('service_clients').insert(serviceClientColumns(client)));
  }

  /** Every client, oldest first: the authentication snapshot and `authctl client list` (tens of rows, not millions). */
  async listAll(ex: Executor = this.db.writer): Promise<ServiceClientRecord[]> {
    const rows = await guard(ex<ServiceClientDbRow>('service_clients').orderBy([{ column: 'created_at' }, { column: 'id' }]));
    return rows.map(toServiceClient);
  }

  async findById(id: string, ex: Executor = this.db.writer): Promise<ServiceClientRecord | undefined> {
    const row = await guard(ex<ServiceClientDbRow>('service_clients').where({ id }).first());
    return row ? toServiceClient(row) : undefined;
  }

  /** Replaces the secret's hash; undefined when there is no such client. */
  async setSecretHash(id: string, secretHash: string, now: Date, ex: Executor = this.db.writer): Promise<ServiceClientRecord | undefined> {
    const [row] = await guard(
      ex<ServiceClientDbRow>('service_clients')
        .where({ id })
        .update({ secret_hash: secretHash, secret_rotated_at: now, updated_at: now, version: ex.raw('version + 1') })
        .returning('*'),
    );
    return row ? toServiceClient(row) : undefined;
  }

  /** False when there was no such client. */
  async delete(id: string, ex: Executor = this.db.writer): Promise<boolean> {
    return (await guard(ex('service_clients').where({ id }).delete())) > 0;
  }
}
