import type { Knex } from 'knex';
import * as initial from './0001-initial.js';
import * as usage from './0002-usage.js';
import * as replication from './0003-replication.js';
import * as rateLimits from './0004-rate-limits.js';
import * as sessionCutoff from './0005-session-cutoff.js';
import * as emailIdentity from './0006-email-identity.js';
import * as scaleIndexes from './0007-scale-indexes.js';
import * as serviceClients from './0008-service-clients.js';
import * as secondFactors from './0009-second-factors.js';
import * as standardHashes from './0011-standard-hashes.js';
import * as identities from './0010-identities.js';
import * as foreignHashes from './0012-foreign-hashes.js';
import * as identityPairs from './0013-identity-pairs.js';
import * as passkeys from './0014-passkeys.js';

interface Migration {
  name: string;
  up(knex: Knex): Promise<void>;
  down(knex: Knex): Promise<void>;
  /** `{ transaction: false }`: the migration runs outside a transaction (CREATE INDEX CONCURRENTLY). */
  config?: { transaction: boolean };
}

// Migrations are compiled into the build and listed here in order, so `authctl migrate` works
// from an installed package without globbing a directory of .js/.ts files.
const MIGRATIONS: Migration[] = [
  { name: '0001-initial', ...initial },
  { name: '0002-usage', ...usage },
  { name: '0003-replication', ...replication },
  { name: '0004-rate-limits', ...rateLimits },
  { name: '0005-session-cutoff', ...sessionCutoff },
  { name: '0006-email-identity', ...emailIdentity },
  { name: '0007-scale-indexes', ...scaleIndexes },
  { name: '0008-service-clients', ...serviceClients },
  { name: '0009-second-factors', ...secondFactors },
  { name: '0010-identities', ...identities },
  { name: '0011-standard-hashes', ...standardHashes },
  { name: '0012-foreign-hashes', ...foreignHashes },
  { name: '0013-identity-pairs', ...identityPairs },
  { name: '0014-passkeys', ...passkeys },
];

export const migrationSource: Knex.MigrationSource<Migration> = {
  getMigrations: () => Promise.resolve(MIGRATIONS),
  getMigrationName: (migration) => migration.name,
  getMigration: (migration) => Promise.resolve(migration),
};
