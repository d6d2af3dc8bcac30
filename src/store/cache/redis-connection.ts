import { Cluster, Redis, type ClusterOptions, type RedisOptions } from 'ioredis';

export type RedisClient = Redis | Cluster;

export interface RedisConnectionOptions {
  /** The URL names one seed node of a Redis Cluster (`cache.cluster`). */
  cluster: boolean;
  /** Bounds every command, including ioredis's own retries while a cluster fails over. */
  commandTimeoutMs: number;
  /** Queue commands while (re)connecting: only a subscriber wants this, so its SUBSCRIBE waits. */
  offlineQueue?: boolean;
  keyPrefix?: string;
}

/** Keep trying every 0.1–2 s for as long as it takes: the region works on PostgreSQL meanwhile. */
const retryDelay = (times: number): number => Math.min(times * 100, 2_000);

/**
 * A connection to the region's Redis — one server, or a Redis Cluster through one seed node — set
 * up the way authctl uses Redis: best effort. Commands never wait in a queue while Redis is away
 * and never outlive `commandTimeoutMs`, so callers fall back (to PostgreSQL) instead of stalling;
 * reconnection is automatic and endless. `rediss:` turns TLS on (for every node of a cluster).
 */
export function connectRedis(url: string, opts: RedisConnectionOptions): RedisClient {
  const node: RedisOptions = {
    maxRetriesPerRequest: 0,
    commandTimeout: opts.commandTimeoutMs,
    connectTimeout: 2_000,
    // ioredis arms this timer even for a socket that already failed, and it holds the process
    // open: keep it short so a CLI exits promptly when Redis is down.
    disconnectTimeout: 200,
    ...(opts.keyPrefix ? { keyPrefix: opts.keyPrefix } : {}),
  };
  if (!opts.cluster) return new Redis(url, { ...node, enableOfflineQueue: opts.offlineQueue ?? false, retryStrategy: retryDelay });
  return connectCluster(new URL(url), node, opts);
}

function connectCluster(seed: URL, node: RedisOptions, opts: RedisConnectionOptions): Cluster {
  const tls = seed.protocol === 'rediss:';
  const seeds = [{ host: seed.hostname, port: Number(seed.port || 6379) }];
  // Every node the cluster last reported. ioredis reconnects from its startup nodes only: with the
  // seed alone, a region whose seed node died (failed over) would never reconnect after the next
  // disconnection of the whole pool.
  let known = seeds;
  const options: ClusterOptions = {
    enableOfflineQueue: opts.offlineQueue ?? false,
    ...(opts.keyPrefix ? { keyPrefix: opts.keyPrefix } : {}),
    clusterRetryStrategy(this: Cluster, times: number) {
      (this as unknown as { startupNodes: typeof known }).startupNodes = known;
      return retryDelay(times);
    },
    // A command to a master that just died: ioredis retries it (MOVED, CLUSTERDOWN, a closed
    // connection) every 100 ms, at most 16 times, but commandTimeout ends it first, so a request
    // waits at most that long before its fallback. A promoted replica answers after one MOVED.
    maxRedirections: 16,
    retryDelayOnFailover: 100,
    retryDelayOnClusterDown: 100,
    retryDelayOnTryAgain: 100,
    // Each node tried for the slot map gets this long; a dead one must not hold up the refresh.
    slotsRefreshTimeout: 1_000,
    // Re-read the slot map every 5 s even without a MOVED, so `cache stats`/`flush` and the
    // subscriber see a promotion on an idle connection too.
    slotsRefreshInterval: 5_000,
    // Managed TLS clusters (ElastiCache) present certificates for the node names, not addresses.
    ...(tls ? { dnsLookup: (address: string, callback: (err: null, address: string) => void) => callback(null, address) } : {}),
    redisOptions: {
      ...node,
      ...(seed.username ? { username: decodeURIComponent(seed.username) } : {}),
      ...(seed.password ? { password: decodeURIComponent(seed.password) } : {}),
      ...(tls ? { tls: {} } : {}),
    },
  };
  const cluster = new Cluster(seeds, options);
  cluster.on('refresh', () => {
    const nodes = cluster.nodes('all').map((n) => ({ host: n.options.host ?? seed.hostname, port: n.options.port ?? 6379 }));
    if (nodes.length > 0) known = [...seeds, ...nodes.filter((n) => n.host !== seeds[0]!.host || n.port !== seeds[0]!.port)];
  });
  return cluster;
}

/** The masters to visit for a scan of the whole keyspace: each holds its own slots. */
export async function mastersOf(client: RedisClient): Promise<Redis[]> {
  if (!(client instanceof Cluster)) return [client];
  // A fresh slot map: after a failover the old master may still be in the pool.
  await new Promise<void>((resolve, reject) => client.refreshSlotsCache((err) => (err ? reject(err) : resolve())));
  return client.nodes('master');
}
