import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { hashSync as bcryptHash } from '@node-rs/bcrypt';
import argon2 from 'argon2';
import { expect } from 'chai';
import { v7 as uuidv7 } from 'uuid';
import { UserExport } from '../../src/admin/export.js';
import type { PortableUser } from '../../src/admin/portable-user.js';
import { writeOutputFile } from '../../src/cli/output-file.js';
import { buildContainer, type Container } from '../../src/container.js';
import { hashFormat } from '../../src/core/users/hash-formats.js';
import type { IdentityRecord } from '../../src/model/identity.js';
import { migrate, shutdown } from '../../src/runtime.js';
import type { ExportResult } from '../../commands/user/export.js';
import { testConfig } from '../helpers/app.js';
import { loginTokens } from '../helpers/assert.js';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';
import { haveArgon2Cffi, libargon2 } from '../helpers/libargon2.js';
import { oathtool } from '../mfa/support.js';
import { parseExport } from './portable-users.js';
import { cliEnv, describeRun, expectJson, expectJsonError, expectNoStackTrace, repoRoot, runCli, type CliResult } from './run-cli.js';

const PASSWORD = 'export-passphrase-7';
const FIELDS = ['id', 'username', 'email', 'emailVerified', 'emailVerifiedAt', 'passwordHash', 'disabled', 'createdAt', 'homeRegion', 'identities'];

