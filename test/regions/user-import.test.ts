import { Readable } from 'node:stream';
import { expect } from 'chai';
import { Seen } from '../../src/admin/import/importer.js';
import { argon2id, bcrypt, djangoPbkdf2, ndjson, pbkdf2PhcOf, scryptPhc } from '../import/fixtures.js';
import { eventually, startRegions, type RegionNode } from './support.js';

const chunks = (text: string): AsyncIterable<Buffer> => Readable.from([Buffer.from(text)]);

describe('user import across two regions', function () {
  this.timeout(60_000);
  let eu: RegionNode;
  let us: RegionNode;

  before(async function () {
    [eu, us] = (await startRegions(['eu', 'us'])) as [RegionNode, RegionNode];
  });
  after(async function () {
    await eu?.close();
    await us?.close();
  });

  it('imported users and their identities replicate to the peer (the capture triggers), and log in there with their passwords', async function () {
    const hash = await argon2id('imported-passphrase-1');
    const report = await eu.container.importer.run({
      format: 'ndjson',
      input: chunks(
        ndjson([
          { username: 'imp.one', passwordHash: hash, identities: [{ provider: 'google', subject: 'imp-g-1' }] },
          { username: 'imp.two', passwordHash: hash },
        ]),
      ),
      batchSize: 1,
    });
    expect(report).to.deep.include({ imported: 2, identities: 1, refused: 0 });
    const there = await eventually('the imported users at the peer', async () => {
      const rows = await us.query<{ id: string; username: string; password_hash: string; home_region: string }>(
        `select id, username, password_hash, home_region from users where username like 'imp.%' order by username`,
      );
      return rows.length === 2 ? rows : undefined;
    });
    expect(there.map((r) => [r.username, r.password_hash, r.home_region])).to.deep.equal([
      ['imp.one', hash, 'eu'],
      ['imp.two', hash, 'eu'],
    ]);
    await eventually('the identity at the peer', async () => {
      const rows = await us.query(`select 1 from user_identities where provider = 'google' and subject = 'imp-g-1' and user_id = ?`, [there[0]!.id]);
      return rows.length === 1 ? rows : undefined;
    });
    const login = await us.request('/v1/auth/login', { method: 'POST', json: { username: 'imp.two', password: 'imported-passphrase-1' } });
    expect(login.status).to.equal(200);
    const wrong = await us.request('/v1/auth/login', { method: 'POST', json: { username: 'imp.one', password: 'not-the-passphrase' } });
    expect(wrong.status).to.equal(401);
    await wrong.arrayBuffer();
  });

  it('users imported with each foreign hash format log in with their passwords (and not with a wrong one)', async function () {
    const password = 'foreign-format-passphrase-1';
    const hashes = {
      bcrypt: await bcrypt(password),
      scrypt: scryptPhc(password),
      pbkdf2: pbkdf2PhcOf(password, 'sha256', 27_500),
      django: djangoPbkdf2(password),
    };
    const report = await eu.container.importer.run({
      format: 'ndjson',
      input: chunks(ndjson(Object.entries(hashes).map(([name, passwordHash]) => ({ username: `fmt.${name}`, passwordHash })))),
    });
    expect(report).to.deep.include({ imported: 4, refused: 0 });
    for (const name of Object.keys(hashes)) {
      const wrong = await eu.request('/v1/auth/login', { method: 'POST', json: { username: `fmt.${name}`, password: 'not-it-at-all-1' } });
      expect(wrong.status, `${name}, wrong password`).to.equal(401);
      await wrong.arrayBuffer();
      const ok = await eu.request('/v1/auth/login', { method: 'POST', json: { username: `fmt.${name}`, password } });
      expect(ok.status, name).to.equal(200);
      await ok.arrayBuffer();
    }
  });

  it('a batch that meets a row written meanwhile (after its checks) falls back to row by row: the good rows go in, the colliding one is refused', async function () {
    const importer = eu.container.importer;
    const hash = await argon2id('race-passphrase-1');
    const runAt = new Date();
    const prepared = ['race.one', 'race.two', 'race.three'].map((username, i) => {
      const p = importer.prepare('ndjson', { at: i + 1, candidate: { username, passwordHash: hash } }, runAt);
      if (typeof p === 'string') throw new Error(p);
      return p;
    });
    const refusals: Array<{ at: number; reason: string }> = [];
    const checked = await importer.processBatch(prepared, { seen: new Seen(), dryRun: true, runAt, unit: 'line' }, (at, reason) =>
      refusals.push({ at, reason }),
    );
    expect(checked.imported).to.have.length(3);
    // A sign-up takes the second username between the checks and the write.
    await eu.container.users.register('race.two', 'someone-else-passphrase-2');
    const written = await importer.write(checked.imported, (at, reason) => refusals.push({ at, reason }));
    expect(written.map((p) => p.user.username)).to.deep.equal(['race.one', 'race.three']);
    expect(refusals).to.deep.equal([{ at: 2, reason: 'the username was taken meanwhile' }]);
    const rows = await eu.query<{ username: string; password_hash: string }>(
      `select username, password_hash from users where username like 'race.%' order by username`,
    );
    expect(rows.map((r) => r.username)).to.deep.equal(['race.one', 'race.three', 'race.two']);
    expect(rows.find((r) => r.username === 'race.two')!.password_hash).to.not.equal(hash);
  });
});
