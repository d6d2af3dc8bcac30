import type { Writable } from 'node:stream';
import { UserExport } from './admin/export.js';
import { UserImporter } from './admin/import/importer.js';
import type { Config } from './config/schema.js';
import { systemClock, type Clock } from './platform/clock.js';
import { createLogger, type Logger } from './platform/logger.js';
import type { RequestContextStore } from './platform/request-context.js';
import { Db, type ReaderEvents } from './store/pg/db.js';
import { EmailChallengesRepo } from './store/pg/email-challenges-repo.js';
import { IdentitiesRepo } from './store/pg/identities-repo.js';
import { PasskeysRepo } from './store/pg/passkeys-repo.js';
import { ImportRepo } from './store/pg/import-repo.js';
import { MfaFactorsRepo } from './store/pg/mfa-factors-repo.js';
import { MfaRecoveryCodesRepo } from './store/pg/mfa-recovery-codes-repo.js';
import { MfaTokenUsesRepo } from './store/pg/mfa-token-uses-repo.js';
import { OutboxRepo } from './store/pg/outbox-repo.js';
import { ReplicationApplyRepo } from './store/pg/replication-apply-repo.js';
import { ServiceClientsRepo } from './store/pg/service-clients-repo.js';
import { SessionsRepo } from './store/pg/sessions-repo.js';
import { SigningKeysRepo } from './store/pg/signing-keys-repo.js';
import { StatsRepo } from './store/pg/stats-repo.js';
import { UsageRepo } from './store/pg/usage-repo.js';
import { UsersRepo } from './store/pg/users-repo.js';

/**
 * The region's data alone: its database, one repository per table, and the use cases that are
 * nothing but rows moved in or out (user import and export). What the full {@link Container} is
 * built on, and all that a command like `authctl user import` builds: it loads none of the
 * server's modules (HTTP, mail, job queue, metrics, OpenID client) — a smaller, faster process
 * whose heap V8 sizes from a smaller baseline (docs/design-decisions.md).
 */
export interface DataContainer {
  config: Config;
  clock: Clock;
  log: Logger;
  db: Db;
  /** One repository per table, for the jobs that read or sweep them. */
  repos: Repositories;
  /** `authctl user import` (README "### Import"): users of another system, or of an export, moved in with their password hashes. */
  importer: UserImporter;
  /** `authctl user export`: every user as NDJSON, a page at a time. */
  exporter: UserExport;
}

export interface Repositories {
  users: UsersRepo;
  sessions: SessionsRepo;
  signingKeys: SigningKeysRepo;
  usage: UsageRepo;
  stats: StatsRepo;
  /** Replication's transport: peers, outbox, deliveries, backlog. */
  outbox: OutboxRepo;
  /** Replication's apply side: the rows a peer's batch touches, the applied-batch log, tombstones. */
  replicationApply: ReplicationApplyRepo;
  /** The verification, address-change and reset challenges of the e-mail flows. */
  emailChallenges: EmailChallengesRepo;
  serviceClients: ServiceClientsRepo;
  mfaFactors: MfaFactorsRepo;
  mfaRecoveryCodes: MfaRecoveryCodesRepo;
  /** The used `mfaToken`s of two-step logins. */
  mfaTokenUses: MfaTokenUsesRepo;
  /** The provider identities of users (sign-in through OpenID Connect providers). */
  identities: IdentitiesRepo;
  /** The passkeys (WebAuthn credentials) of users. */
  passkeys: PasskeysRepo;
  /** The batch look-ups and multi-row inserts of a user import. */
  imports: ImportRepo;
}

export interface DataContainerOptions {
  clock?: Clock;
  log?: Logger;
  logStream?: 'stdout' | 'stderr';
  /** Write JSON log lines here (tests capture logs this way), with the request context intact. */
  logSink?: Writable;
  /** The request context every log line carries (the full container's, shared with its servers). */
  requestContext?: RequestContextStore;
  /** Every query's duration, by pool (the full container's metrics). */
  onQuery?: (pool: 'writer' | 'reader', seconds: number, ok: boolean) => void;
  /** Each read the reader could not serve (the full container's metrics). */
  onReaderFallback?: ReaderEvents['fallback'];
}

/**
 * Builds the database, the repositories and the data use cases from the config; starts nothing
 * (the pools connect on first query). {@link buildContainer} builds the rest of the region on it.
 */
export function buildDataContainer(config: Config, options: DataContainerOptions = {}): DataContainer {
  const clock = options.clock ?? systemClock;
  const log =
    options.log ??
    createLogger({
      level: config.log.level,
      region: config.region,
      stream: options.logStream ?? 'stdout',
      ...(options.requestContext ? { context: options.requestContext } : {}),
      ...(options.logSink ? { sink: options.logSink } : {}),
    });
  const db = new Db(config.database, options.onQuery, {
    fallback: (reason) => options.onReaderFallback?.(reason),
    health: (state, err) =>
      state === 'ok'
        ? log.info('read replica is back', { event: 'db.reader_recovered' })
        : log.warn('read replica unavailable: its reads go to the writer', { event: 'db.reader_degraded', err }),
  });
  const repos: Repositories = {
    users: new UsersRepo(db),
    sessions: new SessionsRepo(db),
    signingKeys: new SigningKeysRepo(db),
    usage: new UsageRepo(db),
    stats: new StatsRepo(db),
    outbox: new OutboxRepo(db),
    replicationApply: new ReplicationApplyRepo(db),
    emailChallenges: new EmailChallengesRepo(db),
    serviceClients: new ServiceClientsRepo(db),
    mfaFactors: new MfaFactorsRepo(db),
    mfaRecoveryCodes: new MfaRecoveryCodesRepo(db),
    mfaTokenUses: new MfaTokenUsesRepo(db),
    identities: new IdentitiesRepo(db),
    passkeys: new PasskeysRepo(db),
    imports: new ImportRepo(db),
  };
  return {
    config,
    clock,
    log,
    db,
    repos,
    importer: new UserImporter({ config, clock, db, repo: repos.imports }),
    exporter: new UserExport({ db, users: repos.users, identities: repos.identities }),
  };
}
