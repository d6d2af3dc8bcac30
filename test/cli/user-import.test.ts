import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect } from 'chai';
import type { ImportReport } from '../../src/admin/import/importer.js';
import { buildContainer, type Container } from '../../src/container.js';
import { hashFormat, pbkdf2Phc } from '../../src/core/users/hash-formats.js';
import { migrate, shutdown } from '../../src/runtime.js';
import { testConfig } from '../helpers/app.js';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';
import {
  argon2id,
  auth0ExportLine,
  auth0PasswordLine,
  bcrypt,
  djangoPbkdf2,
  keycloakArgon2Credential,
  keycloakOtpCredential,
  keycloakPbkdf2Credential,
  keycloakRealm,
  ndjson,
  pbkdf2PhcMatches,
  pbkdf2PhcOf,
  portableCsv,
  scryptPhc,
  supabaseCsv,
} from '../import/fixtures.js';
import { describeRun, expectJson, expectJsonError, expectNoStackTrace, runCli, type CliResult } from './run-cli.js';

const IDENTITY_ENV = {
  AUTHCTL_IDENTITY_USERNAME: 'optional',
  AUTHCTL_IDENTITY_EMAIL: 'optional',
  AUTHCTL_MAIL_TRANSPORT: 'log',
  AUTHCTL_MAIL_FROM: 'authctl <no-reply@example.com>',
};

interface StoredUser {
  id: string;
  username: string | null;
  email: string | null;
  email_verified_at: Date | null;
  password_hash: string | null;
  status: string;
  created_at: Date;
}