describe('authctl user export (spawned as an admin runs it, and its core)', function () {
  this.timeout(60_000);
  let db: TestDatabase;
  let c: Container;
  let dir: string;
  let cffi = true;
  const cli = (args: string[], env: Record<string, string> = {}): Promise<CliResult> => runCli(args, { databaseUrl: db.url, env });
  type Who = 'plain' | 'verified' | 'unverified' | 'disabled' | 'deleted' | 'linked' | 'bcrypt' | 'oldOrder' | 'mfa';
  const ids = {} as Record<Who, string>;

  const identity = (userId: string, subject: string, over: Partial<IdentityRecord> = {}): IdentityRecord => {
    const now = c.clock.now();
    return {
      id: uuidv7(),
      userId,
      provider: 'google',
      subject,
      email: null,
      emailVerified: false,
      homeRegion: c.config.region,
      createdAt: now,
      lastUsedAt: now,
      removedAt: null,
      version: 1,
      ...over,
    };
  };

  before(async function () {
    cffi = await haveArgon2Cffi();
    dir = mkdtempSync(join(tmpdir(), 'authctl-export-'));
    db = await createTestDatabase('user_export');
    c = buildContainer(testConfig(db.url, { identity: { email: 'optional' }, mail: { transport: 'log', from: 'no-reply@example.com' } }));
    await migrate(c);
    await c.keys.ensureSigningKey();
    const reg = (username: string, email?: string, emailVerified = false) =>
      c.users.register({ username, password: PASSWORD, ...(email ? { email } : {}) }, { emailVerified, asAdmin: true });
    ids.plain = (await reg('exp-plain')).id;
    ids.verified = (await reg('exp-verified', 'Verified@Example.com', true)).id;
    ids.unverified = (await reg('exp-unverified', 'unverified@example.com')).id;
    ids.disabled = (await reg('exp-disabled')).id;
    await c.users.setStatus('exp-disabled', 'disabled');
    ids.deleted = (await reg('exp-deleted')).id;
    await c.users.delete('exp-deleted');
    ids.linked = (await reg('exp-linked', 'linked@example.com', true)).id;
    await c.repos.identities.insert(identity(ids.linked, 'google-sub-1', { email: 'linked@gmail.example', emailVerified: true }));
    await c.repos.identities.insert(identity(ids.linked, 'gh-7', { provider: 'github' }));
    await c.repos.identities.insert(identity(ids.linked, 'google-sub-old', { removedAt: c.clock.now() }));
    // A user imported from elsewhere keeps its bcrypt hash until its first login.
    ids.bcrypt = (await reg('exp-bcrypt')).id;
    await c.db
      .writer('users')
      .where({ id: ids.bcrypt })
      .update({ password_hash: bcryptHash(PASSWORD, 4) });
    // A hash in the order the argon2 package writes (m, p, t), as before migration 0011.
    ids.oldOrder = (await reg('exp-old-order')).id;
    await c.db
      .writer('users')
      .where({ id: ids.oldOrder })
      .update({ password_hash: await argon2.hash(PASSWORD, { type: argon2.argon2id, memoryCost: 19_456, timeCost: 2, parallelism: 1 }) });
    // A user with a second factor and recovery codes, and a session.
    ids.mfa = (await reg('exp-mfa')).id;
    await loginTokens(c.auth, 'exp-mfa', PASSWORD, {});
    const started = await c.mfa.startTotp(ids.mfa);
    await c.mfa.confirmTotp(ids.mfa, started.factorId, oathtool(started.secret, c.clock.now()));
  });
  after(async function () {
    await shutdown(c);
    await db?.drop();
    rmSync(dir, { recursive: true, force: true });
  });

  async function exportToFile(name: string, extra: string[] = []): Promise<{ result: ExportResult; users: PortableUser[]; file: string }> {
    const file = join(dir, name);
    const result = expectJson<ExportResult>(await cli(['user', 'export', '--out', file, '--json', ...extra]), 0);
    return { result, users: parseExport(readFileSync(file, 'utf8')), file };
  }

  it('writes one line per user in id order with every field (deleted users gone, disabled ones marked, live identities only), to a file of mode 600', async function () {
    const { result, users, file } = await exportToFile('all.ndjson');
    const live = Object.entries(ids).filter(([key]) => key !== 'deleted');
    expect(result).to.include({ users: live.length, identities: 2, file });
    expect(users.map((u) => u.id)).to.deep.equal(live.map(([, id]) => id).sort());
    for (const user of users) expect(Object.keys(user), user.username ?? '').to.deep.equal(FIELDS);
    expect(statSync(file).mode & 0o777).to.equal(0o600);

    const byName = new Map(users.map((u) => [u.username, u]));
    const rows = await c.db.writer('users').select<Array<{ id: string; created_at: Date; email_verified_at: Date | null; password_hash: string }>>();
    const row = (id: string) => rows.find((r) => r.id === id)!;
    expect(byName.get('exp-verified')).to.deep.equal({
      id: ids.verified,
      username: 'exp-verified',
      email: 'Verified@example.com',
      emailVerified: true,
      emailVerifiedAt: row(ids.verified).email_verified_at!.toISOString(),
      passwordHash: row(ids.verified).password_hash,
      disabled: false,
      createdAt: row(ids.verified).created_at.toISOString(),
      homeRegion: c.config.region,
      identities: [],
    });
    expect(byName.get('exp-unverified')).to.include({ email: 'unverified@example.com', emailVerified: false, emailVerifiedAt: null });
    expect(byName.get('exp-plain')).to.include({ email: null, emailVerified: false, emailVerifiedAt: null, disabled: false });
    expect(byName.get('exp-disabled')).to.include({ disabled: true });
    expect(byName.has('exp-deleted')).to.equal(false);
    expect(byName.get('exp-linked')!.identities, 'by provider and subject').to.deep.equal([
      { provider: 'github', subject: 'gh-7', email: null, emailVerified: false },
      { provider: 'google', subject: 'google-sub-1', email: 'linked@gmail.example', emailVerified: true },
    ]);
  });

  it('password hashes are standard PHC strings that libargon2 verifies (an old-order one reordered); a foreign hash is exported as stored', async function () {
    const { users } = await exportToFile('hashes.ndjson');
    const byName = new Map(users.map((u) => [u.username ?? '', u]));
    for (const user of users.filter((u) => u.username !== 'exp-bcrypt')) {
      expect(user.passwordHash, user.username ?? '').to.match(/^\$argon2id\$v=19\$m=19456,t=2,p=1\$[A-Za-z0-9+/]+\$[A-Za-z0-9+/]+$/);
    }
    const stored = (await c.db.writer('users').where({ id: ids.oldOrder }).first<{ password_hash: string }>('password_hash')).password_hash;
    expect(stored, 'stored in the package order').to.match(/\$m=19456,p=1,t=2\$/);
    expect(byName.get('exp-old-order')!.passwordHash!.split('$').slice(-2), 'same salt and digest').to.deep.equal(stored.split('$').slice(-2));
    const bcrypt = (await c.db.writer('users').where({ id: ids.bcrypt }).first<{ password_hash: string }>('password_hash')).password_hash;
    expect(byName.get('exp-bcrypt')!.passwordHash).to.equal(bcrypt);
    expect(hashFormat(bcrypt)).to.equal('bcrypt');
    if (!cffi) return this.skip();
    expect(await libargon2(byName.get('exp-plain')!.passwordHash!, PASSWORD)).to.equal('match');
    expect(await libargon2(byName.get('exp-old-order')!.passwordHash!, PASSWORD)).to.equal('match');
    expect(await libargon2(byName.get('exp-old-order')!.passwordHash!, `${PASSWORD}!`)).to.equal('mismatch');
  });

  it('never exports a second factor, a recovery code or a session: none of their stored values is in the output', async function () {
    const run = await cli(['user', 'export']);
    expect(run.code, describeRun(run)).to.equal(0);
    const w = c.db.writer;
    const factors = await w('mfa_factors').where({ user_id: ids.mfa });
    const codes = await w('mfa_recovery_codes').where({ user_id: ids.mfa });
    const sessions = await w('sessions').where({ user_id: ids.mfa });
    expect(factors).to.have.length(1);
    expect(codes).to.have.length(10);
    expect(sessions).to.have.length.greaterThan(0);
    const secrets = [
      ...factors.flatMap((f: Record<string, unknown>) => [f.id, f.secret_sealed]),
      ...codes.flatMap((r: Record<string, unknown>) => [r.id, r.code_hash]),
      ...sessions.map((s: Record<string, unknown>) => s.id),
    ];
    for (const secret of secrets) expect(run.stdout).not.to.contain(String(secret));
    const mfa = parseExport(run.stdout).find((u) => u.id === ids.mfa)!;
    expect(Object.keys(mfa)).to.deep.equal(FIELDS);
    expect(run.stdout).not.to.match(/totp|recovery|secret|session/i);
  });

  it('--out never replaces an existing file without --force (exit 4, the file untouched); --force replaces it; standard output gets the same lines', async function () {
    const file = join(dir, 'existing.ndjson');
    writeFileSync(file, 'keep me\n');
    const refused = expectJsonError(await cli(['user', 'export', '--out', file, '--json']), 4, 'conflict');
    expect(refused.message).to.match(/already exists: pass --force/);
    const human = await cli(['user', 'export', '--out', file]);
    expect(human.code, describeRun(human)).to.equal(4);
    expect(human.stderr).to.match(/existing\.ndjson already exists/);
    expectNoStackTrace(human.stderr);
    expect(readFileSync(file, 'utf8')).to.equal('keep me\n');

    const forced = await cli(['user', 'export', '--out', file, '--force']);
    expect(forced.code, describeRun(forced)).to.equal(0);
    expect(forced.stdout).to.match(/^Exported 8 users \(2 provider identities\) in [\d.]+ s to .*existing\.ndjson\.$/m);
    const toStdout = await cli(['user', 'export']);
    expect(toStdout.code, describeRun(toStdout)).to.equal(0);
    expect(toStdout.stdout).to.equal(readFileSync(file, 'utf8'));
    expect(toStdout.stderr, 'the summary goes to standard error').to.match(/^Exported 8 users/m);
    expect(
      readdirSync(dir).filter((f) => f.endsWith('.tmp')),
      'no temporary file left',
    ).to.deep.equal([]);
  });

  it('a failed export leaves no file at all (unreachable database: exit 69); --json without --out is refused (exit 2)', async function () {
    const file = join(dir, 'failed.ndjson');
    const down = await runCli(['user', 'export', '--out', file, '--json'], { databaseUrl: 'postgres://postgres@127.0.0.1:9/none' });
    expectJsonError(down, 69, 'unavailable');
    expect(existsSync(file)).to.equal(false);
    expect(readdirSync(dir).filter((f) => f.startsWith('.failed'))).to.deep.equal([]);
    const noOut = expectJsonError(await cli(['user', 'export', '--json']), 2, 'invalid_request');
    expect(noOut.message).to.match(/--json needs --out/);
    expectJsonError(await cli(['user', 'export', '--format', 'csv', '--json']), 2, 'invalid_request');
  });

  it('a write that fails halfway publishes nothing: no file under the name, no temporary file', async function () {
    const file = join(dir, 'half.ndjson');
    const failure = await writeOutputFile(file, { force: false }, async (out) => {
      // Written to the temporary file before the failure.
      await new Promise<void>((resolve) => out.write('{"id":"half"}\n', () => resolve()));
      throw new Error('the database went away');
    }).catch((err: unknown) => err);
    expect((failure as Error).message).to.equal('the database went away');
    expect(readdirSync(dir).filter((f) => f.includes('half'))).to.deep.equal([]);
  });

  describe('with a few thousand users', function () {
    const BULK = 3_200;
    before(async function () {
      await c.db.writer.raw(
        `insert into users (id, username, password_hash, status, home_region, created_at, updated_at, password_changed_at)
         select gen_random_uuid(), 'bulk-' || g, null, 'active', ?, now(), now(), now() from generate_series(1, ?) g`,
        [c.config.region, BULK],
      );
    });

    /** A writable that holds its first chunk until `proceed` is called, then takes everything. */
    function heldOutput() {
      const chunks: string[] = [];
      let arrived!: () => void;
      let proceed!: () => void;
      const firstChunk = new Promise<void>((resolve) => (arrived = resolve));
      const released = new Promise<void>((resolve) => (proceed = resolve));
      const out = new Writable({
        highWaterMark: 1,
        write(chunk: Buffer, _encoding, done) {
          chunks.push(chunk.toString());
          if (chunks.length > 1) return done();
          arrived();
          void released.then(() => done());
        },
      });
      return { out, chunks, firstChunk, proceed };
    }

    it('streams page by page: one query per page of users (and one for its identities), never more than a page ahead of what the output took', async function () {
      const reads: number[] = [];
      const output: string[] = [];
      let taken = 0;
      const exporter = new UserExport({
        db: c.db,
        users: {
          count: () => c.repos.users.count(),
          pageById: async (after, limit, ex) => {
            reads.push(taken);
            return c.repos.users.pageById(after, limit, ex);
          },
        },
        identities: c.repos.identities,
      });
      // An output that takes a chunk only after a turn of the event loop: a slow disk or pipe.
      const slow = new Writable({
        highWaterMark: 1,
        write(chunk: Buffer, _encoding, done) {
          output.push(chunk.toString());
          setImmediate(() => {
            taken += 1;
            done();
          });
        },
      });
      const summary = await exporter.writeNdjson(slow, { pageSize: 500 });
      const total = Object.keys(ids).length - 1 + BULK;
      expect(summary).to.include({ users: total, pages: Math.ceil(total / 500) });
      expect(output).to.have.length(Math.ceil(total / 500));
      // Page n is read once the output has taken all but (at most) the two before it: the one
      // being written and the one the stream holds.
      reads.forEach((takenWhenRead, page) => expect(takenWhenRead, `page ${page}`).to.be.at.least(page - 2));
      const users = parseExport(output.join(''));
      expect(users).to.have.length(total);
      expect(new Set(users.map((u) => u.id)).size).to.equal(total);
    });

    it('is one snapshot: users renamed, deleted or registered while it runs are exported as they were when it began', async function () {
      const held = heldOutput();
      const before = parseExport((await cli(['user', 'export'])).stdout);
      const done = c.admin.export.writeNdjson(held.out, { pageSize: 1_000 });
      await held.firstChunk;
      // The first page is out; the rest is still to be read.
      const late = before.at(-1)!;
      await c.db.writer('users').where({ id: late.id }).update({ username: 'renamed-meanwhile' });
      const deleted = before.at(-2)!;
      await c.db.writer('users').where({ id: deleted.id }).delete();
      await c.users.register('exp-registered-meanwhile', PASSWORD);
      held.proceed();
      await done;
      expect(parseExport(held.chunks.join(''))).to.deep.equal(before);
      expect(parseExport((await cli(['user', 'export'])).stdout).find((u) => u.id === late.id)!.username, 'the next export sees it').to.equal(
        'renamed-meanwhile',
      );
    });
  });
});

