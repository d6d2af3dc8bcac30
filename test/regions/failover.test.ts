import { expect } from 'chai';
import type { ChildProcessWithoutNullStreams } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';
import { expectTokenResponse, login, refresh, refreshCounter, register, uniquePassword, uniqueUsername } from '../helpers/http-assert.js';
import { requester } from '../helpers/app.js';
import { describeRun, runCli, spawnCli } from '../cli/run-cli.js';
import { eventually, FAST_REPLICATION, freePort, pairSecret, snapshot, startRegions, type RegionNode } from './support.js';

/**
 * Region A runs as a real `authctl serve --with-workers` process and is SIGKILLed; B and C run in
 * this process. B and C keep serving, A's peers queue its changes, and all three converge when
 * A returns.
 */
describe('regions: a region killed and brought back', function () {
  this.timeout(180_000);
  let b: RegionNode;
  let c: RegionNode;
  let aDb: TestDatabase;
  let aUrl: string;
  let configDir: string;
  let configFile: string;
  let aProcess: ChildProcessWithoutNullStreams | undefined;
  let aStderr = '';
  const a = { request: (path: string, init?: Parameters<ReturnType<typeof requester>>[1]) => requester(aUrl)(path, init) };

  async function queryA<R>(sql: string, values: unknown[] = []): Promise<R[]> {
    const client = new pg.Client({ connectionString: aDb.url });
    await client.connect();
    try {
      return (
        await client.query(
          sql.replace(/\?/g, (_m, offset: number) => `$${sql.slice(0, offset).split('?').length}`),
          values,
        )
      ).rows as R[];
    } finally {
      await client.end();
    }
  }

  async function startA(): Promise<void> {
    aStderr = '';
    aProcess = spawnCli(['serve', '--with-workers', '--config', configFile], { databaseUrl: aDb.url, env: { AUTHCTL_LOG_LEVEL: 'info' } });
    aProcess.stdin.end();
    aProcess.stdout.resume();
    aProcess.stderr.setEncoding('utf8').on('data', (chunk: string) => (aStderr += chunk));
    await eventually('region A to listen', async () => ((await fetch(`${aUrl}/readyz`).catch(() => undefined))?.status === 200 ? true : undefined), 60_000);
  }

  before(async () => {
    const port = await freePort();
    aUrl = `http://127.0.0.1:${port}`;
    [b, c] = (await startRegions(['fb', 'fc'], () => ({}), [{ name: 'fa', url: aUrl }])) as [RegionNode, RegionNode];
    aDb = await createTestDatabase('regions_fa');
    configDir = mkdtempSync(join(tmpdir(), 'authctl-regions-'));
    configFile = join(configDir, 'fa.json');
    writeFileSync(
      configFile,
      JSON.stringify({
        region: 'fa',
        publicUrl: aUrl,
        http: { host: '127.0.0.1', port },
        cache: { redisUrl: 'redis://127.0.0.1:6379', keyPrefix: `t-regions-fa-${randomBytes(3).toString('hex')}` },
        keys: { activationDelay: 0 },
        revocation: { pollIntervalMs: 200 },
        regions: {
          ...FAST_REPLICATION,
          peers: [b, c].map((n) => ({ name: n.name, url: n.url, secret: pairSecret('fa', n.name) })),
        },
      }),
    );
    const migrated = await runCli(['migrate', '--config', configFile], { databaseUrl: aDb.url });
    expect(migrated.code, describeRun(migrated)).to.equal(0);
    await startA();
  });

  after(async () => {
    if (aProcess && aProcess.exitCode === null && aProcess.signalCode === null) aProcess.kill('SIGKILL');
    await Promise.all([b, c].map((n) => n?.close()));
    await aDb?.drop();
    if (configDir) rmSync(configDir, { recursive: true, force: true });
  });

  it('B and C serve their users and travellers while A is dead; A catches up and all three converge', async () => {
    const traveller = { username: uniqueUsername('trav'), password: uniquePassword() };
    await register(a as never, traveller.username, traveller.password);
    const atA = await login(a as never, traveller.username, traveller.password);
    await eventually("A's user and session at B and C", async () => {
      for (const n of [b, c]) if ((await n.query('select 1 from sessions where id = ?', [atA.sessionId])).length === 0) return undefined;
      return true;
    });
    const local = { username: uniqueUsername('loc'), password: uniquePassword() };
    await register(b, local.username, local.password);

    aProcess!.kill('SIGKILL');
    await new Promise((resolve) => aProcess!.once('close', resolve));

    // B's own user, a traveller logging in at C, and A's session refreshed from B's replica.
    const bLocal = await login(b, local.username, local.password);
    await login(c, traveller.username, traveller.password);
    const replica = await expectTokenResponse(await refresh(b, atA.refreshToken));
    expect(refreshCounter(replica.refreshToken)).to.equal(2);
    expect((await b.request('/v1/verify', { token: bLocal.accessToken })).status).to.equal(200);
    // A revocation in C while A is away: it must reach A when A returns.
    expect((await c.request('/v1/auth/logout-all', { method: 'POST', token: bLocal.accessToken, json: {} })).status).to.equal(204);
    const backlog = await eventually('a backlog for A at B', async () => {
      const peer = (await b.container.replication.status()).find((p) => p.peer === 'fa');
      return peer && peer.backlog > 0 && peer.lastError ? peer : undefined;
    });
    expect(backlog.lastError).to.match(/unreachable/);

    await startA();
    await eventually(
      "B's and C's backlogs for A drained",
      async () => {
        for (const n of [b, c]) if ((await n.container.replication.status()).some((p) => p.backlog > 0)) return undefined;
        return true;
      },
      60_000,
    );
    await eventually(
      "A's own backlog drained",
      async () => {
        const rows = await queryA<{ n: string }>('select count(*) as n from replication_outbox');
        return Number(rows[0]!.n) === 0 ? true : undefined;
      },
      60_000,
    );
    const [sa, sb, sc] = await Promise.all([snapshot({ query: queryA }), snapshot(b), snapshot(c)]);
    expect(sb).to.deep.equal(sa);
    expect(sc).to.deep.equal(sa);
    // A learned B's replica rotation: the token B issued is the current one at A.
    const [row] = await queryA<{ counter: string }>('select counter from sessions where id = ?', [atA.sessionId]);
    expect(Number(row!.counter)).to.equal(2);
    const next = await expectTokenResponse(await refresh(a as never, replica.refreshToken));
    expect(refreshCounter(next.refreshToken)).to.equal(3);
  });
});
