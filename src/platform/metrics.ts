import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';

/**
 * Every application metric, in one registry per container (not prom-client's global one), so
 * several servers can share a process in tests. Names follow Prometheus conventions (base units,
 * `_total` for counters); every label has a small, fixed set of values.
 */
export function createMetrics(region: string) {
  const registry = new Registry();
  registry.setDefaultLabels({ region });
  collectDefaultMetrics({ register: registry, prefix: 'authctl_' });
  const registers = [registry];
  return {
    registry,
    /**
     * The Prometheus exposition of this process — or, in a cluster worker, of the whole server
     * (every process, aggregated by the primary: see src/cluster.ts).
     */
    render: (): Promise<string> => registry.metrics(),
    httpDuration: new Histogram({
      name: 'authctl_http_request_duration_seconds',
      help: 'HTTP request duration by method, route template and status code.',
      labelNames: ['method', 'route', 'status'] as const,
      buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
      registers,
    }),
    logins: new Counter({
      name: 'authctl_logins_total',
      help: 'Login attempts by result (success, invalid_credentials, account_disabled).',
      labelNames: ['result'] as const,
      registers,
    }),
    registrations: new Counter({
      name: 'authctl_registrations_total',
      help: 'Registrations by result (success, username_taken, weak_password, invalid_request).',
      labelNames: ['result'] as const,
      registers,
    }),
    tokensIssued: new Counter({
      name: 'authctl_tokens_issued_total',
      help: 'Tokens issued by type (access, refresh).',
      labelNames: ['type'] as const,
      registers,
    }),
    refreshes: new Counter({
      name: 'authctl_refreshes_total',
      help: 'Refresh attempts by result: rotated, grace (retry answered with the same token), invalid, reused (reuse detected: session revoked).',
      labelNames: ['result'] as const,
      registers,
    }),
    sessionsRevoked: new Counter({
      name: 'authctl_sessions_revoked_total',
      help: 'Sessions revoked by reason.',
      labelNames: ['reason'] as const,
      registers,
    }),
    cacheLookups: new Counter({
      name: 'authctl_cache_lookups_total',
      help: 'Cache lookups by kind (session, user) and result (hit, miss, error).',
      labelNames: ['kind', 'result'] as const,
      registers,
    }),
    dbQueryDuration: new Histogram({
      name: 'authctl_db_query_duration_seconds',
      help: 'PostgreSQL query duration by pool (writer, reader) and outcome (ok, error).',
      labelNames: ['pool', 'outcome'] as const,
      buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1],
      registers,
    }),
    dbReaderFallbacks: new Counter({
      name: 'authctl_db_reader_fallbacks_total',
      help: 'Reads meant for the read replica that the writer answered, by reason: error (the replica failed the read), degraded (skipped while degraded).',
      labelNames: ['reason'] as const,
      registers,
    }),
    oidcFailures: new Counter({
      name: 'authctl_oidc_failures_total',
      help: 'Provider sign-ins that failed, by provider and reason (an error code: invalid_id_token, provider_unavailable, identity_not_linked…).',
      labelNames: ['provider', 'reason'] as const,
      registers,
    }),
    mfaVerifications: new Counter({
      name: 'authctl_mfa_verifications_total',
      help: 'Second-factor checks by factor (totp, recovery_code) and result (success, failure).',
      labelNames: ['factor', 'result'] as const,
      registers,
    }),
    passkeyCeremonies: new Counter({
      name: 'authctl_passkey_ceremonies_total',
      help: 'Passkey ceremonies finished, by ceremony (register, login, mfa, reauthenticate) and result (success, failure).',
      labelNames: ['ceremony', 'result'] as const,
      registers,
    }),
    passwordHashDuration: new Histogram({
      name: 'authctl_password_hash_duration_seconds',
      help: 'argon2id duration by operation (hash, verify).',
      labelNames: ['op'] as const,
      buckets: [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
      registers,
    }),
  };
}

export type Metrics = ReturnType<typeof createMetrics>;

export interface CollectorSources {
  cacheUp(): boolean;
  /** Connections per pool: used, free, pending acquisitions. */
  pools(): Array<{ pool: string; used: number; free: number; pending: number }>;
  /** Active sessions; may be slow, so it is called at most every `slowEveryMs`. */
  activeSessions(): Promise<number>;
  /** Jobs per queue and state; `undefined` when the queue is not installed or unreachable. */
  queueDepth(): Promise<Record<string, { queued: number; active: number; failed: number }> | undefined>;
}

/**
 * Gauges computed at scrape time. The two that query PostgreSQL are cached for `slowEveryMs`,
 * so a scrape every few seconds costs at most one session count (an estimate on a large table) and
 * one pg-boss stats query per period.
 */
export function registerCollectors(metrics: Metrics, sources: CollectorSources, slowEveryMs = 30_000): void {
  const registers = [metrics.registry];
  const cached = <T>(load: () => Promise<T>) => {
    let at = 0;
    let value: Promise<T> | undefined;
    return () => {
      if (!value || Date.now() - at > slowEveryMs) {
        at = Date.now();
        value = load();
      }
      return value;
    };
  };
  const activeSessions = cached(() => sources.activeSessions().catch(() => undefined));
  const queueDepth = cached(() => sources.queueDepth().catch(() => undefined));

  new Gauge({
    name: 'authctl_cache_up',
    help: '1 while the cache is usable, 0 while the region runs on PostgreSQL alone.',
    registers,
    collect() {
      this.set(sources.cacheUp() ? 1 : 0);
    },
  });
  new Gauge({
    name: 'authctl_cache_hit_ratio',
    help: 'Cache hits / lookups since start, by kind.',
    labelNames: ['kind'] as const,
    registers,
    async collect() {
      const { values } = await metrics.cacheLookups.get();
      const totals: Record<string, { hit: number; all: number }> = {};
      for (const v of values) {
        const kind = String(v.labels.kind);
        const t = (totals[kind] ??= { hit: 0, all: 0 });
        t.all += v.value;
        if (v.labels.result === 'hit') t.hit += v.value;
      }
      for (const [kind, t] of Object.entries(totals)) if (t.all > 0) this.set({ kind }, t.hit / t.all);
    },
  });
  new Gauge({
    name: 'authctl_db_pool_connections',
    help: 'PostgreSQL pool connections by pool and state (used, free, pending acquisitions).',
    labelNames: ['pool', 'state'] as const,
    registers,
    collect() {
      for (const p of sources.pools()) {
        this.set({ pool: p.pool, state: 'used' }, p.used);
        this.set({ pool: p.pool, state: 'free' }, p.free);
        this.set({ pool: p.pool, state: 'pending' }, p.pending);
      }
    },
  });
  new Gauge({
    name: 'authctl_active_sessions',
    help: "Sessions neither revoked nor expired (refreshed at most every 30 s; from 100,000 on, PostgreSQL's estimate).",
    registers,
    async collect() {
      const value = await activeSessions();
      if (value !== undefined) this.set(value);
    },
  });
  new Gauge({
    name: 'authctl_job_queue_depth',
    help: 'Jobs per queue and state (queued, active, failed); refreshed at most every 30 s.',
    labelNames: ['queue', 'state'] as const,
    registers,
    async collect() {
      const depth = await queueDepth();
      for (const [queue, d] of Object.entries(depth ?? {})) {
        this.set({ queue, state: 'queued' }, d.queued);
        this.set({ queue, state: 'active' }, d.active);
        this.set({ queue, state: 'failed' }, d.failed);
      }
    },
  });
}
