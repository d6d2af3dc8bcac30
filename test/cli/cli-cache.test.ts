import { expect } from 'chai';
import { buildContainer, type Container } from '../../src/container.js';
import { testConfig } from '../helpers/app.js';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';
import { deleteKeys, REDIS_URL, uniquePrefix } from '../helpers/redis-server.js';
import { describeRun, expectJson, expectJsonError, runCli, type CliOptions } from './run-cli.js';
import { migrate, shutdown, startBackground } from '../../src/runtime.js';
import { loginTokens } from '../helpers/assert.js';

describe('authctl cache', function () {
  let db: TestDatabase;
  let container: Container;
  const prefix = uniquePrefix('cli-cache');
  const redisEnv = { AUTHCTL_REDIS_URL: REDIS_URL, AUTHCTL_CACHE_PREFIX: prefix };
  const cli = (args: string[], options: CliOptions = {}) => runCli(args, { databaseUrl: db.url, ...options, env: { ...redisEnv, ...options.env } });
  let sessionId: string;

  before(async function () {
    db = await createTestDatabase('cli_cache');
    container = buildContainer(testConfig(db.url, { cache: { redisUrl: REDIS_URL, keyPrefix: prefix } }));
    await migrate(container);
    await startBackground(container);
    await container.users.register('cachey', 'cachey-long-passphrase');
    const tokens = await loginTokens(container.auth, 'cachey', 'cachey-long-passphrase', {});
    sessionId = tokens.sessionId;
    // A revocation marks the session in the shared cache (off the response path: wait for it).
    await container.auth.logout(await container.auth.authenticate(tokens.accessToken));
    for (let i = 0; i < 50 && !(await container.cache.getSession(sessionId))?.revokedAt; i++) await new Promise((r) => setTimeout(r, 20));
    await container.cache.putUser({
      id: tokens.user.id,
      username: 'cachey',
      email: null,
      emailVerified: false,
      homeRegion: 'local',
      createdAt: tokens.user.createdAt,
    });
  });

  after(async function () {
    await shutdown(container);
    await deleteKeys(REDIS_URL, prefix);
    await db?.drop();
  });

  it('stats --json reports the Redis driver, health and the keys under this prefix', async function () {
    const stats = expectJson<{ driver: string; health: string; keys: { sessions: number; users: number }; memoryBytes: number; hitRatio: number | null }>(
      await cli(['cache', 'stats', '--json']),
      0,
    );
    expect(stats.driver).to.equal('redis');
    expect(stats.health).to.equal('ok');
    expect(stats.keys).to.deep.equal({ sessions: 1, users: 1 });
    expect(stats.memoryBytes).to.be.above(0);
  });

  it('inspect --json shows a cached session with its revocation and TTL; an unknown one exits 3', async function () {
    const body = expectJson<{ session: { id: string; revokedAt: number | null; expiresAt: number }; ttlSeconds: number }>(
      await cli(['cache', 'inspect', sessionId, '--json']),
      0,
    );
    expect(body.session.id).to.equal(sessionId);
    expect(body.session.revokedAt).to.be.a('number');
    expect(body.ttlSeconds).to.be.within(1_209_000, 1_209_600);
    expectJsonError(await cli(['cache', 'inspect', '00000000-0000-7000-8000-000000000000', '--json']), 3, 'not_found');
  });

  it('flush --json deletes this prefix only, and stats then counts nothing', async function () {
    const flushed = expectJson<{ deleted: number }>(await cli(['cache', 'flush', '--json']), 0);
    expect(flushed.deleted).to.equal(2);
    const stats = expectJson<{ keys: { sessions: number; users: number } }>(await cli(['cache', 'stats', '--json']), 0);
    expect(stats.keys).to.deep.equal({ sessions: 0, users: 0 });
  });

  it('an unreachable Redis exits 69 with a message naming AUTHCTL_REDIS_URL', async function () {
    const result = await cli(['cache', 'stats'], { env: { AUTHCTL_REDIS_URL: 'redis://127.0.0.1:1' } });
    expect(result.code, describeRun(result)).to.equal(69);
    expect(result.stderr).to.contain('AUTHCTL_REDIS_URL');
    // The hint is about Redis, not the database.
    expect(result.stderr).not.to.contain('PostgreSQL');
  });
});
