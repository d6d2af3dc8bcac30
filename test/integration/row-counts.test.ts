import { expect } from 'chai';
import type { StatsReport } from '../../src/admin/stats.js';
import { Db } from '../../src/store/pg/db.js';
import { EXACT_COUNT_BELOW } from '../../src/store/pg/row-count.js';
import { SessionsRepo } from '../../src/store/pg/sessions-repo.js';
import { StatsRepo } from '../../src/store/pg/stats-repo.js';
import { UsersRepo } from '../../src/store/pg/users-repo.js';
import { testConfig } from '../helpers/app.js';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';
import { describeRun, expectJson, runCli } from '../cli/run-cli.js';

type Report = Omit<StatsReport, 'generatedAt'>;

const DAY_MS = 86_400_000;

/**
 * The counts of `authctl stats`, the active-sessions gauge and `UsersRepo.count` on real tables:
 * exact on small ones, PostgreSQL's estimate (and said so) on large ones.
 */
describe('row counts: exact when small, the planner estimate when large', function () {
  let tdb: TestDatabase;
  let db: Db;
  let users = 0;
  let disabled = 0;

  /** Users u<from>…u<to - 1>, every 500th disabled, each with one session live for 14 days. */
  async function addUsers(from: number, to: number, sessions = true): Promise<void> {
    await db.writer.raw(
      `insert into users (id, username, password_hash, status, home_region, created_at, updated_at, password_changed_at, version)
       select gen_random_uuid(), 'u' || lpad(i::text, 7, '0'), 'not-a-hash', case when i % 500 = 0 then 'disabled' else 'active' end,
              'local', now(), now(), now(), 1
         from generate_series(?::int, ?::int) i`,
      [from, to - 1],
    );
    if (sessions) {
      await db.writer.raw(
        `insert into sessions (id, user_id, home_region, counter, created_at, last_used_at, rotated_at, expires_at, version)
         select gen_random_uuid(), u.id, 'local', 1, now(), now(), now(), now() + interval '14 days', 1
           from users u where u.username between ? and ?`,
        [`u${String(from).padStart(7, '0')}`, `u${String(to - 1).padStart(7, '0')}`],
      );
    }
    for (let i = from; i < to; i++) if (i % 500 === 0) disabled++;
    users += to - from;
  }

  before(async function () {
    tdb = await createTestDatabase('row_counts');
    db = new Db(testConfig(tdb.url).database);
    await db.migrateLatest();
    await addUsers(1, 2_001);
    // 100 expired and 50 revoked an hour ago, beside the 2,000 live ones.
    await db.writer.raw(
      `insert into sessions (id, user_id, home_region, counter, created_at, last_used_at, rotated_at, expires_at, revoked_at, version)
       select gen_random_uuid(), u.id, 'local', 1, now() - interval '15 days', now() - interval '15 days', now() - interval '15 days',
              now() - interval '1 day', null, 1
         from (select id from users order by username limit 100) u
       union all
       select gen_random_uuid(), u.id, 'local', 1, now(), now(), now(), now() + interval '14 days', now() - interval '1 hour', 1
         from (select id from users order by username desc limit 50) u`,
    );
  });

  after(async function () {
    await db?.close();
    await tdb?.drop();
  });

  it('small tables are counted exactly, even when the statistics are stale', async function () {
    await db.writer.raw('vacuum analyze users, sessions');
    await addUsers(2_001, 2_301, false); // not analyzed: the planner's figure is now off
    const repo = new StatsRepo(db);
    const now = new Date();
    expect(await repo.userCounts()).to.deep.equal({ total: { count: 2_300, estimated: false }, disabled: { count: 4, estimated: false } });
    expect(await repo.sessionCounts(now, new Date(now.getTime() - DAY_MS))).to.deep.equal({
      active: { count: 2_000, estimated: false },
      revokedSince: { count: 50, estimated: false },
    });
    expect(await new UsersRepo(db).count()).to.deep.equal({ count: 2_300, estimated: false });
    expect(await new SessionsRepo(db).countActive(now)).to.equal(2_000);
  });

  it('at the threshold and above: the estimate, marked; the small counts stay exact on their indexes', async function () {
    await db.writer.raw('vacuum analyze users, sessions');
    const repo = new StatsRepo(db, { exactBelow: 1_000 });
    const now = new Date();
    const u = await repo.userCounts();
    expect(u.total.estimated).to.equal(true);
    expect(u.total.count).to.be.closeTo(2_300, 23);
    expect(u.disabled).to.deep.equal({ count: 4, estimated: false });
    const s = await repo.sessionCounts(now, new Date(now.getTime() - DAY_MS));
    expect(s.active.estimated).to.equal(true);
    expect(s.active.count).to.be.closeTo(2_000, 100);
    expect(s.revokedSince).to.deep.equal({ count: 50, estimated: false });
    const viaUsers = await new UsersRepo(db).count(1_000);
    expect(viaUsers.estimated).to.equal(true);
    expect(viaUsers.count).to.be.closeTo(2_300, 23);
    expect(await new SessionsRepo(db).countActive(now, 1_000)).to.be.closeTo(2_000, 100);

    // The estimate follows growth between two ANALYZEs (the row density scaled to the table's size now).
    await addUsers(2_301, 4_301, false);
    const grown = await repo.userCounts();
    expect(grown.total.estimated).to.equal(true);
    expect(grown.total.count).to.be.closeTo(4_300, 215);
  });

  it(`authctl stats over ${EXACT_COUNT_BELOW.toLocaleString('en-US')} users: "≈" and "estimated" for the total, the rest counted`, async function () {
    this.timeout(30_000);
    await addUsers(4_301, 120_001, false);
    await db.writer.raw('vacuum analyze users');
    const json = expectJson<Report>(await runCli(['stats', '--json'], { databaseUrl: tdb.url }), 0);
    expect(json.estimated).to.deep.equal(['users.total']);
    expect(json.users.total).to.be.closeTo(users, users / 100);
    expect(json.users.disabled).to.equal(disabled);
    expect(json.sessions).to.deep.equal({ active: 2_000, revokedLast24h: 50 });

    const human = await runCli(['stats'], { databaseUrl: tdb.url });
    expect(human.code, describeRun(human)).to.equal(0);
    expect(human.stdout).to.match(/^ {2}total\s+≈ \d{3},\d{3}$/m);
    expect(human.stdout).to.match(new RegExp(`^ {2}disabled\\s+${disabled}$`, 'm'));
    expect(human.stdout).to.match(/^note: ≈: PostgreSQL's estimate/m);
  });

  it('user list pages on its index, not a sort of the whole table', async function () {
    const plan = await db.writer.raw<{ rows: Array<{ 'QUERY PLAN': string }> }>(
      `explain select * from users where coalesce(username, lower(email)) > ? order by coalesce(username, lower(email)), id limit 50`,
      ['u0050000'],
    );
    const text = plan.rows.map((r) => r['QUERY PLAN']).join('\n');
    expect(text).to.contain('Index Scan using users_sort_key_idx').and.not.contain('Seq Scan');
    const page = expectJson<{ users: Array<{ username: string }>; next: string | null }>(
      await runCli(['user', 'list', '--limit', '3', '--after', 'u0050000', '--json'], { databaseUrl: tdb.url }),
      0,
    );
    expect(page.users.map((x) => x.username)).to.deep.equal(['u0050001', 'u0050002', 'u0050003']);
    const found = expectJson<{ users: Array<{ username: string }> }>(
      await runCli(['user', 'list', '--search', '005000', '--limit', '3', '--json'], { databaseUrl: tdb.url }),
      0,
    );
    expect(
      found.users.map((x) => x.username),
      'a search keeps the order',
    ).to.deep.equal(['u0005000', 'u0050000', 'u0050001']);
  });
});
