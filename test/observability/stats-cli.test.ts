import { expect } from 'chai';
import { buildContainer, type Container } from '../../src/container.js';
import type { StatsReport } from '../../src/admin/stats.js';
import { hourOf } from '../../src/core/usage/usage-recorder.js';
import { Db } from '../../src/store/pg/db.js';
import { UsageRepo } from '../../src/store/pg/usage-repo.js';
import { testConfig } from '../helpers/app.js';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';
import { deleteKeys, freePort, REDIS_URL, uniquePrefix } from '../helpers/redis-server.js';
import { describeRun, expectJson, expectJsonError, expectNoStackTrace, runCli, type CliOptions } from '../cli/run-cli.js';
import { migrate, shutdown, startBackground } from '../../src/runtime.js';
import { loginTokens } from '../helpers/assert.js';
import bcrypt from '@node-rs/bcrypt';
import { fromKeycloak, keycloakCredential } from '../security/hash-fixtures.js';
import { FOREIGN_HASH_SQL, HASH_CLASS_SQL } from '../../src/store/pg/hash-classes.js';
import { countByFormat } from '../../src/core/users/hash-formats.js';
import { eventually } from '../regions/support.js';

const H = 3_600_000;
const SECTIONS = ['Users', 'Sessions', 'Last hour', 'Last 24 h', 'Cache', 'Database', 'Queues'];
const METRICS = ['logins', 'login_failures', 'registrations', 'refreshes', 'reuse_detections', 'revocations'];

// `authctl stats --json` prints the report itself, its dates as ISO strings.
type Json<T> = T extends Date ? string : T extends object ? { [K in keyof T]: Json<T[K]> } : T;
type Report = Json<StatsReport>;

