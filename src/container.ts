import type { Writable } from 'node:stream';
import type { Config } from './config/schema.js';
import { AuthService } from './core/auth/auth-service.js';
import { systemClock, type Clock } from './platform/clock.js';
import { KeyRing } from './core/keys/key-ring.js';
import { ServerSecrets } from './core/keys/secrets.js';
import { RevocationList } from './core/sessions/revocation-list.js';
import { SessionService } from './core/sessions/session-service.js';
import { AccessTokens } from './core/tokens/access-tokens.js';
import { RefreshTokenCodec } from './core/tokens/refresh-token.js';
import { PasswordHasher } from './core/users/password-hasher.js';
import { UserService } from './core/users/user-service.js';
import { createLogger, type Logger } from './platform/logger.js';
import { createMetrics, registerCollectors, type Metrics } from './platform/metrics.js';
import { RequestContextStore } from './platform/request-context.js';
import { Telemetry } from './core/telemetry.js';
import { UsageRecorder } from './core/usage/usage-recorder.js';
import { UsageRepo } from './store/pg/usage-repo.js';
import { Db } from './store/pg/db.js';
import { SessionsRepo } from './store/pg/sessions-repo.js';
import { SigningKeysRepo } from './store/pg/signing-keys-repo.js';
import { StatsRepo } from './store/pg/stats-repo.js';
import { UsersRepo } from './store/pg/users-repo.js';
import { ReplicationRepo } from './store/pg/replication-repo.js';
import { createReplicationMetrics } from './core/replication/metrics.js';
import { ReplicationService } from './core/replication/replication-service.js';
import { CacheRepairJobs } from './jobs/cache-repair.js';
import { JobQueue } from './jobs/job-queue.js';
import { MailOutbox, type MailServices } from './jobs/mail.js';
import { BUILTIN_TEMPLATES } from './mail/builtin-templates.js';
import { MailComposers, testComposer } from './mail/composers.js';
import { createMailer } from './mail/index.js';
import { MailMessages } from './mail/messages.js';
import { createMailMetrics } from './mail/metrics.js';
import { MailTemplates } from './mail/templates.js';
import { createCache, type Cache } from './store/cache/index.js';
import { MemoryCache } from './store/cache/memory.js';
import { memoryLimiterStore, postgresLimiterStore, redisLimiterStore, type LimiterStore } from './security/limiter-store.js';
import { LoginThrottle } from './security/login-throttle.js';

export interface Container {
  config: Config;
  clock: Clock;
  log: Logger;
  metrics: Metrics;
  /** Request id of the request being served, for every log line written while serving it. */
  requestContext: RequestContextStore;
  telemetry: Telemetry;
  /** Hourly usage counters in PostgreSQL for `authctl stats`: counted in memory, flushed every 10 s. */
  usage: UsageRecorder;
  db: Db;
  /** One repository per table, for the jobs and admin use cases that read or sweep them. */
  repos: Repositories;
  cache: Cache;
  /** pg-boss producer (and, in `authctl worker`, consumer); connects on first use. */
  jobs: JobQueue;
  keys: KeyRing;
  revocations: RevocationList;
  sessions: SessionService;
  users: UserService;
  auth: AuthService;
  /** Brute-force limits on login, registration and password checks (src/security). */
  throttle: LoginThrottle;
  /** Multi-region: peers, applying their batches, shipping ours (workers), cross-region refresh. */
  replication: ReplicationService;
  /** Login-limit counters (Redis, PostgreSQL or memory, by topology). */
  limiterStore: LimiterStore;
  /** Outgoing mail: the outbox flows enqueue with, the composers by kind, the mailer workers send with. */
  mail: MailServices;
}

export interface Repositories {
  users: UsersRepo;
  sessions: SessionsRepo;
  signingKeys: SigningKeysRepo;
  usage: UsageRepo;
  stats: StatsRepo;
  replication: ReplicationRepo;
}

export interface ContainerOptions {
  clock?: Clock;
  log?: Logger;
  logStream?: 'stdout' | 'stderr';
  /** Write JSON log lines here (tests capture logs this way), with the request context intact. */
  logSink?: Writable;
}

/**
 * Builds every service of a region from its config: the only place that `new`s infrastructure,
 * repositories and services, and wires them to each other. It starts nothing; start-up,
 * background retries and shutdown are src/runtime.ts.
 */
