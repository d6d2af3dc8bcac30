import type { Config } from './config/schema.js';
import { buildDataContainer, type DataContainer, type DataContainerOptions, type Repositories } from './data-container.js';
import type { Clock } from './platform/clock.js';
import type { Logger } from './platform/logger.js';
import { AuthService } from './core/auth/auth-service.js';
import { KeyRing } from './core/keys/key-ring.js';
import { ServerSecrets } from './core/keys/secrets.js';
import { RevocationList } from './core/sessions/revocation-list.js';
import { SessionService } from './core/sessions/session-service.js';
import { AccessTokens } from './core/tokens/access-tokens.js';
import { RefreshTokenCodec } from './core/tokens/refresh-token.js';
import { PasswordHasher } from './core/users/password-hasher.js';
import { UserService } from './core/users/user-service.js';
import { createMetrics, registerCollectors, type Metrics } from './platform/metrics.js';
import { RequestContextStore } from './platform/request-context.js';
import { Telemetry } from './core/telemetry.js';
import { UsageRecorder } from './core/usage/usage-recorder.js';
import { BatchApplier } from './core/replication/apply.js';
import { ReplicationBacklog } from './core/replication/backlog.js';
import { InboundReplication } from './core/replication/inbound.js';
import { LoginPolicy } from './core/replication/login-policy.js';
import { createReplicationMetrics } from './core/replication/metrics.js';
import { PeerRegistry } from './core/replication/peers.js';
import { RefreshProxy } from './core/replication/refresh-proxy.js';
import { ReplicationShipping } from './core/replication/shipper.js';
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
import { Admin } from './admin/admin.js';
import { ChallengeCodes } from './core/email/challenge-codes.js';
import { emailComposers } from './core/email/composers.js';
import { EmailFlows } from './core/email/email-flows.js';
import { EmailRequestJobs } from './jobs/email-requests.js';
import { SendLimits } from './security/send-limits.js';
import { ServiceClients } from './core/clients/service-clients.js';
import { MFA_TOKEN_KEY_PURPOSE, MfaTokens } from './core/mfa/mfa-tokens.js';
import { MfaFactors } from './core/mfa/mfa-factors.js';
import { OidcFlows } from './core/oidc/oidc-flows.js';
import { OIDC_CODE_KEY_PURPOSE, OIDC_STATE_KEY_PURPOSE } from './core/oidc/flow-seals.js';
import { IdentityAccounts } from './core/oidc/identity-accounts.js';
import { PASSKEY_CHALLENGE_KEY_PURPOSE, PasskeyChallenges } from './core/passkeys/challenges.js';
import { PASSKEY_DECOY_KEY_PURPOSE, Passkeys } from './core/passkeys/passkeys.js';
import { FailureFloorCalibration } from './core/users/failure-floor.js';

/** Every service of a region, on its {@link DataContainer} (database, repositories, import and export). */
export interface Container extends DataContainer {
  metrics: Metrics;
  /** Request id of the request being served, for every log line written while serving it. */
  requestContext: RequestContextStore;
  telemetry: Telemetry;
  /** Hourly usage counters in PostgreSQL for `authctl stats`: counted in memory, flushed every 10 s. */
  usage: UsageRecorder;
  cache: Cache;
  /** pg-boss producer (and, in `authctl worker`, consumer); connects on first use. */
  jobs: JobQueue;
  keys: KeyRing;
  revocations: RevocationList;
  sessions: SessionService;
  users: UserService;
  /** Keeps the password checks' failure floor in step with the foreign hashes stored (README "Password hash formats"). */
  failureFloor: FailureFloorCalibration;
  auth: AuthService;
  /** Brute-force limits on login, registration and password checks (src/security). */
  throttle: LoginThrottle;
  /** Multi-region (README "Regions"): one piece per job, see {@link Replication}. */
  replication: Replication;
  /** Login-limit counters (Redis, PostgreSQL or memory, by topology). */
  limiterStore: LimiterStore;
  /** The admin use cases the CLI runs: stats, users, sessions, token inspection, keys, cache, migrations. */
  admin: Admin;
  /** Outgoing mail: the outbox flows enqueue with, the composers by kind, the mailer workers send with. */
  mail: MailServices;
  /** Addresses: verification, password reset, address change (README "E-mail identity"). */
  emailFlows: EmailFlows;
  /** Service clients (the ClientService of src/core/clients): the credentials of `/oauth/introspect` and `/oauth/revoke`. */
  clients: ServiceClients;
  /** TOTP factors and recovery codes (README "TOTP and recovery codes"): enrolment and the second step's check. */
  mfa: MfaFactors;
  /** Sign-in through OpenID Connect providers (README "Sign in with Google and other providers"): the relying party's flows. */
  oidc: OidcFlows;
  /** Accounts' provider identities: who a provider sign-in is, linking and unlinking. */
  identities: IdentityAccounts;
  /** Passkeys: the WebAuthn ceremonies and users' passkeys. */
  passkeys: Passkeys;
}

