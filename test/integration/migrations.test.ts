import { expect } from 'chai';
import { buildContainer, type Container } from '../../src/container.js';
import { ManualClock } from '../../src/platform/clock.js';
import { testConfig } from '../helpers/app.js';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';
import { shutdown } from '../../src/runtime.js';

const TABLES = ['users', 'sessions', 'signing_keys'];

describe('migrations', function () {
  let db: TestDatabase;
  let c: Container;

  before(async function () {
    db = await createTestDatabase('migrations');
    c = buildContainer(testConfig(db.url), { clock: new ManualClock(Date.now()) });
  });

  after(async function () {
    await shutdown(c);
    await db?.drop();
  });

  async function tables(): Promise<string[]> {
    const rows = await c.db
      .writer('information_schema.tables')
      .where({ table_schema: 'public' })
      .whereIn('table_name', TABLES)
      .select<Array<{ table_name: string }>>('table_name');
    return rows.map((r) => r.table_name).sort();
  }

  async function columns(table: string): Promise<Map<string, string>> {
    const rows = await c.db
      .writer('information_schema.columns')
      .where({ table_schema: 'public', table_name: table })
      .select<Array<{ column_name: string; data_type: string }>>('column_name', 'data_type');
    return new Map(rows.map((r) => [r.column_name, r.data_type]));
  }

  it('shows the initial migration as pending on a fresh database', async function () {
    const status = await c.db.migrateStatus();
    expect(status.applied).to.deep.equal([]);
    expect(status.pending).to.include('0001-initial');
    expect(await tables()).to.deep.equal([]);
  });

  it('applies every pending migration with migrateLatest', async function () {
    const result = await c.db.migrateLatest();
    expect(result.batch).to.equal(1);
    expect(result.applied).to.include('0001-initial');
    const status = await c.db.migrateStatus();
    expect(status.applied).to.include('0001-initial');
    expect(status.pending).to.deep.equal([]);
  });

  it('creates users, sessions and signing_keys with home_region and version', async function () {
    expect(await tables()).to.deep.equal([...TABLES].sort());
    for (const table of TABLES) {
      const cols = await columns(table);
      expect(cols.get('home_region'), `${table}.home_region`).to.equal('text');
      expect(cols.get('version'), `${table}.version`).to.equal('bigint');
    }
    const sessions = await columns('sessions');
    for (const col of ['id', 'user_id', 'counter', 'expires_at', 'revoked_at', 'revoke_reason', 'rotated_at']) {
      expect(sessions.has(col), `sessions.${col}`).to.equal(true);
    }
    // One row per session: no column holds a refresh token or its hash.
    expect([...sessions.keys()].filter((k) => /token|hash/.test(k))).to.deep.equal([]);
    const keys = await columns('signing_keys');
    for (const col of ['kid', 'alg', 'public_jwk', 'private_jwk_encrypted', 'activates_at', 'retires_at']) {
      expect(keys.has(col), `signing_keys.${col}`).to.equal(true);
    }
    const users = await columns('users');
    for (const col of ['id', 'username', 'password_hash', 'status', 'created_at', 'updated_at', 'password_changed_at']) {
      expect(users.has(col), `users.${col}`).to.equal(true);
    }
  });

  it('is a no-op when run again', async function () {
    const again = await c.db.migrateLatest();
    expect(again.applied).to.deep.equal([]);
    expect((await c.db.migrateStatus()).pending).to.deep.equal([]);
  });

  it('rolls back: tables gone, migration pending again', async function () {
    // Some data, so the rollback has to cope with rows and foreign keys.
    await c.users.register('migrated.mia', 'correct horse battery staple');
    const result = await c.db.migrateRollback();
    expect(result.reverted).to.include('0001-initial');
    expect(await tables()).to.deep.equal([]);
    const status = await c.db.migrateStatus();
    expect(status.applied).to.deep.equal([]);
    expect(status.pending).to.include('0001-initial');
  });

  it('migrates up again after a rollback, and down/up once more', async function () {
    const up = await c.db.migrateLatest();
    expect(up.applied).to.include('0001-initial');
    expect(await tables()).to.deep.equal([...TABLES].sort());
    // The schema works: a user can register on it.
    const user = await c.users.register('reborn.rex', 'correct horse battery staple');
    expect(user.username).to.equal('reborn.rex');

    await c.db.migrateRollback(true);
    expect(await tables()).to.deep.equal([]);
    await c.db.migrateLatest();
    expect(await tables()).to.deep.equal([...TABLES].sort());
    const status = await c.db.migrateStatus();
    expect(status.pending).to.deep.equal([]);
    expect(status.applied).to.include('0001-initial');
  });
});
