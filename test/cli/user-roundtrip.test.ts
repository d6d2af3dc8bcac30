import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect } from 'chai';
import { v7 as uuidv7 } from 'uuid';
import type { PortableUser } from '../../src/admin/portable-user.js';
import type { Container } from '../../src/container.js';
import { startTestApp, type TestApp } from '../helpers/app.js';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';
import { oathtool } from '../mfa/support.js';
import { describeRun, expectJson, repoRoot, runCli } from './run-cli.js';
import { parseExport } from './portable-users.js';

const PASSWORD = 'round-trip-passphrase-7';
const SETTINGS = { identity: { email: 'optional' as const }, mail: { transport: 'log' as const, from: 'no-reply@example.com' } };
const CLI_ENV = { AUTHCTL_IDENTITY_EMAIL: 'optional', AUTHCTL_MAIL_TRANSPORT: 'log', AUTHCTL_MAIL_FROM: 'no-reply@example.com' };
const haveImport = existsSync(join(repoRoot, 'dist', 'commands', 'user', 'import.js'));

describe('export of a region re-imports into an empty region losslessly (authctl user export → user import --format ndjson → export)', function () {
  this.timeout(120_000);
  let home: TestApp;
  let fresh: TestDatabase;
  let dir: string;
  const cli = (url: string, region: string, args: string[]) => runCli(args, { databaseUrl: url, env: { ...CLI_ENV, AUTHCTL_REGION: region } });

  async function exportOf(url: string, region: string, file: string): Promise<PortableUser[]> {
    expectJson(await cli(url, region, ['user', 'export', '--out', file, '--json']), 0);
    return parseExport(readFileSync(file, 'utf8')).sort((a, b) => a.id!.localeCompare(b.id!));
  }

  async function seed(c: Container): Promise<void> {
    const reg = (username: string, email?: string, emailVerified = false) =>
      c.users.register({ username, password: PASSWORD, ...(email ? { email } : {}) }, { emailVerified, asAdmin: true });
    await reg('rt-plain');
    await reg('rt-verified', 'rt-verified@example.com', true);
    await reg('rt-unverified', 'rt-unverified@example.com');
    await reg('rt-disabled', 'rt-disabled@example.com', true);
    await c.users.setStatus('rt-disabled', 'disabled');
    const linked = await reg('rt-linked', 'rt-linked@example.com', true);
    const now = c.clock.now();
    const base = { userId: linked.id, homeRegion: c.config.region, createdAt: now, lastUsedAt: now, removedAt: null, version: 1 };
    await c.repos.identities.insert({
      ...base,
      id: uuidv7(),
      provider: 'google',
      subject: 'rt-google-1',
      email: 'rt-linked@gmail.example',
      emailVerified: true,
    });
    await c.repos.identities.insert({ ...base, id: uuidv7(), provider: 'github', subject: 'rt-gh-1', email: null, emailVerified: false });
    const mfa = await reg('rt-mfa');
    const started = await c.mfa.startTotp(mfa.id);
    await c.mfa.confirmTotp(mfa.id, started.factorId, oathtool(started.secret, c.clock.now()));
  }

  before(async function () {
    dir = mkdtempSync(join(tmpdir(), 'authctl-roundtrip-'));
    home = await startTestApp('roundtrip_home', { overrides: SETTINGS });
    await seed(home.container);
    fresh = await createTestDatabase('roundtrip_fresh');
  });
  after(async function () {
    await home?.close();
    await fresh?.drop();
    rmSync(dir, { recursive: true, force: true });
  });

  it('exports, imports into a fresh region, exports again: the two exports are equal and users sign in there with their passwords', async function () {
    const first = await exportOf(home.db.url, home.container.config.region, join(dir, 'first.ndjson'));
    expect(first).to.have.length(6);
    // Pending until `authctl user import` is part of this build: the export half above runs regardless.
    if (!haveImport) return this.skip();

    const region = 'fresh-region';
    const migrated = await cli(fresh.url, region, ['migrate']);
    expect(migrated.code, describeRun(migrated)).to.equal(0);
    const imported = await cli(fresh.url, region, ['user', 'import', join(dir, 'first.ndjson'), '--format', 'ndjson', '--json']);
    expect(imported.code, describeRun(imported)).to.equal(0);
    const second = await exportOf(fresh.url, region, join(dir, 'second.ndjson'));
    expect(second).to.deep.equal(first);

    const there = await startTestApp('roundtrip_there', { db: fresh, migrate: false, overrides: { ...SETTINGS, region } });
    try {
      const login = (username: string, password = PASSWORD) => there.request('/v1/auth/login', { method: 'POST', json: { username, password } });
      for (const username of ['rt-plain', 'rt-verified', 'rt-unverified', 'rt-linked']) {
        const res = await login(username);
        expect(res.status, `${username}: ${await res.clone().text()}`).to.equal(200);
      }
      expect((await login('rt-plain', `${PASSWORD}!`)).status).to.equal(401);
      const disabled = await login('rt-disabled');
      expect(disabled.status).to.equal(403);
      expect(((await disabled.json()) as { code: string }).code).to.equal('account_disabled');
      // The second factor stayed behind: the user signs in with the password and enrols again.
      const mfa = await login('rt-mfa');
      expect(mfa.status).to.equal(200);
      expect(await mfa.json()).to.have.property('accessToken');
    } finally {
      await there.close();
    }
  });
});
