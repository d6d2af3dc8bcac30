import { execFile, spawn } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { expect } from 'chai';
import pg from 'pg';
import { startEmbeddedPostgres, type EmbeddedPostgresHandle } from '../../src/dev/embedded-postgres.js';

type Client = pg.Client;
const PgClient = pg.Client;

async function postgresIds(): Promise<{ uid: number; gid: number }> {
  const id = async (flag: string) => Number((await promisify(execFile)('id', [flag, 'postgres'])).stdout);
  return { uid: await id('-u'), gid: await id('-g') };
}

async function withClient<T>(url: string, work: (client: Client) => Promise<T>): Promise<T> {
  const client = new PgClient({ connectionString: url });
  await client.connect();
  try {
    return await work(client);
  } finally {
    await client.end();
  }
}

describe('embedded PostgreSQL (authctl dev)', function () {
  let dir: string;
  let handle: EmbeddedPostgresHandle | undefined;

  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'authctl-ep-'));
  });

  afterEach(async () => {
    await handle?.stop();
    handle = undefined;
    await rm(dir, { recursive: true, force: true });
  });

  it('keeps data across a stop and a restart on the same directory', async function () {
    this.timeout(120_000);

    handle = await startEmbeddedPostgres({ dataDir: dir });
    expect(handle.url).to.match(/^postgres:\/\/postgres:[^@]+@127\.0\.0\.1:\d+\/authctl$/);
    await withClient(handle.url, async (client) => {
      await client.query('CREATE TABLE notes (id int PRIMARY KEY, body text NOT NULL)');
      await client.query('INSERT INTO notes VALUES ($1, $2)', [1, 'héllo']);
    });
    await handle.stop();

    handle = await startEmbeddedPostgres({ dataDir: dir });
    const rows = await withClient(handle.url, (client) => client.query<{ body: string }>('SELECT body FROM notes WHERE id = 1'));
    expect(rows.rows).to.deep.equal([{ body: 'héllo' }]);
  });

  it('recovers from a stale postmaster.pid whose pid now belongs to another process', async function () {
    this.timeout(120_000);

    handle = await startEmbeddedPostgres({ dataDir: dir, database: 'other' });
    await handle.stop();

    // A live process that is not our server, as after a crash and pid reuse. It must belong to the
    // user the server runs as (postgres, when we are root): postgres itself ignores pids it cannot signal.
    const squatter = spawn('sleep', ['60'], process.getuid?.() === 0 ? await postgresIds() : {});
    try {
      await writeFile(join(dir, 'pgdata', 'postmaster.pid'), `${squatter.pid}\n${join(dir, 'pgdata')}\n`);
      handle = await startEmbeddedPostgres({ dataDir: dir, database: 'other' });
      const { rows } = await withClient(handle.url, (client) => client.query<{ db: string }>('SELECT current_database() AS db'));
      expect(rows).to.deep.equal([{ db: 'other' }]);
    } finally {
      squatter.kill();
    }
  });
});
