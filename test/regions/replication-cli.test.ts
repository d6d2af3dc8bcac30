import { expect } from 'chai';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';
import { describeRun, runCli } from '../cli/run-cli.js';
import { freePort, pairSecret } from './support.js';

interface StatusJson {
  region: string;
  peers: Array<{ peer: string; backlog: number; deadLettered: number; oldestPendingSeconds: number | null }>;
}

describe('authctl replication status|retry', function () {
  this.timeout(60_000);
  let db: TestDatabase;
  let dir: string;
  let config: string;

  before(async () => {
    db = await createTestDatabase('repl_cli');
    dir = mkdtempSync(join(tmpdir(), 'authctl-repl-cli-'));
    config = join(dir, 'authctl.json');
    // The peer's port is dead: nothing is ever delivered.
    const peerUrl = `http://127.0.0.1:${await freePort()}`;
    writeFileSync(config, JSON.stringify({ region: 'ca', regions: { peers: [{ name: 'cb', url: peerUrl, secret: pairSecret('ca', 'cb') }] } }));
    const migrated = await runCli(['migrate', '--config', config], { databaseUrl: db.url });
    expect(migrated.code, describeRun(migrated)).to.equal(0);
  });

  after(async () => {
    await db?.drop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('shows the backlog per peer, and retry re-queues dead-lettered changes', async () => {
    const created = await runCli(['user', 'create', 'cli-traveller', '--password-stdin', '--config', config], {
      databaseUrl: db.url,
      input: 'cli traveller password 1\n',
    });
    expect(created.code, describeRun(created)).to.equal(0);
    const status = await runCli(['replication', 'status', '--json', '--config', config], { databaseUrl: db.url });
    expect(status.code, describeRun(status)).to.equal(0);
    const body = JSON.parse(status.stdout) as StatusJson;
    expect(body.region).to.equal('ca');
    expect(body.peers).to.have.length(1);
    expect(body.peers[0]!.peer).to.equal('cb');
    expect(body.peers[0]!.backlog).to.be.at.least(1);
    expect(body.peers[0]!.oldestPendingSeconds).to.be.a('number');

    const client = new pg.Client({ connectionString: db.url });
    await client.connect();
    try {
      await client.query('update replication_outbox set dead_at = now()');
    } finally {
      await client.end();
    }
    const retried = await runCli(['replication', 'retry', '--json', '--config', config], { databaseUrl: db.url });
    expect(retried.code, describeRun(retried)).to.equal(0);
    expect((JSON.parse(retried.stdout) as { requeued: number }).requeued).to.equal(body.peers[0]!.backlog);
    const unknown = await runCli(['replication', 'retry', '--peer', 'nope', '--config', config], { databaseUrl: db.url });
    expect(unknown.code, describeRun(unknown)).to.equal(3);
  });
});