export function buildContainer(config: Config, options: ContainerOptions = {}): Container {
  const clock = options.clock ?? systemClock;
  const requestContext = new RequestContextStore();
  const log =
    options.log ??
    createLogger({
      level: config.log.level,
      region: config.region,
      stream: options.logStream ?? 'stdout',
      context: requestContext,
      ...(options.logSink ? { sink: options.logSink } : {}),
    });
  const metrics = createMetrics(config.region);
  const db = new Db(config.database, (pool, seconds, ok) => metrics.dbQueryDuration.observe({ pool, outcome: ok ? 'ok' : 'error' }, seconds));
  const repos: Repositories = {
    users: new UsersRepo(db),
    sessions: new SessionsRepo(db),
    signingKeys: new SigningKeysRepo(db),
    usage: new UsageRepo(db),
    stats: new StatsRepo(db),
    replication: new ReplicationRepo(db),
  };
  const usage = new UsageRecorder({ repo: repos.usage, clock, log, region: config.region });
  const telemetry = new Telemetry({ log, metrics, usage });
  const cache = createCache(config.cache, { clock, log, onLookup: (kind, result) => telemetry.cacheLookup(kind, result) });
  const jobs = new JobQueue({ config, log });
  const secrets = config.secret ? new ServerSecrets(config.secret, config.previousSecret) : undefined;
  const sessionsRepo = repos.sessions;
  registerCollectors(metrics, {
    cacheUp: () => cache.health() === 'ok',
    pools: () => db.poolStats(),
    activeSessions: () => sessionsRepo.countActive(clock.now()),
    queueDepth: async () => (await jobs.stats()).queues,
  });

  const revocations = new RevocationList({
    repo: sessionsRepo,
    clock,
    log,
    pollIntervalMs: config.revocation.pollIntervalMs,
    horizonSeconds: config.tokens.accessTtl + config.tokens.clockSkew,
    clockSkewSeconds: config.tokens.clockSkew,
  });
  const keys = new KeyRing({
    db,
    repo: repos.signingKeys,
    clock,
    log,
    region: config.region,
    alg: config.tokens.alg,
    secrets,
    activationDelaySeconds: config.keys.activationDelay,
    retireAfterSeconds: config.tokens.accessTtl + config.tokens.clockSkew,
    reloadIntervalMs: config.keys.reloadInterval * 1000,
  });
  const sessions = new SessionService({
    db,
    repo: sessionsRepo,
    codec: secrets ? new RefreshTokenCodec(secrets.refreshMacKeys()) : undefined,
    revocations,
    cache,
    cacheRepair: new CacheRepairJobs(jobs, log),
    clock,
    log,
    telemetry,
    region: config.region,
    refreshTtlSeconds: config.tokens.refreshTtl,
    graceSeconds: config.tokens.refreshGrace,
  });
  const users = new UserService({
    repo: repos.users,
    sessions,
    hasher: new PasswordHasher(config.hash, (op, seconds) => telemetry.passwordHash(op, seconds)),
    clock,
    log,
    telemetry,
    region: config.region,
  });
  const accessTokens = new AccessTokens({
    ring: keys,
    revocations,
    clock,
    issuer: config.tokens.issuer,
    audience: config.tokens.audience,
    alg: config.tokens.alg,
    ttlSeconds: config.tokens.accessTtl,
    skewSeconds: config.tokens.clockSkew,
    region: config.region,
  });
  // Profiles are the one thing Bearer routes read; a few seconds in process memory spare a Redis
  // round trip per request, and staleness cannot matter (see AuthService.me).
  // Its hits count as cache hits; its misses are not counted (the shared tier's outcome is).
  const localProfiles =
    cache.driver === 'redis'
      ? new MemoryCache({
          clock,
          userTtlSeconds: Math.min(config.cache.userTtl, 30),
          maxEntries: 50_000,
          onLookup: (kind, result) => {
            if (result === 'hit') telemetry.cacheLookup(kind, result);
          },
        })
      : undefined;
  const replicationRepo = repos.replication;
  const replication = new ReplicationService({
    repo: replicationRepo,
    config,
    clock,
    log,
    metrics: createReplicationMetrics(metrics.registry, () => (config.regions.peers.length > 0 ? replicationRepo.backlog() : Promise.resolve([]))),
    sessions,
    keys,
  });
  const auth = new AuthService({
    users,
    sessions,
    accessTokens,
    cache,
    ...(localProfiles ? { localProfiles } : {}),
    clock,
    telemetry,
    regions: replication,
  });

  // Counters live where the servers can share them: Redis (insured by PostgreSQL); PostgreSQL when
  // several processes run without Redis; this process's memory for a lone process (`authctl dev`).
  const limiterStore =
    cache.driver === 'redis' ? redisLimiterStore(config.cache, db.writer) : config.http.processes > 1 ? postgresLimiterStore(db.writer) : memoryLimiterStore();
  const throttle = new LoginThrottle({ config: config.rateLimit, store: limiterStore, log, registry: metrics.registry });

  // Later flows register their composers here, beside `test`.
  const composers = new MailComposers().register(testComposer);
  const templates = new MailTemplates(BUILTIN_TEMPLATES, () => composers.contracts(), config.mail.templatesDir);
  const mail: MailServices = {
    config: config.mail,
    mailer: createMailer(config.mail, log),
    composers,
    templates,
    messages: new MailMessages({ composers, templates, config: config.mail, region: config.region, clock }),
    outbox: new MailOutbox(jobs, composers, config.mail.transport),
    metrics: createMailMetrics(metrics.registry),
  };

  return {
    config,
    clock,
    log,
    metrics,
    requestContext,
    telemetry,
    usage,
    db,
    repos,
    cache,
    jobs,
    keys,
    revocations,
    sessions,
    users,
    auth,
    throttle,
    replication,
    limiterStore,
    mail,
  };
}
