import argon2 from 'argon2';
import { expect } from 'chai';
import { PasswordHasher, standardPhc } from '../../src/core/users/password-hasher.js';
import * as standardHashes from '../../src/store/pg/migrations/0011-standard-hashes.js';
import { startTestApp, type TestApp } from '../helpers/app.js';
import { haveArgon2Cffi, libargon2 } from '../helpers/libargon2.js';
import { eventually } from '../regions/support.js';

const PASSWORD = 'correct horse battery staple';

/** The order the argon2 package writes (m, p, t), as hashes stored before 0011-standard-hashes are. */
async function packageOrderHash(password: string, params = { memoryCost: 19_456, timeCost: 2, parallelism: 1 }): Promise<string> {
  const hash = await argon2.hash(password, { type: argon2.argon2id, ...params });
  expect(hash, 'the argon2 package still writes m,p,t').to.match(/\$m=\d+,p=\d+,t=\d+\$/);
  return hash;
}

describe('password hashes are standard PHC strings (verified by libargon2 through argon2-cffi)', function () {
  this.timeout(60_000);
  let app: TestApp;
  let cffi = true;

  before(async function () {
    cffi = await haveArgon2Cffi();
    app = await startTestApp('standard-hashes');
  });

  after(async () => {
    await app?.close();
  });

  async function storedHash(username: string): Promise<{ hash: string; version: string; changedAt: Date }> {
    const row = await app.container.db
      .writer('users')
      .where({ username })
      .first<{ password_hash: string; version: string; password_changed_at: Date }>('password_hash', 'version', 'password_changed_at');
    return { hash: row.password_hash, version: String(row.version), changedAt: row.password_changed_at };
  }

  async function register(username: string): Promise<void> {
    const res = await app.request('/v1/auth/register', { method: 'POST', json: { username, password: PASSWORD } });
    expect(res.status).to.equal(201);
  }

  async function login(username: string, password = PASSWORD): Promise<number> {
    return (await app.request('/v1/auth/login', { method: 'POST', json: { username, password } })).status;
  }

  it('the argon2 package writes m,p,t, which libargon2 refuses to decode; standardPhc reorders it and nothing else', async function () {
    const raw = await packageOrderHash(PASSWORD);
    const standard = standardPhc(raw);
    expect(standard).to.match(/^\$argon2id\$v=19\$m=19456,t=2,p=1\$[^$]+\$[^$]+$/);
    // Salt and digest are the same bytes.
    expect(standard.split('$').slice(-2)).to.deep.equal(raw.split('$').slice(-2));
    expect(standardPhc(standard)).to.equal(standard);
    expect(standardPhc('$2b$10$abcdefghijklmnopqrstuu')).to.equal('$2b$10$abcdefghijklmnopqrstuu');
    if (!cffi) return this.skip();
    expect(await libargon2(raw, PASSWORD)).to.match(/^refused/);
    expect(await libargon2(standard, PASSWORD)).to.equal('match');
  });

  it('a registered user’s stored hash is a standard string that libargon2 verifies (and refuses for a wrong password)', async function () {
    await register('phc-alice');
    const { hash } = await storedHash('phc-alice');
    expect(hash).to.match(/^\$argon2id\$v=19\$m=19456,t=2,p=1\$/);
    expect(await login('phc-alice')).to.equal(200);
    if (!cffi) return this.skip();
    expect(await libargon2(hash, PASSWORD)).to.equal('match');
    expect(await libargon2(hash, `${PASSWORD}!`)).to.equal('mismatch');
  });

  it('a stored hash in the old order still logs in, and the login rewrites it in the standard order (same salt and digest, no password change)', async function () {
    await register('phc-bob');
    const old = await packageOrderHash(PASSWORD);
    await app.container.db.writer('users').where({ username: 'phc-bob' }).update({ password_hash: old });
    const before = await storedHash('phc-bob');
    expect(await login('phc-bob', 'wrong password')).to.equal(401);
    expect((await storedHash('phc-bob')).hash, 'a failed login changes nothing').to.equal(old);

    expect(await login('phc-bob')).to.equal(200);
    const after = await eventually('the rewritten hash', async () => {
      const now = await storedHash('phc-bob');
      return now.hash !== old ? now : undefined;
    });
    expect(after.hash).to.equal(standardPhc(old));
    expect(Number(after.version)).to.equal(Number(before.version) + 1); // it replicates
    expect(after.changedAt.getTime(), 'not a password change').to.equal(before.changedAt.getTime());
    expect(await login('phc-bob')).to.equal(200);
    if (!cffi) return this.skip();
    expect(await libargon2(after.hash, PASSWORD)).to.equal('match');
  });

  it('a hash with older cost parameters is replaced by one with the current parameters at the next login', async function () {
    await register('phc-carol');
    const weak = await packageOrderHash(PASSWORD, { memoryCost: 8_192, timeCost: 1, parallelism: 1 });
    await app.container.db.writer('users').where({ username: 'phc-carol' }).update({ password_hash: weak });
    expect(await login('phc-carol')).to.equal(200);
    const after = await eventually('the new hash', async () => {
      const now = await storedHash('phc-carol');
      return now.hash !== weak ? now : undefined;
    });
    expect(after.hash).to.match(/^\$argon2id\$v=19\$m=19456,t=2,p=1\$/);
    expect(after.hash.split('$').at(-2), 'a fresh salt').not.to.equal(weak.split('$').at(-2));
    expect(await new PasswordHasher().verify(after.hash, PASSWORD)).to.equal(true);
  });

  it('migration 0011 rewrites every stored argon2 string in the standard order, ships nothing to the peers and bumps no version', async function () {
    await register('phc-dave');
    await register('phc-erin');
    const w = app.container.db.writer;
    const old = await packageOrderHash(PASSWORD);
    const outbox = async () => Number((await w('replication_outbox').count<Array<{ count: string }>>('* as count'))[0]!.count);
    await w('replication_peers').insert({ name: 'peer-x', url: 'http://127.0.0.1:9' }).onConflict('name').ignore();
    const shippedBefore = await outbox();
    // A change outside the migration is captured for the peer (so the count below can move).
    await w('users').whereIn('username', ['phc-dave', 'phc-erin']).update({ password_hash: old });
    await w('users').where({ username: 'phc-erin' }).update({ password_hash: null });
    expect(await outbox()).to.equal(shippedBefore + 3);
    const shipped = await outbox();
    const before = await storedHash('phc-dave');

    await w.transaction((trx) => standardHashes.up(trx));

    const after = await storedHash('phc-dave');
    expect(after.hash).to.equal(standardPhc(old));
    expect(after.version).to.equal(before.version);
    expect((await storedHash('phc-erin')).hash, 'an account without a password keeps none').to.equal(null);
    expect(await outbox(), 'nothing shipped').to.equal(shipped);
    await w('replication_peers').where({ name: 'peer-x' }).delete();
    expect(await login('phc-dave')).to.equal(200);
  });
});
