import { expect } from 'chai';
import pg from 'pg';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';
import { describeRun, expectJson, runCli, type CliOptions } from './run-cli.js';

/**
 * `authctl migrate …` on a database of its own: the rollback here drops every table, which no
 * other test file may see.
 */
describe('authctl migrate', function () {
  let db: TestDatabase;
  let applied: string[] = [];
  const cli = (args: string[], options: CliOptions = {}) => runCli(args, { databaseUrl: db.url, ...options });

  async function tablesPresent(): Promise<string[]> {
    const client = new pg.Client({ connectionString: db.url });
    await client.connect();
    try {
      const { rows } = await client.query<{ name: string }>(
        `select table_name as name from information_schema.tables where table_schema = 'public' and table_name in ('users', 'sessions', 'signing_keys') order by 1`,
      );
      return rows.map((r) => r.name);
    } finally {
      await client.end();
    }
  }

  before(async function () {
    db = await createTestDatabase('cli_migrate');
  });

  after(async function () {
    await db?.drop();
  });

  it('migrate --json applies every migration to an empty database', async function () {
    const body = expectJson<{ batch: number; applied: string[] }>(await cli(['migrate', '--json']), 0);
    expect(body.batch).to.equal(1);
    expect(body.applied).to.be.an('array').that.is.not.empty;
    for (const name of body.applied)
      expect(name)
        .to.be.a('string')
        .and.match(/^\d{4}-/);
    applied = body.applied;
    expect(await tablesPresent()).to.deep.equal(['sessions', 'signing_keys', 'users']);
  });

  it('migrate status --json lists them as applied, nothing pending', async function () {
    const body = expectJson<{ applied: string[]; pending: string[] }>(await cli(['migrate', 'status', '--json']), 0);
    expect(body.applied).to.deep.equal(applied);
    expect(body.pending).to.deep.equal([]);
  });

  it('migrate again says it is up to date', async function () {
    const result = await cli(['migrate']);
    expect(result.code, describeRun(result)).to.equal(0);
    expect(result.stdout).to.match(/up to date/i);
  });

  it('migrate rollback --json reverts the batch; migrate applies it again', async function () {
    const rolledBack = expectJson<{ reverted: string[] }>(await cli(['migrate', 'rollback', '--json']), 0);
    expect([...rolledBack.reverted].sort()).to.deep.equal([...applied].sort());
    expect(await tablesPresent()).to.deep.equal([]);

    const again = expectJson<{ batch: number; applied: string[] }>(await cli(['migrate', '--json']), 0);
    expect(again.applied).to.deep.equal(applied);
    expect(await tablesPresent()).to.deep.equal(['sessions', 'signing_keys', 'users']);
  });
});