export type { Repositories } from './data-container.js';

/**
 * Multi-region replication, one piece per job (each built here with its collaborators). A region
 * without peers has them too: they then list no peers, ship nothing and refuse every batch.
 */
export interface Replication {
  /** The peers of the config: `GET /v1/regions`, registering them in the database, admitting and authenticating their requests. */
  peers: PeerRegistry;
  /** `POST /internal/replication`: a peer's batch, authenticated, decoded and applied (through the one revocation path). */
  inbound: InboundReplication;
  /** Refreshes of sessions homed elsewhere, relayed to their home region (AuthService.refresh's collaborator). */
  refreshProxy: RefreshProxy;
  /** `regions.loginPolicy` (AuthService.login's collaborator). */
  loginPolicy: LoginPolicy;
  /** `authctl replication status|retry`: per-peer backlog and lag, re-queuing dead letters. */
  backlog: ReplicationBacklog;
  /** Ships this region's changes to its peers: started by the workers, stopped by shutdown. */
  shipping: ReplicationShipping;
}

export type ContainerOptions = Pick<DataContainerOptions, 'clock' | 'log' | 'logStream' | 'logSink'>;

/**
 * Builds every service of a region from its config: with src/data-container.ts (the database and
 * the repositories it builds on), the only place that `new`s infrastructure, repositories and
 * services, and wires them to each other. It starts nothing; start-up, background retries and
 * shutdown are src/runtime.ts.
 */