describe('authctl user import (spawned as a user runs it)', function () {
  this.timeout(60_000);
  let db: TestDatabase;
  let container: Container;
  let dir: string;
  const file = (name: string, content: string | Buffer): string => {
    const path = join(dir, name);
    writeFileSync(path, content);
    return path;
  };
  const cli = (args: string[]): Promise<CliResult> => runCli(['user', 'import', ...args], { databaseUrl: db.url, env: IDENTITY_ENV });
  const importJson = async (args: string[], exit = 0): Promise<ImportReport> => expectJson<ImportReport>(await cli([...args, '--json']), exit);
  const stored = async (where: string, value: string): Promise<StoredUser | undefined> => {
    const rows = await container.db.writer.raw<{ rows: StoredUser[] }>(`select * from users where ${where} = ?`, [value]);
    return rows.rows[0];
  };
  const count = async (table: string): Promise<number> => Number((await container.db.writer(table).count({ n: '*' }))[0]!.n);

  before(async function () {
    db = await createTestDatabase('cli_user_import');
    container = buildContainer(
      testConfig(db.url, { identity: { username: 'optional', email: 'optional' }, mail: { transport: 'log', from: 'authctl <no-reply@example.com>' } }),
    );
    await migrate(container);
    dir = mkdtempSync(join(tmpdir(), 'authctl-import-'));
  });
  after(async function () {
    await shutdown(container);
    await db?.drop();
    rmSync(dir, { recursive: true, force: true });
  });

  describe('--format ndjson', function () {
    it('imports each hash format as its stored string, with identities, verification, status and creation time', async function () {
      const keptId = randomUUID();
      const hashes = {
        argon: await argon2id('nd-argon-pass'),
        bcrypt: await bcrypt('nd-bcrypt-pass'),
        scrypt: scryptPhc('nd-scrypt-pass'),
        pbkdf2: pbkdf2PhcOf('nd-pbkdf2-pass', 'sha512'),
        django: djangoPbkdf2('nd-django-pass'),
      };
      const path = file(
        'users.ndjson',
        ndjson([
          { id: keptId, username: 'nd.argon', passwordHash: hashes.argon, createdAt: '2020-01-02T03:04:05.000Z' },
          { id: 'legacy-42', username: 'nd.bcrypt', email: 'ND.Bcrypt@Example.COM', emailVerified: true, passwordHash: hashes.bcrypt },
          { username: 'ND.Scrypt', passwordHash: hashes.scrypt, disabled: true },
          { email: 'nd.pbkdf2@example.com', emailVerifiedAt: '2022-02-02T02:02:02.000Z', passwordHash: hashes.pbkdf2 },
          {
            username: 'nd.django',
            passwordHash: hashes.django,
            identities: [{ provider: 'google', subject: 'g-nd-1', email: 'nd@gmail.example', emailVerified: true }],
          },
          { username: 'nd.nopass', passwordHash: null, identities: [{ provider: 'github', subject: '77' }] },
        ]),
      );
      const report = await importJson([path, '--format', 'ndjson']);
      expect(report).to.deep.include({ format: 'ndjson', dryRun: false, read: 6, imported: 6, skipped: 0, refused: 0, identities: 2, refusals: [] });
      expect(report.hashFormats).to.deep.equal({ argon2id: 1, bcrypt: 1, scrypt: 1, 'pbkdf2-sha512': 1, 'django-pbkdf2-sha256': 1, none: 1 });

      const argon = await stored('username', 'nd.argon');
      expect(argon).to.include({ id: keptId, password_hash: hashes.argon, status: 'active' });
      expect(argon!.created_at.toISOString()).to.equal('2020-01-02T03:04:05.000Z');
      const bc = await stored('username', 'nd.bcrypt');
      expect(bc).to.include({ email: 'ND.Bcrypt@example.com', password_hash: hashes.bcrypt });
      expect(bc!.email_verified_at).to.be.instanceOf(Date);
      expect(bc!.id)
        .to.match(/^[0-9a-f-]{36}$/)
        .and.not.equal('legacy-42');
      expect(await stored('username', 'nd.scrypt')).to.include({ status: 'disabled', password_hash: hashes.scrypt });
      const pb = await stored('email', 'nd.pbkdf2@example.com');
      expect(pb!.username).to.equal(null);
      expect(pb!.email_verified_at!.toISOString()).to.equal('2022-02-02T02:02:02.000Z');
      expect(hashFormat(pb!.password_hash!)).to.equal('pbkdf2-sha512');
      const dj = await stored('username', 'nd.django');
      const identities = await container.db.writer('user_identities').where({ user_id: dj!.id });
      expect(identities).to.have.length(1);
      expect(identities[0]).to.include({ provider: 'google', subject: 'g-nd-1', email: 'nd@gmail.example', email_verified: true });
      expect((await stored('username', 'nd.nopass'))!.password_hash).to.equal(null);
    });

    it('a rerun skips what it imported; a refused line fixed and rerun is imported; dry-run writes nothing', async function () {
      const hash = await bcrypt('rerun-pass');
      const bad = { username: 'rr.two', passwordHash: 'plaintext-oops' };
      const lines = [{ id: 'rr-1', username: 'rr.one', passwordHash: hash }, bad, { id: 'rr-3', email: 'rr.three@example.com', passwordHash: hash }];
      const path = file('rerun.ndjson', ndjson(lines));
      const users = await count('users');

      const dry = await importJson([path, '--format', 'ndjson', '--dry-run'], 1);
      expect(dry).to.deep.include({ dryRun: true, imported: 2, refused: 1 });
      expect(dry.refusals).to.deep.equal([
        { at: 2, reason: 'the password hash is in no format authctl verifies (argon2, bcrypt, scrypt, PBKDF2, Django PBKDF2)' },
      ]);
      expect(await count('users')).to.equal(users);
      expect(JSON.stringify(dry)).to.not.include('plaintext-oops');

      const first = await importJson([path, '--format', 'ndjson'], 1);
      expect(first).to.deep.include({ imported: 2, skipped: 0, refused: 1 });
      expect(await count('users')).to.equal(users + 2);

      bad.passwordHash = hash;
      writeFileSync(path, ndjson(lines));
      const second = await importJson([path, '--format', 'ndjson']);
      expect(second).to.deep.include({ imported: 1, skipped: 2, refused: 0 });
      const third = await importJson([path, '--format', 'ndjson']);
      expect(third).to.deep.include({ imported: 0, skipped: 3, refused: 0 });
      expect(await count('users')).to.equal(users + 3);
    });

    it('refuses bad usernames, addresses, duplicates in the file and in the database, and an id of another user, with their lines', async function () {
      const hash = await bcrypt('dup-pass');
      await container.users.register({ username: 'dup.taken', email: 'dup.taken@example.com', password: 'dup-taken-passphrase-1' });
      const taken = await container.users.find('dup.taken');
      const path = file(
        'dups.ndjson',
        ndjson([
          { username: 'dup.a', email: 'dup.a@example.com', passwordHash: hash },
          { username: 'x', passwordHash: hash },
          { username: 'dup b', passwordHash: hash },
          { email: 'not-an-address', passwordHash: hash },
          { username: 'DUP.A', passwordHash: hash },
          { username: 'dup.c', email: 'Dup.A@example.com', passwordHash: hash },
          { username: 'dup.taken', passwordHash: hash },
          { username: 'dup.d', email: 'DUP.TAKEN@example.com', passwordHash: hash },
          { id: taken.id, username: 'dup.e', passwordHash: hash },
          { username: 'dup.f', passwordHash: hash, extra: 1 },
          { passwordHash: hash },
          { username: 'dup.g', passwordHash: hash, identities: [{ provider: 'Google!', subject: '1' }] },
        ]),
      );
      const report = await importJson([path, '--format', 'ndjson'], 1);
      expect(report).to.deep.include({ imported: 1, refused: 11 });
      const reasons = Object.fromEntries(report.refusals.map((r) => [r.at, r.reason]));
      expect(reasons[2]).to.match(/username must be 3–64 characters/);
      expect(reasons[3]).to.match(/username may contain only/);
      expect(reasons[4]).to.match(/email must be one local part/);
      expect(reasons[5]).to.equal('the username "dup.a" is also on line 1');
      expect(reasons[6]).to.equal('the e-mail address is also on line 1');
      expect(reasons[7]).to.equal('the username "dup.taken" is taken here');
      expect(reasons[8]).to.equal('the e-mail address is taken here');
      expect(reasons[9]).to.equal(`the id ${taken.id} belongs to another user here (dup.taken)`);
      expect(reasons[10]).to.match(/Unrecognized key.*extra/);
      expect(reasons[11]).to.equal('the user has neither a username nor an e-mail address');
      expect(reasons[12]).to.match(/identity provider "Google!" is not a provider id/);
      expect(await stored('username', 'dup.e')).to.equal(undefined);

      const human = await cli([path, '--format', 'ndjson']);
      expect(human.code, describeRun(human)).to.equal(1);
      expect(human.stdout).to.match(/^Imported 0 users, skipped 1 already there, refused 11 \(12 records of .*dups\.ndjson/);
      expect(human.stdout).to.include('  line 7: the username "dup.taken" is taken here');
    });
  });

  describe('--format csv', function () {
    it("imports the portable record's columns (identities as JSON, booleans true/false)", async function () {
      const hash = await bcrypt('csv-pass');
      const columns = ['id', 'username', 'email', 'emailVerified', 'passwordHash', 'disabled', 'createdAt', 'identities'];
      const path = file(
        'users.csv',
        portableCsv(columns, [
          {
            id: 'csv-1',
            username: 'csv.one',
            email: 'csv.one@example.com',
            emailVerified: true,
            passwordHash: hash,
            disabled: false,
            createdAt: '2019-05-06T07:08:09.000Z',
            identities: [{ provider: 'google', subject: 'csv-g-1' }],
          },
          { username: 'csv.two', passwordHash: hash, disabled: true },
        ]) + 'csv.three,,,maybe,,,,\n',
      );
      const report = await importJson([path, '--format', 'csv'], 1);
      expect(report).to.deep.include({ imported: 2, identities: 1, refused: 1 });
      expect(report.refusals).to.deep.equal([{ at: 4, reason: 'emailVerified must be true or false' }]);
      const one = await stored('username', 'csv.one');
      expect(one).to.include({ email: 'csv.one@example.com', password_hash: hash, status: 'active' });
      expect(one!.created_at.toISOString()).to.equal('2019-05-06T07:08:09.000Z');
      expect(await stored('username', 'csv.two')).to.include({ status: 'disabled' });
    });

    it('wrong, unknown or missing columns make the file unusable (exit 65), naming them', async function () {
      const unknown = expectJsonError(
        await cli([file('unknown.csv', 'username,password,mail\nbob,x,y\n'), '--format', 'csv', '--json']),
        65,
        'invalid_import_file',
      );
      expect(unknown.message).to.include('unknown columns "password", "mail"').and.include('missing column passwordHash');
      const missing = expectJsonError(await cli([file('missing.csv', 'id,passwordHash\n1,x\n'), '--format', 'csv', '--json']), 65, 'invalid_import_file');
      expect(missing.message).to.include('missing column username or email');
      const human = await cli([file('repeated.csv', 'username,username,passwordHash\n'), '--format', 'csv']);
      expect(human.code, describeRun(human)).to.equal(65);
      expect(human.stderr).to.match(/^Error: the header row has repeated column username/);
      expectNoStackTrace(human.stderr);
    });
  });

  describe('--format keycloak', function () {
    it('imports a realm export: pbkdf2-sha256/512 and argon2 credentials as PHC strings, federated identities; refuses pbkdf2 (SHA-1) and service accounts by record', async function () {
      const sha256 = keycloakPbkdf2Credential('kc-sha256-pass');
      const ids = [randomUUID(), randomUUID(), randomUUID(), randomUUID(), randomUUID(), randomUUID()];
      const path = file(
        'acme-realm.json',
        keycloakRealm([
          {
            id: ids[0]!,
            username: 'kc.sha256',
            email: 'kc.sha256@example.com',
            emailVerified: true,
            enabled: true,
            createdTimestamp: 1_600_000_000_000,
            credentials: [sha256, keycloakOtpCredential()],
            realmRoles: ['default-roles-acme'],
          },
          { id: ids[1]!, username: 'kc.sha512', enabled: false, credentials: [keycloakPbkdf2Credential('kc-sha512-pass', 'pbkdf2-sha512', 210_000)] },
          { id: ids[2]!, username: 'kc.argon2', credentials: [await keycloakArgon2Credential('kc-argon2-pass')] },
          { id: ids[3]!, username: 'kc.sha1', credentials: [keycloakPbkdf2Credential('kc-sha1-pass', 'pbkdf2')] },
          { id: ids[4]!, username: 'service-account-backend', serviceAccountClientLink: 'backend' },
          {
            id: ids[5]!,
            username: 'kc.google',
            email: 'kc.google@gmail.example',
            federatedIdentities: [{ identityProvider: 'google', userId: '1098765', userName: 'kc.google@gmail.example' }],
          },
        ]),
      );
      const report = await importJson([path, '--format', 'keycloak'], 1);
      expect(report).to.deep.include({ unit: 'record', read: 6, imported: 4, identities: 1, refused: 2 });
      expect(report.refusals.map((r) => r.at)).to.deep.equal([4, 5]);
      expect(report.refusals[0]!.reason).to.match(/PBKDF2-SHA1, which authctl does not verify/);
      expect(report.refusals[1]!.reason).to.match(/service account/);

      const one = await stored('username', 'kc.sha256');
      const secret = JSON.parse(sha256.secretData) as { value: string; salt: string };
      expect(one).to.include({
        id: ids[0],
        email: 'kc.sha256@example.com',
        status: 'active',
        password_hash: pbkdf2Phc('sha256', 27_500, secret.salt, secret.value),
      });
      expect(one!.created_at.getTime()).to.equal(1_600_000_000_000);
      expect(pbkdf2PhcMatches(one!.password_hash!, 'kc-sha256-pass')).to.equal(true);
      expect(pbkdf2PhcMatches(one!.password_hash!, 'wrong-pass')).to.equal(false);
      const two = await stored('username', 'kc.sha512');
      expect(two).to.include({ status: 'disabled' });
      expect(two!.password_hash).to.match(/^\$pbkdf2-sha512\$i=210000\$/);
      expect(pbkdf2PhcMatches(two!.password_hash!, 'kc-sha512-pass')).to.equal(true);
      const argon = await stored('username', 'kc.argon2');
      expect(argon!.password_hash).to.match(/^\$argon2id\$v=19\$m=7168,t=5,p=1\$[A-Za-z0-9+/]{22}\$[A-Za-z0-9+/]{43}$/);
      const argon2 = (await import('argon2')).default;
      expect(await argon2.verify(argon!.password_hash!, 'kc-argon2-pass')).to.equal(true);
      const google = await stored('username', 'kc.google');
      expect(google!.password_hash).to.equal(null);
      expect(await container.db.writer('user_identities').where({ user_id: ids[5] }).first()).to.include({ provider: 'google', subject: '1098765' });
    });

    it('a truncated realm export imports the records before the break and stops with exit 65 at the record it broke in', async function () {
      const users = [0, 1, 2].map((i) => ({
        id: randomUUID(),
        username: `kc.cut${i}`,
        credentials: [keycloakPbkdf2Credential('cut-pass', 'pbkdf2-sha256', 1000)],
      }));
      const whole = keycloakRealm(users);
      const cut = whole.slice(0, whole.indexOf('kc.cut2') + 3);
      const report = await importJson([file('cut.json', cut), '--format', 'keycloak'], 65);
      expect(report).to.deep.include({ imported: 2, refused: 0 });
      expect(report.aborted).to.deep.include({ at: 3 });
      expect(report.aborted!.reason).to.match(/breaks off or is malformed in record 3/);
      const human = await cli([file('cut2.json', cut), '--format', 'keycloak']);
      expect(human.code, describeRun(human)).to.equal(65);
      expect(human.stdout).to.match(/Stopped at record 3: the JSON breaks off/);
      expectNoStackTrace(human.stderr);
      const none = expectJsonError(await cli([file('notjson.json', 'username,email\n'), '--format', 'keycloak', '--json']), 65, 'invalid_import_file');
      expect(none.message).to.match(/no Keycloak realm export here/);
      const usersElsewhere = expectJsonError(
        await cli([file('realm-only.json', JSON.stringify({ realm: 'acme', clients: [] })), '--format', 'keycloak', '--json']),
        65,
        'invalid_import_file',
      );
      expect(usersElsewhere.message).to.match(/<realm>-users-N\.json/);
    });
  });

  describe('--format supabase', function () {
    it('imports auth.users rows: bcrypt, confirmation, bans, identities; refuses deleted and phone-only users', async function () {
      const hash = await bcrypt('sb-pass');
      const [a, b, c, d] = [randomUUID(), randomUUID(), randomUUID(), randomUUID()];
      const path = file(
        'auth-users.csv',
        supabaseCsv([
          {
            id: a,
            email: 'sb.one@example.com',
            encrypted_password: hash,
            email_confirmed_at: '2023-04-05 06:07:08.123456+00',
            created_at: '2023-04-05 06:00:00.5+00',
            raw_app_meta_data: { provider: 'email', providers: ['email', 'google'] },
            identities: [
              { id: a, provider: 'email', provider_id: a, identity_data: { sub: a, email: 'sb.one@example.com' } },
              {
                id: randomUUID(),
                provider: 'google',
                provider_id: '11223344',
                email: 'sb.one@gmail.example',
                identity_data: { sub: '11223344', email_verified: true },
              },
            ],
          },
          {
            id: b,
            email: 'sb.banned@example.com',
            encrypted_password: hash,
            created_at: '2023-01-01 00:00:00+00',
            banned_until: '2999-01-01 00:00:00+00',
            raw_app_meta_data: { provider: 'email' },
            identities: [],
          },
          {
            id: c,
            email: 'sb.deleted@example.com',
            encrypted_password: hash,
            created_at: '2023-01-01 00:00:00+00',
            deleted_at: '2024-01-01 00:00:00+00',
            raw_app_meta_data: {},
            identities: [],
          },
          { id: d, email: null, encrypted_password: '', created_at: '2023-01-01 00:00:00+00', raw_app_meta_data: { provider: 'phone' }, identities: [] },
        ]),
      );
      const report = await importJson([path, '--format', 'supabase'], 1);
      expect(report).to.deep.include({ imported: 2, identities: 1, refused: 2 });
      expect(report.refusals).to.deep.equal([
        { at: 4, reason: 'the user is deleted in Supabase (deleted_at is set)' },
        { at: 5, reason: 'the user has no e-mail address (a phone-only or anonymous user)' },
      ]);
      const one = await stored('id', a);
      expect(one).to.include({ email: 'sb.one@example.com', password_hash: hash, status: 'active' });
      expect(one!.email_verified_at!.toISOString()).to.equal('2023-04-05T06:07:08.123Z');
      expect(one!.created_at.toISOString()).to.equal('2023-04-05T06:00:00.500Z');
      expect(await container.db.writer('user_identities').where({ user_id: a })).to.have.length(1);
      expect(await stored('id', b)).to.include({ status: 'disabled' });
      expect((await stored('id', b))!.email_verified_at).to.equal(null);
    });
  });

  describe('--format auth0', function () {
    it('joins the bulk user export with the password-hash export by user_id; reads the password-hash export alone too', async function () {
      const hash = await bcrypt('a0-pass');
      const users = file(
        'tenant.json',
        ndjson([
          auth0ExportLine({ oid: '5dea9f9c82dd7c0e76e4ec01', email: 'a0.one@example.com', email_verified: true, username: 'a0one' }),
          auth0ExportLine({ oid: '5dea9f9c82dd7c0e76e4ec02', email: 'a0.blocked@example.com', blocked: true }),
          auth0ExportLine({ oid: 'x', email: 'a0.social@gmail.example', social: { provider: 'google-oauth2', user_id: '10987' } }),
        ]),
      );
      const passwords = file(
        'hashes.json',
        ndjson([
          auth0PasswordLine('5dea9f9c82dd7c0e76e4ec01', 'a0.one@example.com', hash),
          auth0PasswordLine('5dea9f9c82dd7c0e76e4ec02', 'a0.blocked@example.com', hash),
        ]),
      );
      const report = await importJson([users, '--format', 'auth0', '--passwords', passwords]);
      expect(report).to.deep.include({ imported: 3, identities: 1, refused: 0 });
      expect(report.hashFormats).to.deep.equal({ bcrypt: 2, none: 1 });
      const one = await stored('username', 'a0one');
      expect(one).to.include({ email: 'a0.one@example.com', password_hash: hash });
      expect(one!.created_at.toISOString()).to.equal('2021-03-04T05:06:07.890Z');
      expect(await stored('email', 'a0.blocked@example.com')).to.include({ status: 'disabled', password_hash: hash });
      const social = await stored('email', 'a0.social@gmail.example');
      expect(await container.db.writer('user_identities').where({ user_id: social!.id }).first()).to.include({ provider: 'google', subject: '10987' });

      // The password-hash export alone: the same users (same ids), so a rerun of it skips them.
      const alone = await importJson([passwords, '--format', 'auth0']);
      expect(alone).to.deep.include({ imported: 0, skipped: 2 });
      const fresh = await importJson([
        file('hashes2.json', ndjson([auth0PasswordLine('5dea9f9c82dd7c0e76e4ec03', 'a0.three@example.com', hash)])),
        '--format',
        'auth0',
      ]);
      expect(fresh).to.deep.include({ imported: 1 });
      expect(await stored('email', 'a0.three@example.com')).to.include({ password_hash: hash });
      expectJsonError(await cli([users, '--format', 'ndjson', '--passwords', passwords, '--json']), 2, 'invalid_request');
    });
  });

  describe('malformed files', function () {
    it('a 10 MB line and a line of invalid UTF-8 are refused by line; the others are imported', async function () {
      const hash = await bcrypt('big-pass');
      const long = JSON.stringify({ username: 'big.long', passwordHash: hash, email: `${'a'.repeat(10 * 1024 * 1024)}@example.com` });
      const latin1 = Buffer.from(`{"username":"big.caf\xe9","passwordHash":"${hash}"}\n`, 'latin1');
      const content = Buffer.concat([
        Buffer.from(ndjson([{ username: 'big.one', passwordHash: hash }]) + long + '\n'),
        latin1,
        Buffer.from(ndjson([{ username: 'big.two', passwordHash: hash }]).replace('\n', '\r\n')),
      ]);
      const report = await importJson([file('big.ndjson', content), '--format', 'ndjson'], 1);
      expect(report).to.deep.include({ read: 4, imported: 2, refused: 2 });
      expect(report.refusals).to.deep.equal([
        { at: 2, reason: 'the line is longer than 1048576 bytes' },
        { at: 3, reason: 'the line is not valid UTF-8' },
      ]);
      const csv = Buffer.concat([Buffer.from('username,passwordHash\n'), Buffer.from(`csv.caf\xe9,${hash}\n`, 'latin1'), Buffer.from(`csv.fine,${hash}\n`)]);
      const csvReport = await importJson([file('latin1.csv', csv), '--format', 'csv'], 1);
      expect(csvReport).to.deep.include({ imported: 1, refused: 1 });
      expect(csvReport.refusals).to.deep.equal([{ at: 2, reason: 'the line is not valid UTF-8' }]);
    });

    it('an empty file, a binary file, a gzip file and a missing file are refused whole, without a stack trace', async function () {
      for (const [name, content, message] of [
        ['empty.ndjson', '', /the file is empty/],
        ['blank.csv', '\n\n  \n', /the file is empty/],
        ['binary.ndjson', Buffer.from([0x7f, 0x45, 0x4c, 0x46, 0x02, 0x01, 0x00, 0x00, 0x10]), /the file is binary/],
        ['users.ndjson.gz', Buffer.from([0x1f, 0x8b, 0x08, 0x00, 0x00, 0x00, 0x00, 0x00]), /gzip-compressed: unpack it first/],
      ] as const) {
        for (const format of ['ndjson', 'csv', 'keycloak']) {
          const result = await cli([file(name, content), '--format', format]);
          expect(result.code, `${name} as ${format}: ${describeRun(result)}`).to.equal(65);
          expect(result.stderr).to.match(message);
          expectNoStackTrace(result.stderr);
        }
      }
      expectJsonError(await cli([join(dir, 'nope.ndjson'), '--format', 'ndjson', '--json']), 3, 'not_found');
      expectJsonError(await cli([dir, '--format', 'ndjson', '--json']), 2, 'invalid_request');
    });
  });
});
