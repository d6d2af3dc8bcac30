import type { Config } from '../config/schema.js';
import type { KeyInfo, KeyRing } from '../core/keys/key-ring.js';
import type { MfaFactors } from '../core/mfa/mfa-factors.js';
import type { IdentityAccounts } from '../core/oidc/identity-accounts.js';
import type { Passkeys } from '../core/passkeys/passkeys.js';
import type { SessionService } from '../core/sessions/session-service.js';
import type { AccessTokens } from '../core/tokens/access-tokens.js';
import type { UserService } from '../core/users/user-service.js';
import type { JobQueue, JobSchemaStatus } from '../jobs/job-queue.js';
import type { Clock } from '../platform/clock.js';
import type { Cache } from '../store/cache/cache.js';
import type { Db } from '../store/pg/db.js';
import type { StatsRepo } from '../store/pg/stats-repo.js';
import type { UsageRepo } from '../store/pg/usage-repo.js';
import { AdminCache } from './cache.js';
import type { UserExport } from './export.js';
import { inspectToken, type TokenInspection } from './inspect-token.js';
import { AdminMfa } from './mfa.js';
import { AdminPasskeys } from './passkeys.js';
import { AdminSessions } from './sessions.js';
import { collectStats, type StatsReport } from './stats.js';
import { AdminUsers } from './users.js';

export interface AdminDeps {
  config: Pick<Config, 'region'>;
  clock: Clock;
  db: Pick<Db, 'ping' | 'migrateStatus' | 'snapshot'>;
  stats: StatsRepo;
  usage: UsageRepo;
  cache: Cache;
  jobs: Pick<JobQueue, 'stats' | 'status'>;
  keys: Pick<KeyRing, 'load' | 'list'>;
  accessTokens: Pick<AccessTokens, 'explain'>;
  users: Pick<UserService, 'find' | 'list'>;
  sessions: Pick<SessionService, 'findById' | 'listForUser' | 'revoke' | 'revokeAllForUser'>;
  mfa: Pick<MfaFactors, 'overview' | 'activeTypes' | 'reset'>;
  identities: Pick<IdentityAccounts, 'list' | 'unlink'>;
  passkeys: Pick<Passkeys, 'list' | 'removeByAdmin'>;
  /** `authctl user export` (built with the data alone: src/data-container.ts). */
  export: UserExport;
}

export interface MigrationStatus {
  applied: string[];
  pending: string[];
  jobs: JobSchemaStatus;
}

/**
 * The admin use cases — the reports and queries the CLI shows, and the admin's own session
 * revocations — over the region's services and repositories. The CLI renders what they return.
 */
export class Admin {
  readonly users: AdminUsers;
  readonly sessions: AdminSessions;
  readonly cache: AdminCache;
  readonly mfa: AdminMfa;
  readonly passkeys: AdminPasskeys;
  /** `authctl user export`. */
  readonly export: UserExport;

  constructor(private readonly deps: AdminDeps) {
    this.users = new AdminUsers({ users: deps.users, sessions: deps.sessions, mfa: deps.mfa, identities: deps.identities, passkeys: deps.passkeys });
    this.mfa = new AdminMfa({ users: deps.users, mfa: deps.mfa });
    this.passkeys = new AdminPasskeys({ users: deps.users, passkeys: deps.passkeys });
    this.sessions = new AdminSessions({ users: deps.users, sessions: deps.sessions, clock: deps.clock });
    this.cache = new AdminCache(deps.cache);
    this.export = deps.export;
  }

  /** `authctl stats`: users, sessions, usage, cache, database load and queues of the region. */
  stats(): Promise<StatsReport> {
    const { db, stats, cache, jobs, usage, clock, config } = this.deps;
    return collectStats({ db, stats, cache, jobs, usage, clock, config });
  }

  /** `authctl token inspect`: every check a server runs on the token, each reported. */
  inspectToken(jwt: string): Promise<TokenInspection> {
    return inspectToken(jwt, { tokens: this.deps.accessTokens, keys: this.deps.keys, sessions: this.deps.sessions });
  }

  /** Every signing key of the database with its state, freshly read. */
  async keys(): Promise<KeyInfo[]> {
    await this.deps.keys.load();
    return this.deps.keys.list();
  }

  /** Applied and pending migrations, and the job queue's schema. */
  async migrations(): Promise<MigrationStatus> {
    const status = await this.deps.db.migrateStatus();
    return { ...status, jobs: await this.deps.jobs.status() };
  }
}