export function buildContainer(config: Config, options: ContainerOptions = {}): Container {
  const requestContext = new RequestContextStore();
  const metrics = createMetrics(config.region);
  const data = buildDataContainer(config, {
    ...options,
    requestContext,
    onQuery: (pool, seconds, ok) => metrics.dbQueryDuration.observe({ pool, outcome: ok ? 'ok' : 'error' }, seconds),
    onReaderFallback: (reason) => metrics.dbReaderFallbacks.inc({ reason }),
  });
  const { clock, log, db, repos } = data;
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
  const hasher = new PasswordHasher(config.hash, (op, seconds) => telemetry.passwordHash(op, seconds));
  const failureFloor = new FailureFloorCalibration({ hasher, samples: () => repos.stats.foreignHashSamples(), log });
  const users = new UserService({
    db,
    repo: repos.users,
    identity: config.identity,
    sessions,
    hasher,
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
  const mfa = new MfaFactors({
    db,
    factors: repos.mfaFactors,
    recoveryCodes: repos.mfaRecoveryCodes,
    users: repos.users,
    secrets,
    sessions,
    mode: config.identity.mfa,
    passkeys: config.identity.webauthn.enabled,
    issuer: config.mail.productName,
    clock,
    log,
    telemetry,
    region: config.region,
  });
  const clients = new ServiceClients({ repo: repos.serviceClients, clock, log, region: config.region });
  const replication = buildReplication(config, { repos, clock, log, metrics, sessions, keys, clients });
  const mfaTokens = new MfaTokens({
    keys: secrets?.macKeys(MFA_TOKEN_KEY_PURPOSE),
    repo: repos.mfaTokenUses,
    clock,
    region: config.region,
    ttlSeconds: config.identity.mfaTokenTtl,
  });
  const auth = new AuthService({
    db,
    mfaPolicy: config.identity.mfa,
    mfaTokens,
    mfa,
    users,
    sessions,
    accessTokens,
    cache,
    ...(localProfiles ? { localProfiles } : {}),
    clock,
    telemetry,
    loginPolicy: replication.loginPolicy,
    // Without peers every refresh is served here: no routing to pay for on each one.
    ...(config.regions.peers.length > 0 ? { refreshProxy: replication.refreshProxy } : {}),
  });

  // Counters live where the servers can share them: Redis (insured by PostgreSQL); PostgreSQL when
  // several processes run without Redis; this process's memory for a lone process (`authctl dev`).
  const limiterStore =
    cache.driver === 'redis' ? redisLimiterStore(config.cache, db.writer) : config.http.processes > 1 ? postgresLimiterStore(db.writer) : memoryLimiterStore();
  const throttle = new LoginThrottle({ config: config.rateLimit, store: limiterStore, log, registry: metrics.registry });

  // Each flow that sends mail registers its composers here, beside `test`.
  const codes = secrets ? new ChallengeCodes(secrets) : undefined;
  const composers = new MailComposers().register(testComposer);
  for (const composer of emailComposers({
    challenges: repos.emailChallenges,
    users: repos.users,
    codes,
    baseUrl: config.publicUrl ?? config.tokens.issuer,
    links: config.mail.links,
  }))
    composers.register(composer);
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
  const emailFlows = new EmailFlows({
    db,
    users: repos.users,
    challenges: repos.emailChallenges,
    codes,
    sessions,
    hasher,
    mail: mail.outbox,
    requests: new EmailRequestJobs(jobs),
    limits: new SendLimits({ config: config.identity, enabled: config.rateLimit.enabled, store: limiterStore, log, registry: metrics.registry }),
    identity: config.identity,
    clock,
    log,
    telemetry,
    region: config.region,
    profileChanged: (userId) => auth.forgetProfile(userId),
  });
  users.setHooks(emailFlows);
  const identities = new IdentityAccounts({
    db,
    identities: repos.identities,
    users: repos.users,
    passkeys: repos.passkeys,
    sessions,
    identity: config.identity,
    hooks: emailFlows,
    clock,
    log,
    telemetry,
    region: config.region,
  });
  const passkeys = new Passkeys({
    db,
    repo: repos.passkeys,
    users: repos.users,
    identities: repos.identities,
    challenges: new PasskeyChallenges({ keys: secrets?.macKeys(PASSKEY_CHALLENGE_KEY_PURPOSE), uses: repos.mfaTokenUses, clock, region: config.region }),
    webauthn: config.identity.webauthn,
    productName: config.mail.productName,
    email: config.identity.email,
    decoyKey: secrets?.macKeys(PASSKEY_DECOY_KEY_PURPOSE)[0],
    auth,
    sessions,
    mfa,
    accessTokens,
    clock,
    log,
    telemetry,
    region: config.region,
  });
  const admin = new Admin({
    config,
    clock,
    db,
    stats: repos.stats,
    usage: repos.usage,
    cache,
    jobs,
    keys,
    accessTokens,
    users,
    sessions,
    mfa,
    identities,
    passkeys,
    export: data.exporter,
  });
  const oidc = new OidcFlows({
    config,
    stateKeys: secrets?.macKeys(OIDC_STATE_KEY_PURPOSE),
    codeKeys: secrets?.macKeys(OIDC_CODE_KEY_PURPOSE),
    uses: repos.mfaTokenUses,
    identities,
    auth,
    users,
    accessTokens,
    clock,
    region: config.region,
    telemetry,
    log,
  });

  return {
    ...data,
    metrics,
    requestContext,
    telemetry,
    usage,
    cache,
    jobs,
    keys,
    revocations,
    sessions,
    users,
    failureFloor,
    auth,
    throttle,
    replication,
    limiterStore,
    admin,
    mail,
    emailFlows,
    clients,
    mfa,
    oidc,
    passkeys,
    identities,
  };
}

/** The pieces of {@link Replication}, each given what it works with. */
function buildReplication(
  config: Config,
  deps: { repos: Repositories; clock: Clock; log: Logger; metrics: Metrics; sessions: SessionService; keys: KeyRing; clients: ServiceClients },
): Replication {
  const { repos, clock, log, sessions, keys, clients } = deps;
  const { outbox } = repos;
  const metrics = createReplicationMetrics(deps.metrics.registry, () => (config.regions.peers.length > 0 ? outbox.backlog() : Promise.resolve([])));
  const peers = new PeerRegistry({ region: config.region, publicUrl: config.publicUrl, peers: config.regions.peers, outbox, clock, log });
  return {
    peers,
    inbound: new InboundReplication({
      peers,
      applier: new BatchApplier(repos.replicationApply),
      sessions,
      keys,
      clients,
      metrics,
      clock,
      log,
      batchSize: config.regions.batchSize,
    }),
    refreshProxy: new RefreshProxy({ region: config.region, peers, timeoutMs: config.regions.proxyTimeoutMs, metrics, log }),
    loginPolicy: new LoginPolicy({ region: config.region, policy: config.regions.loginPolicy, peers }),
    backlog: new ReplicationBacklog({ outbox, peers, clock, log }),
    shipping: new ReplicationShipping({ outbox, applied: repos.replicationApply, peers, config, clock, log, metrics }),
  };
}
