import type { Container } from './container.js';
import type { InstallResult } from './jobs/job-queue.js';
import { AppError } from './platform/errors.js';

/** Warm-up retries of containers whose signing key could not be loaded at start. */
const warmUpRetries = new WeakMap<Container, NodeJS.Timeout>();

/** `authctl migrate`: authctl's tables, the peers of the config, then pg-boss's schema and queues. */
export async function migrate(c: Container): Promise<{ batch: number; applied: string[]; jobs: InstallResult }> {
  const result = await c.db.migrateLatest();
  if (c.config.regions.peers.length > 0) await c.replication.peers.syncPeers();
  return { ...result, jobs: await c.jobs.install() };
}

/**
 * Loads keys, revocations and service clients and starts their background refresh (servers only).
 *
 * Best effort: a server must come up while the database is down and finish loading by itself
 * once it returns (retried every poll interval until it succeeds). It starts warm when Redis
 * answers quickly, and never waits long for it (the region works without).
 */
export async function startBackground(c: Container): Promise<void> {
  const { cache, clients, config, keys, log, revocations, replication, usage } = c;
  await cache.ready(1_000);
  // Revocations from the region's other servers arrive by pub/sub within milliseconds.
  await cache.onRevoked((revoked) => revocations.add(revoked));
  cache.onHealthChange((health) => {
    if (health === 'ok') {
      log.info('cache is back', { event: 'cache.recovered' });
      // Warm the negative cache with what was revoked while it was away.
      void cache.markRevoked(revocations.recent());
    } else {
      log.warn('cache unavailable: running on PostgreSQL alone', { event: 'cache.degraded' });
    }
  });
  if (config.regions.peers.length > 0)
    await replication.peers.syncPeers().catch((err: unknown) => log.warn('peers not registered yet', { event: 'replication.error', err }));
  const warmUp = () => keys.ensureSigningKey();
  await Promise.allSettled([warmUp(), revocations.poll(), clients.load(), c.failureFloor.refresh()]);
  c.failureFloor.start();
  revocations.start();
  keys.start();
  clients.start();
  usage.start();
  if (!keys.ready) {
    const retry = setInterval(() => {
      warmUp()
        .then(() => {
          clearInterval(retry);
          warmUpRetries.delete(c);
        })
        .catch(() => undefined);
    }, config.revocation.pollIntervalMs);
    retry.unref();
    warmUpRetries.set(c, retry);
  }
}

/**
 * Refuses to run a process whose server secret cannot unseal the key that signs now (exit 78):
 * it would pass its health checks and then fail every login and refresh, or (a worker) mail codes
 * and links the servers refuse. Decided only when the keys have loaded: a server that started
 * while PostgreSQL was down reports it in /readyz (`signingKeys: unsealable`) once they load.
 */
export function assertSecretOpensKeys(c: Pick<Container, 'keys'>): void {
  if (c.keys.signingHealth() === 'unsealable') throw new AppError('bad_config', c.keys.unsealableDetail());
}

/**
 * Stops every background loop and closes every connection of the container, in dependency order:
 * shipping and polling first, then the queues, the cache, the limiter store and last the database
 * they all write to. Accepts `undefined` (a command that never built its container).
 */
export async function shutdown(c: Container | undefined): Promise<void> {
  if (!c) return;
  const retry = warmUpRetries.get(c);
  if (retry) clearInterval(retry);
  warmUpRetries.delete(c);
  await c.replication.shipping.stop();
  c.revocations.stop();
  c.failureFloor.stop();
  c.keys.stop();
  c.clients.stop();
  await c.usage.stop();
  await c.jobs.stop();
  c.mail.mailer?.close();
  await c.cache.close();
  await c.limiterStore.close();
  await c.db.close();
}