describe('authctl stats', function () {
  let db: TestDatabase;
  let container: Container;
  const prefix = uniquePrefix('cli-stats');
  const redisEnv = { AUTHCTL_REDIS_URL: REDIS_URL, AUTHCTL_CACHE_PREFIX: prefix };
  const cli = (args: string[], options: CliOptions = {}) => runCli(args, { databaseUrl: db.url, ...options, env: { ...redisEnv, ...options.env } });
  let seededAt: number;

  before(async function () {
    db = await createTestDatabase('cli_stats');
    container = buildContainer(testConfig(db.url, { cache: { redisUrl: REDIS_URL, keyPrefix: prefix } }));
    await migrate(container);
    await startBackground(container);
    for (const name of ['alice', 'bob', 'carol', 'dave']) await container.users.register(name, `${name}-stats-passphrase`);
    // Imported users not logged in since: dave and erin with bcrypt hashes (two costs), frank with a Keycloak one, grace with a string of no known format.
    const hashes: Record<string, string> = {
      dave: await bcrypt.hash('dave-stats-passphrase', { cost: 4 }),
      erin: await bcrypt.hash('erin-stats-passphrase', { cost: 5, version: '2y' }),
      frank: fromKeycloak(keycloakCredential('frank-stats-passphrase')),
      grace: 'md5$salt$5f4dcc3b5aa765d61d8327deb882cf99',
    };
    for (const name of ['erin', 'frank', 'grace']) await container.users.register(name, `${name}-stats-passphrase`);
    for (const [name, hash] of Object.entries(hashes)) await container.db.writer('users').where({ username: name }).update({ password_hash: hash });
    const login = (name: string) => loginTokens(container.auth, name, `${name}-stats-passphrase`, { userAgent: 'stats-test' });
    const alice1 = await login('alice');
    await login('alice');
    await login('bob');
    await login('carol');
    // Revoked within 24 h: alice's first session (logout) and carol's (disabled).
    await container.auth.logout(await container.auth.authenticate(alice1.accessToken));
    await container.users.setStatus('carol', 'disabled');
    // Live sessions: alice's second and bob's.

    // The logins above were counted by this container's own recorder, which flushes every 10 s:
    // save them now and start from no usage at all, so the figures below are only the seeded ones
    // however long the file takes.
    await container.usage.flush();
    await container.db.writer.raw('delete from usage_hourly');
    // Usage rows as the servers' recorders would have written them (the wiring is elsewhere).
    seededAt = Date.now();
    const now = hourOf(seededAt).getTime();
    const usage = new UsageRepo(container.db);
    await usage.add('local', [
      { hour: new Date(now), metric: 'logins', count: 5 },
      { hour: new Date(now), metric: 'login_failures', count: 2 },
      { hour: new Date(now), metric: 'refreshes', count: 7 },
      { hour: new Date(now - H), metric: 'reuse_detections', count: 1 },
      { hour: new Date(now - 3 * H), metric: 'logins', count: 11 },
      { hour: new Date(now - 3 * H), metric: 'registrations', count: 4 },
      { hour: new Date(now - 3 * H), metric: 'revocations', count: 6 },
      // Outside the 24 h window.
      { hour: new Date(now - 30 * H), metric: 'logins', count: 100 },
    ]);
    // Another region sharing the database is not this region's traffic.
    await usage.add('eu', [{ hour: new Date(now), metric: 'logins', count: 1_000 }]);

    // Queue depth: a cache-sync job nobody works.
    await container.jobs.send('cache-sync', { sessionIds: [] });
  });

  after(async function () {
    await shutdown(container);
    await deleteKeys(REDIS_URL, prefix);
    await db?.drop();
  });

  it('--json reports users, sessions, usage windows, cache, database load and queue depth', async function () {
    const result = await cli(['stats', '--json']);
    const r = expectJson<Report>(result, 0);
    const finishedAt = Date.now();

    expect(Object.keys(r).sort()).to.deep.equal([
      'cache',
      'database',
      'estimated',
      'generatedAt',
      'queues',
      'region',
      'sessions',
      'usage',
      'users',
      'warnings',
    ]);
    expect(r.region).to.equal('local');
    expect(Date.parse(r.generatedAt)).to.be.within(seededAt, finishedAt);
    expect(r.users).to.deep.equal({ total: 7, disabled: 1, foreignHashes: { bcrypt: 2, 'pbkdf2-sha256': 1, unrecognized: 1 } });
    expect(r.sessions).to.deep.equal({ active: 2, revokedLast24h: 2 });
    expect(r.estimated, 'small tables are counted').to.deep.equal([]);

    // Whole-hour windows: the previous hour and this one; the 24 hours before this one and this one.
    const generated = Date.parse(r.generatedAt);
    expect(r.usage, describeRun(result)).to.not.equal(null);
    expect(r.usage!.lastHour.since).to.equal(hourOf(generated - H).toISOString());
    expect(r.usage!.last24h.since).to.equal(hourOf(generated - 24 * H).toISOString());
    expect(r.usage!.lastHour.counts).to.deep.equal({ logins: 5, login_failures: 2, registrations: 0, refreshes: 7, reuse_detections: 1, revocations: 0 });
    expect(r.usage!.last24h.counts).to.deep.equal({ logins: 16, login_failures: 2, registrations: 4, refreshes: 7, reuse_detections: 1, revocations: 6 });
    expect(Object.keys(r.usage!.lastHour.counts)).to.have.members(METRICS);

    expect(r.cache.driver).to.equal('redis');
    expect(r.cache.health).to.equal('ok');
    expect(r.cache.keys).to.be.an('object');
    expect(r.cache.keys!.sessions).to.be.a('number').and.at.least(0);
    expect(r.cache.keys!.users).to.be.a('number').and.at.least(0);
    expect(r.cache.memoryBytes).to.be.a('number').and.above(0);
    expect(r.cache.hits).to.be.a('number');
    expect(r.cache.misses).to.be.a('number');
    if (r.cache.hitRatio !== null) expect(r.cache.hitRatio).to.be.within(0, 1);

    expect(r.database.name).to.equal(db.name);
    expect(r.database.sizeBytes).to.be.above(1_000_000);
    expect(r.database.connections).to.be.at.least(1);
    expect(r.database.maxConnections).to.be.at.least(r.database.connections);
    expect(r.database.activeQueries).to.be.a('number').and.at.least(0);
    expect(r.database.idleInTransaction).to.be.a('number').and.at.least(0);
    expect(r.database.xactCommit).to.be.above(10);
    expect(r.database.xactRollback).to.be.a('number').and.at.least(0);
    expect(r.database.deadlocks).to.equal(0);
    expect(r.database.blocksHitRatio).to.be.within(0, 1);

    expect(r.queues, describeRun(result)).to.not.equal(null);
    expect(Object.keys(r.queues!.depth)).to.have.members(['cleanup', 'cache-sync', 'mail', 'email-request', 'dead-letter']);
    expect(r.queues!.depth['cache-sync']).to.deep.include({ queued: 1, active: 0, failed: 0 });
    expect(r.queues!.depth.cleanup).to.deep.include({ queued: 0, active: 0 });
    expect(r.queues!.deadLettered).to.equal(0);
    expect(r.warnings).to.deep.equal([]);
  });

  it('foreign hashes are counted on users_foreign_hash_idx, which holds only them (no read of the whole table at any size)', async function () {
    const plans = await container.db.writer.transaction(async (trx) => {
      // The test table is tiny, so the planner would rather read it: make it show that it can use the index.
      await trx.raw('set local enable_seqscan = off');
      const explain = async (sql: string) =>
        (await trx.raw<{ rows: Array<{ 'QUERY PLAN': string }> }>(`explain ${sql}`)).rows.map((r) => r['QUERY PLAN']).join('\n');
      return [
        await explain(`select ${HASH_CLASS_SQL}, count(*) from users where ${FOREIGN_HASH_SQL} group by 1`),
        await explain(`select distinct on (${HASH_CLASS_SQL}) password_hash from users where ${FOREIGN_HASH_SQL} order by ${HASH_CLASS_SQL}`),
      ];
    });
    for (const plan of plans) expect(plan).to.contain('users_foreign_hash_idx');
    // A successful password check (what a login makes, without counting one) replaces the hash, and the user leaves the count.
    await container.users.authenticate('dave', 'dave-stats-passphrase');
    await eventually('dave rehashed', async () => (countByFormat(await container.repos.stats.foreignHashCounts()).bcrypt === 1 ? true : undefined));
    expect(countByFormat(await container.repos.stats.foreignHashCounts())).to.deep.equal({ bcrypt: 1, 'pbkdf2-sha256': 1, unrecognized: 1 });
    // Back as it was for the tests below.
    await container.db
      .writer('users')
      .where({ username: 'dave' })
      .update({ password_hash: await bcrypt.hash('dave-stats-passphrase', { cost: 4 }) });
  });

  it('human output: one section each, aligned, with the numbers', async function () {
    const result = await cli(['stats']);
    expect(result.code, describeRun(result)).to.equal(0);
    const lines = result.stdout.split('\n');
    const sectionLines = SECTIONS.map((title) => lines.findIndex((l) => l.startsWith(title)));
    for (const [i, title] of SECTIONS.entries()) expect(sectionLines[i], `section ${title}\n${result.stdout}`).to.be.at.least(0);
    expect(
      [...sectionLines].sort((a, b) => a - b),
      'sections in order',
    ).to.deep.equal(sectionLines);
    const value = (section: string, label: string) => {
      const start = lines.findIndex((l) => l.startsWith(section));
      const line = lines.slice(start + 1).find((l) => l.trimStart().startsWith(label));
      return line?.slice(line.indexOf(label) + label.length).trim();
    };
    expect(value('Users', 'total')).to.equal('7');
    expect(value('Users', 'disabled')).to.equal('1');
    expect(value('Users', 'foreign hashes')).to.equal('bcrypt 2, pbkdf2-sha256 1, unrecognized 1');
    expect(value('Sessions', 'active')).to.equal('2');
    expect(result.stdout).to.not.contain('≈');
    expect(value('Last hour', 'logins')).to.match(/^5\s+failed 2$/);
    expect(value('Last 24 h', 'logins')).to.match(/^16\s+failed 2$/);
    expect(value('Cache', 'driver')).to.equal('redis (ok)');
    expect(value('Queues', 'cache-sync')).to.match(/^1\s+0\s+0$/);
    // Aligned: every value column of the key/value rows starts at the same place.
    const rows = lines.slice(0, sectionLines[SECTIONS.indexOf('Queues')]).filter((l) => /^ {2}\S/.test(l));
    expect(rows.length).to.be.above(20);
    const columns = new Set(rows.map((l) => /^ {2}\S.*?\s{2,}(?=\S)/.exec(l)?.[0].length));
    expect([...columns], result.stdout).to.have.length(1);
    expect(result.stderr).to.equal('');
  });

  it('Redis unreachable: still exits 0, the cache reported degraded with nulls', async function () {
    this.timeout(20_000);
    const result = await cli(['stats', '--json'], { env: { AUTHCTL_REDIS_URL: `redis://127.0.0.1:${await freePort()}` } });
    const r = expectJson<Report>(result, 0);
    expect(r.cache).to.deep.equal({ driver: 'redis', health: 'degraded', hitRatio: null, hits: null, misses: null, keys: null, memoryBytes: null });
    expect(r.warnings.join('\n')).to.match(/cache/i);
    // Everything from PostgreSQL is still there.
    expect(r.users.total).to.equal(7);
    expect(r.usage?.lastHour.counts.logins).to.equal(5);

    const human = await cli(['stats'], { env: { AUTHCTL_REDIS_URL: `redis://127.0.0.1:${await freePort()}` } });
    expect(human.code, describeRun(human)).to.equal(0);
    expect(human.stdout).to.match(/^ {2}driver\s+redis \(degraded\)$/m);
  });

  it('PostgreSQL unreachable: exit 69 (--json: code unavailable), no stack trace', async function () {
    const dead = `postgres://postgres@127.0.0.1:${await freePort()}/authctl`;
    const json = await cli(['stats', '--json'], { env: { AUTHCTL_DATABASE_URL: dead } });
    expectJsonError(json, 69, 'unavailable');
    const human = await cli(['stats'], { env: { AUTHCTL_DATABASE_URL: dead } });
    expect(human.code, describeRun(human)).to.equal(69);
    expect(human.stderr).to.contain('database');
    expectNoStackTrace(human.stderr);
  });

  it('a database migrated before 0002-usage and without the job queue: usage and queues null, with what to run', async function () {
    const bare = await createTestDatabase('cli_stats_bare');
    const bareDb = new Db(testConfig(bare.url).database);
    try {
      await bareDb.migrateLatest();
      await bareDb.writer.raw('drop table usage_hourly');
      const result = await runCli(['stats', '--json'], { databaseUrl: bare.url, env: redisEnv });
      const r = expectJson<Report>(result, 0);
      expect(r.users).to.deep.equal({ total: 0, disabled: 0, foreignHashes: {} });
      expect(r.usage).to.equal(null);
      expect(r.queues).to.equal(null);
      expect(r.warnings).to.have.length(2);
      for (const warning of r.warnings) expect(warning).to.contain('authctl migrate');

      const human = await runCli(['stats'], { databaseUrl: bare.url, env: redisEnv });
      expect(human.code, describeRun(human)).to.equal(0);
      expect(human.stdout)
        .to.match(/^Last hour\s+not available$/m)
        .and.match(/^Queues\s+not available$/m);
    } finally {
      await bareDb.close();
      await bare.drop();
    }
  });
});
