import { pbkdf2Sync, randomBytes, scryptSync } from 'node:crypto';
import bcrypt from '@node-rs/bcrypt';
import { expect } from 'chai';
import { verifyAnyHash } from '../../src/core/users/foreign-hashes.js';
import { hashFormat, HASH_COST_LIMITS, parseHash } from '../../src/core/users/hash-formats.js';
import { FLOOR_MARGIN, PasswordHasher } from '../../src/core/users/password-hasher.js';
import { startTestApp, type TestApp } from '../helpers/app.js';
import { createAccount, expectProblem } from '../helpers/http-assert.js';
import { eventually } from '../regions/support.js';
import { djangoHash, fixtures, phcB64, storedHash, storeHash, type Fixture } from './hash-fixtures.js';

const PASSWORD = 'correct horse battery staple';
const WRONG = 'correct horse battery stapler';

/** Resolves to how long `work` took, ms. */
async function timed(work: () => Promise<unknown>): Promise<number> {
  const started = performance.now();
  await work();
  return performance.now() - started;
}

describe('imported password hashes: every format verifies at login and is replaced by argon2id', function () {
  this.timeout(120_000);
  let app: TestApp;
  let all: Fixture[];

  before(async function () {
    all = await fixtures(PASSWORD);
    // The throttle is off: each format is tried with a wrong password before the right one.
    app = await startTestApp('foreign_hashes', { overrides: { rateLimit: { enabled: false } } });
  });
  after(async () => app?.close());

  describe('verification (no server)', function () {
    it('each fixture is detected as its format, matches its password and refuses another', async function () {
      expect(all.map((f) => f.format)).to.include.members(['argon2i', 'argon2d', 'bcrypt', 'scrypt', 'pbkdf2-sha256', 'pbkdf2-sha512', 'django-pbkdf2-sha256']);
      for (const f of all) {
        expect(hashFormat(f.hash), f.name).to.equal(f.format);
        expect(await verifyAnyHash(f.hash, PASSWORD), `${f.name}: right password`).to.equal(true);
        expect(await verifyAnyHash(f.hash, WRONG), `${f.name}: wrong password`).to.equal(false);
        expect(await verifyAnyHash(f.hash, ''), `${f.name}: empty password`).to.equal(false);
      }
    });

    it("Django's own known-answer vectors (its test_hashers: 'lètmein', salt 'seasalt') verify; the same with one byte changed does not", async function () {
      // Django 1.5's test_pbkdf2 (10,000 iterations) and 2.1's (120,000): UTF-8 password, the salt's text.
      const vectors = [
        'pbkdf2_sha256$10000$seasalt$CWWFdHOWwPnki7HvkcqN9iA2T3KLW1cf2uZ5kvArtVY=',
        'pbkdf2_sha256$120000$seasalt$fsgWMpOXin7ZAmi4j+7XjKCZ4JCvxJTGiwwDrawRqSc=',
      ];
      for (const vector of vectors) {
        expect(hashFormat(vector)).to.equal('django-pbkdf2-sha256');
        expect(await verifyAnyHash(vector, 'lètmein'), vector).to.equal(true);
        expect(await verifyAnyHash(vector, 'letmein'), 'the UTF-8 bytes count').to.equal(false);
        expect(await verifyAnyHash(vector.replace('seasalt', 'seasalu'), 'lètmein')).to.equal(false);
      }
      // The fixture builder is Django's construction: it reproduces the vector.
      expect(djangoHash('lètmein', 10_000, 'seasalt')).to.equal(vectors[0]);
    });

    it('PasswordHasher.verify dispatches by format; needsRehash is true for every foreign hash, false for its own', async function () {
      const hasher = new PasswordHasher();
      for (const f of all) {
        expect(await hasher.verify(f.hash, PASSWORD), f.name).to.equal(true);
        expect(await hasher.verify(f.hash, WRONG), f.name).to.equal(false);
        expect(hasher.needsRehash(f.hash), f.name).to.equal(true);
        const upgraded = await hasher.upgrade(f.hash, PASSWORD);
        expect(upgraded, f.name).to.match(/^\$argon2id\$v=19\$m=19456,t=2,p=1\$/);
        expect(await hasher.verify(upgraded!, PASSWORD)).to.equal(true);
      }
      expect(hasher.needsRehash(await hasher.hash(PASSWORD))).to.equal(false);
    });

    it("bcrypt's 72-byte limit: only the first 72 bytes of the password count (as at the source); after the rehash the whole password does", async function () {
      const long = `${'é'.repeat(36)}the tail`; // 72 bytes of UTF-8, then more
      const hash = await bcrypt.hash(long, 4);
      expect(await verifyAnyHash(hash, long)).to.equal(true);
      expect(await verifyAnyHash(hash, `${'é'.repeat(36)}another tail`), 'the tail is not read').to.equal(true);
      expect(await verifyAnyHash(hash, `${'é'.repeat(35)}e`), 'the first 72 bytes are').to.equal(false);
      const hasher = new PasswordHasher();
      const upgraded = (await hasher.upgrade(hash, long))!;
      expect(await hasher.verify(upgraded, long)).to.equal(true);
      expect(await hasher.verify(upgraded, `${'é'.repeat(36)}another tail`), 'argon2id reads it all').to.equal(false);
    });

    it('malformed hashes are false, never a throw: truncated, bad characters, wrong digest length, unknown scheme, not a string', async function () {
      const bcryptHash = all.find((f) => f.name === 'bcrypt $2b$')!.hash;
      const scrypt = all.find((f) => f.format === 'scrypt')!.hash;
      const pbkdf2 = all.find((f) => f.format === 'pbkdf2-sha256')!.hash;
      const argon = all.find((f) => f.format === 'argon2i')!.hash;
      const malformed = [
        '',
        '$',
        '$$$$',
        bcryptHash.slice(0, -1),
        `${bcryptHash}x`,
        bcryptHash.replace('$2b$', '$2x$'),
        bcryptHash.replace('$2b$10$', '$2b$03$'),
        `${bcryptHash.slice(0, 20)}!${bcryptHash.slice(21)}`,
        scrypt.slice(0, scrypt.lastIndexOf('$')),
        scrypt.replace(/\$[^$]+$/, '$AAAA'), // a 3-byte digest
        scrypt.replace('ln=14', 'ln=0'),
        scrypt.replace('r=8', 'r=0'),
        pbkdf2.replace('i=30000', 'i=0'),
        pbkdf2.replace('i=30000', 'i=abc'),
        pbkdf2.replace('$pbkdf2-sha256$', '$pbkdf2-md5$'),
        argon.replace('v=19', 'v=20'),
        argon.replace(/\$[^$]+$/, '$!!!!'),
        'pbkdf2_sha256$10000$seasalt$tooshort=',
        'pbkdf2_sha1$10000$seasalt$CWWFdHOWwPnki7HvkcqN9iA2T3KLW1cf2uZ5kvArtVY=',
        'md5$salt$5f4dcc3b5aa765d61d8327deb882cf99',
        '5f4dcc3b5aa765d61d8327deb882cf99',
        `$2b$10$${'a'.repeat(5_000)}`,
      ];
      const hasher = new PasswordHasher();
      for (const hash of malformed) {
        expect(hashFormat(hash), hash.slice(0, 60)).to.equal(undefined);
        expect(await verifyAnyHash(hash, PASSWORD), hash.slice(0, 60)).to.equal(false);
        expect(await hasher.verify(hash, PASSWORD), hash.slice(0, 60)).to.equal(false);
      }
      for (const value of [null, undefined, 42, {}] as unknown as string[]) expect(await verifyAnyHash(value, PASSWORD)).to.equal(false);
    });

    it('hostile costs are refused at once, before any work: scrypt needing gigabytes, PBKDF2 and bcrypt needing minutes, argon2 needing 4 GiB+', async function () {
      const salt = phcB64(randomBytes(16));
      const digest = phcB64(randomBytes(32));
      const hostile = [
        `$scrypt$ln=30,r=8,p=1$${salt}$${digest}`, // 128 GiB
        `$scrypt$ln=17,r=8,p=1$${salt}$${digest}`, // 128 MiB: over the 64 MiB bound
        `$scrypt$ln=14,r=999,p=1$${salt}$${digest}`,
        `$scrypt$ln=14,r=8,p=999$${salt}$${digest}`,
        `$pbkdf2-sha256$i=99999999$${salt}$${digest}`,
        `$pbkdf2-sha512$i=${HASH_COST_LIMITS.pbkdf2Iterations + 1}$${salt}$${digest}`,
        `pbkdf2_sha256$99999999$seasalt$CWWFdHOWwPnki7HvkcqN9iA2T3KLW1cf2uZ5kvArtVY=`,
        `$2b$31$${'a'.repeat(53)}`,
        `$2b$${HASH_COST_LIMITS.bcryptCost + 1}$${'a'.repeat(53)}`,
        `$argon2id$v=19$m=9999999,t=2,p=1$${salt}$${digest}`,
        `$argon2i$v=19$m=19456,t=999,p=1$${salt}$${digest}`,
      ];
      for (const hash of hostile) {
        expect(parseHash(hash), hash).to.equal(undefined);
        const ms = await timed(async () => expect(await verifyAnyHash(hash, PASSWORD), hash).to.equal(false));
        expect(ms, `${hash}: refused without running`).to.be.below(20);
      }
      // At the bounds they are verified (the bounds are no lower than what sources write).
      const atBound = scryptSync(PASSWORD, 'salt', 32, { N: 2 ** 16, r: 8, p: 1, maxmem: 80 * 1024 * 1024 });
      expect(await verifyAnyHash(`$scrypt$ln=16,r=8,p=1$${phcB64(Buffer.from('salt'))}$${phcB64(atBound)}`, PASSWORD)).to.equal(true);
      const django1M = `pbkdf2_sha256$1200000$pepper$${pbkdf2Sync(PASSWORD, 'pepper', 1_200_000, 32, 'sha256').toString('base64')}`;
      expect(await verifyAnyHash(django1M, PASSWORD), "Django 5.2's iterations").to.equal(true);
    });

    it('the failure floor: 0 (no padding) with argon2id alone; a foreign verification sets it, every failed check then lasts at least it; calibrating with no samples ends it', async function () {
      const hasher = new PasswordHasher();
      const own = await hasher.hash(PASSWORD);
      await hasher.verify(own, WRONG);
      await hasher.dummyVerify(WRONG);
      expect(hasher.failureFloor, 'argon2id only: nothing added').to.equal(0);

      const bcryptHash = all.find((f) => f.name === 'bcrypt $2b$')!.hash;
      const rawMs = await timed(() => bcrypt.verify(WRONG, bcryptHash));
      // This first one sets the floor from its own run, and is padded to it too.
      const bcryptMs = await timed(() => hasher.verify(bcryptHash, WRONG));
      const floor = hasher.failureFloor;
      expect(floor, `one bcrypt run ${rawMs.toFixed(1)} ms`).to.be.above(rawMs * FLOOR_MARGIN * 0.5);
      expect(bcryptMs).to.be.at.least(floor - 1);
      for (const check of [
        () => hasher.verify(own, WRONG),
        () => hasher.dummyVerify(WRONG),
        () => hasher.verify(null, WRONG),
        () => hasher.verify('garbage', WRONG),
      ]) {
        expect(await timed(check), 'padded to the floor').to.be.at.least(floor - 1);
      }
      // A success is not padded (it tells nothing an attacker does not know).
      expect(await timed(() => hasher.verify(own, PASSWORD))).to.be.below(floor);

      const calibrated = await hasher.calibrateFloor([bcryptHash]);
      expect(calibrated).to.be.above(0);
      // A recalibration (every 5 minutes) keeps the floor in force until its new figure is ready.
      const again = hasher.calibrateFloor([bcryptHash]);
      expect(hasher.failureFloor, 'the floor while recalibrating').to.equal(calibrated);
      expect(await again).to.be.above(0);
      expect(await hasher.calibrateFloor([])).to.equal(0);
      expect(await timed(() => hasher.verify('garbage', WRONG)), 'no floor: no wait').to.be.below(5);
    });
  });

  describe('over HTTP (the user’s hash set in the users table, as an import stores it)', function () {
    it('for each format: a wrong password is 401 invalid_credentials and changes nothing; the right one logs in, the hash becomes argon2id, and the same password logs in again', async function () {
      for (const f of all) {
        const account = await createAccount(app, 'imported');
        await storeHash(app, account.username, f.hash);
        const login = (password: string) => app.request('/v1/auth/login', { method: 'POST', json: { username: account.username, password } });

        await expectProblem(await login(WRONG), 401, 'invalid_credentials');
        expect(await storedHash(app, account.username), `${f.name}: a failed login keeps the hash`).to.equal(f.hash);

        const ok = await login(PASSWORD);
        expect(ok.status, `${f.name}: ${await ok.clone().text()}`).to.equal(200);
        expect(((await ok.json()) as { accessToken?: unknown }).accessToken).to.be.a('string');
        const replaced = await eventually(`${f.name} rehashed`, async () => {
          const now = await storedHash(app, account.username);
          return now !== f.hash ? now : undefined;
        });
        expect(replaced, f.name).to.match(/^\$argon2id\$v=19\$m=19456,t=2,p=1\$/);
        expect((await login(PASSWORD)).status, `${f.name}: after the rehash`).to.equal(200);
        await expectProblem(await login(WRONG), 401, 'invalid_credentials');
      }
    });

    it('a hostile stored hash (scrypt asking for 128 GiB) is a plain 401 for any password, answered at once, and the server carries on', async function () {
      const account = await createAccount(app, 'hostile');
      await storeHash(app, account.username, `$scrypt$ln=30,r=8,p=1$${phcB64(randomBytes(16))}$${phcB64(randomBytes(32))}`);
      for (const password of [account.password, WRONG]) {
        await expectProblem(
          await app.request('/v1/auth/login', { method: 'POST', json: { username: account.username, password } }),
          401,
          'invalid_credentials',
        );
      }
      expect((await app.request('/healthz')).status).to.equal(200);
    });

    it('the servers measure the floor from the foreign hashes stored (one sample per format and cost) and drop it once they are all replaced', async function () {
      const hasher = (app.container.users as unknown as { opts: { hasher: PasswordHasher } }).opts.hasher;
      // Every fixture user above has been rehashed; only the hostile one (refused) is foreign.
      const samples = await app.container.repos.stats.foreignHashSamples();
      expect(samples.map((s) => s.slice(0, 8))).to.deep.equal(['$scrypt$']);

      const account = await createAccount(app, 'floor');
      await storeHash(app, account.username, await bcrypt.hash(PASSWORD, 10));
      const other = await createAccount(app, 'floor');
      await storeHash(app, other.username, await bcrypt.hash(PASSWORD, 10));
      expect((await app.container.repos.stats.foreignHashSamples()).map((s) => s.slice(0, 7)).sort(), 'one per class').to.deep.equal(['$2b$10$', '$scrypt']);
      await app.container.failureFloor.refresh();
      const measured = hasher.failureFloor;
      const stored = (await storedHash(app, account.username))!;
      const bcryptMs = await timed(() => bcrypt.verify(WRONG, stored));
      expect(measured, `floor ${measured.toFixed(1)} ms vs one bcrypt run ${bcryptMs.toFixed(1)} ms`).to.be.above(bcryptMs);

      for (const a of [account, other]) {
        expect((await app.request('/v1/auth/login', { method: 'POST', json: { username: a.username, password: PASSWORD } })).status).to.equal(200);
        await eventually('rehashed', async () => ((await storedHash(app, a.username))?.startsWith('$argon2id$') ? true : undefined));
      }
      await app.container.db.writer.raw(`update users set password_hash = null where password_hash like '$scrypt$%'`);
      await app.container.failureFloor.refresh();
      expect(hasher.failureFloor, 'no foreign hash left: no padding').to.equal(0);
    });
  });
});
