import type { ChildProcessWithoutNullStreams } from 'node:child_process';
import { once } from 'node:events';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect } from 'chai';
import { testConfig } from '../helpers/app.js';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';
import { buildContainer } from '../../src/container.js';
import { describeRun, expectJson, expectNoStackTrace, runCli, spawnCli, type CliOptions } from './run-cli.js';
import { shutdown } from '../../src/runtime.js';

describe('authctl configuration and serve', function () {
  let db: TestDatabase;
  let dir: string;
  const cli = (args: string[], options: CliOptions = {}) => runCli(args, { databaseUrl: db.url, ...options });

  before(async function () {
    db = await createTestDatabase('cli_config');
    dir = await mkdtemp(join(tmpdir(), 'authctl-cli-'));
    const container = buildContainer(testConfig(db.url));
    try {
      await container.db.migrateLatest();
      await container.users.register('zoe', 'zoe-config-file-passphrase');
    } finally {
      await shutdown(container);
    }
  });

  after(async function () {
    if (dir) await rm(dir, { recursive: true, force: true });
    await db?.drop();
  });

  describe('bad configuration exits 78', function () {
    it('AUTHCTL_PORT=abc names the variable, not its value', async function () {
      const result = await cli(['user', 'list'], { env: { AUTHCTL_PORT: 'abc' } });
      expect(result.code, describeRun(result)).to.equal(78);
      expect(result.stderr).to.contain('AUTHCTL_PORT');
      expect(result.stderr).not.to.contain('abc');
      expectNoStackTrace(result.stderr);
    });

    it('--config naming a missing file', async function () {
      const result = await cli(['user', 'list', '--json', '--config', '/nonexistent.json']);
      const body = expectJson<{ error: { code: string; message: string } }>(result, 78);
      expect(body.error.code).to.equal('bad_config');
      expect(body.error.message).to.contain('/nonexistent.json');
    });

    it('a config file with an unknown key names the key', async function () {
      const file = join(dir, 'unknown-key.json');
      await writeFile(file, JSON.stringify({ database: { url: db.url }, colour: 'blue' }));
      const result = await cli(['user', 'list', '--config', file]);
      expect(result.code, describeRun(result)).to.equal(78);
      expect(result.stderr).to.match(/unknown config key colour/);
      expectNoStackTrace(result.stderr);
    });
  });

  it('--config with database.url is used (no AUTHCTL_DATABASE_URL)', async function () {
    const file = join(dir, 'authctl.json');
    await writeFile(file, JSON.stringify({ database: { url: db.url } }));
    const result = await runCli(['user', 'list', '--json', '--config', file]);
    const body = expectJson<{ users: Array<{ username: string }> }>(result, 0);
    expect(body.users.map((u) => u.username)).to.deep.equal(['zoe']);
  });

  describe('serve', function () {
    let server: ChildProcessWithoutNullStreams | undefined;

    afterEach(function () {
      // Only if a test failed before the server stopped.
      if (server && server.exitCode === null && server.signalCode === null) server.kill('SIGKILL');
      server = undefined;
    });

    /** Resolves the URL the server prints on stderr once it listens. */
    function listeningUrl(child: ChildProcessWithoutNullStreams, timeoutMs = 15_000): Promise<string> {
      return new Promise((resolve, reject) => {
        let stderr = '';
        const timer = setTimeout(() => reject(new Error(`serve printed no URL within ${timeoutMs} ms; stderr: ${stderr}`)), timeoutMs);
        child.stderr.setEncoding('utf8').on('data', (chunk: string) => {
          stderr += chunk;
          const match = /authctl serving region \S+ on (http:\/\/\S+)/.exec(stderr);
          if (match) {
            clearTimeout(timer);
            resolve(match[1]!);
          }
        });
        child.once('exit', (code) => {
          clearTimeout(timer);
          reject(new Error(`serve exited with ${code} before listening; stderr: ${stderr}`));
        });
      });
    }

    it('serves on the port it picked, answers /healthz and /readyz, and exits 0 on SIGTERM', async function () {
      server = spawnCli(['serve', '--port', '0'], { databaseUrl: db.url });
      server.stdin.end();
      const url = await listeningUrl(server);
      expect(url).to.match(/^http:\/\/127\.0\.0\.1:\d+$/);

      const health = await fetch(`${url}/healthz`);
      expect(health.status).to.equal(200);
      expect(await health.json()).to.deep.equal({ status: 'ok' });
      const ready = await fetch(`${url}/readyz`);
      expect(ready.status, await ready.clone().text()).to.equal(200);

      const exited = once(server, 'exit') as Promise<[number | null, NodeJS.Signals | null]>;
      server.kill('SIGTERM');
      const timeout = new Promise<never>((_, reject) => setTimeout(() => reject(new Error('serve did not exit within 5 s of SIGTERM')), 5_000).unref());
      const [code, signal] = await Promise.race([exited, timeout]);
      expect({ code, signal }).to.deep.equal({ code: 0, signal: null });
    });

    it('refuses to start without AUTHCTL_SECRET: exit 78', async function () {
      const result = await cli(['serve', '--port', '0'], { env: { AUTHCTL_SECRET: undefined }, timeoutMs: 15_000 });
      expect(result.code, describeRun(result)).to.equal(78);
      expect(result.stderr).to.contain('AUTHCTL_SECRET');
      expect(result.stderr).not.to.match(/authctl serving/);
      expectNoStackTrace(result.stderr);
    });
  });
});