describe('authctl user export, interrupted (Ctrl-C to the terminal, or a TERM to the command)', function () {
  this.timeout(120_000);
  let db: TestDatabase;
  let dir: string;

  before(async function () {
    dir = mkdtempSync(join(tmpdir(), 'authctl-export-signal-'));
    db = await createTestDatabase('user_export_signal');
    const c = buildContainer(testConfig(db.url));
    try {
      await migrate(c);
      // Enough users that the export is still writing when the signal comes (about a second here).
      await c.db.writer.raw(
        `insert into users (id, username, password_hash, status, home_region, created_at, updated_at, password_changed_at)
         select gen_random_uuid(), 'sig' || g, ?, 'active', 'local', now(), now(), now() from generate_series(1, 300000) g`,
        [bcryptHash(PASSWORD, 4)],
      );
    } finally {
      await shutdown(c);
    }
  });

  after(async () => {
    await db?.drop();
    rmSync(dir, { recursive: true, force: true });
  });

  for (const [signal, exitCode] of [
    ['SIGINT', 130],
    ['SIGTERM', 143],
  ] as const) {
    it(`${signal} while it writes: the process ends by the signal (exit ${exitCode}), and neither the file nor its temporary file is left`, async function () {
      const target = join(dir, `${signal}.ndjson`);
      // Detached: its own process group, as a shell gives a command it runs in the foreground.
      const child = spawn(process.execPath, ['bin/run.js', 'user', 'export', '--out', target], {
        cwd: repoRoot,
        env: cliEnv({ databaseUrl: db.url }),
        detached: true,
        stdio: 'ignore',
      });
      const exited = new Promise<number | null>((resolve) => child.on('exit', (code, sig) => resolve(code ?? (sig === signal ? exitCode : null))));
      const deadline = Date.now() + 30_000;
      while (!readdirSync(dir).some((f) => f.startsWith(`.${signal}.ndjson.`))) {
        if (Date.now() > deadline) throw new Error('the export never opened its temporary file');
        await new Promise((resolve) => setTimeout(resolve, 5));
      }
      // Ctrl-C reaches the whole process group; a TERM from a supervisor reaches the command alone.
      if (signal === 'SIGINT') process.kill(-child.pid!, signal);
      else child.kill(signal);
      expect(await exited).to.equal(exitCode);
      expect(readdirSync(dir).filter((f) => f.includes(`${signal}.ndjson`))).to.deep.equal([]);
    });
  }
});
