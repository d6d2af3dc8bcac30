import { randomBytes } from 'node:crypto';
import { expect } from 'chai';
import { calculateJwkThumbprint, decodeProtectedHeader, importJWK, SignJWT, type JWK } from 'jose';
import { buildContainer, type Container } from '../../src/container.js';
import { ManualClock } from '../../src/platform/clock.js';
import { ServerSecrets } from '../../src/core/keys/secrets.js';
import { TEST_SECRET, testConfig } from '../helpers/app.js';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';
import { rejectsWith, startSession, loginTokens } from '../helpers/assert.js';
import { shutdown } from '../../src/runtime.js';

const PASSWORD = 'correct horse battery staple';
const PRIVATE_MEMBERS = ['d', 'p', 'q', 'dp', 'dq', 'qi', 'k', 'oth'];

interface KeyRow {
  kid: string;
  alg: string;
  public_jwk: Record<string, unknown>;
  private_jwk_encrypted: string | null;
  home_region: string;
  activates_at: Date;
  retires_at: Date | null;
}

describe('KeyRing: signing keys in the database', function () {
  let db: TestDatabase;
  let clock: ManualClock;
  let c1: Container;
  let c2: Container;

  before(async function () {
    db = await createTestDatabase('key_ring');
    clock = new ManualClock(Date.now());
    c1 = buildContainer(testConfig(db.url, { keys: { activationDelay: 300 } }), { clock });
    c2 = buildContainer(testConfig(db.url, { keys: { activationDelay: 300 } }), { clock });
    await c1.db.migrateLatest();
  });

  after(async function () {
    await shutdown(c1);
    await shutdown(c2);
    await db?.drop();
  });

  const keyRows = () => c1.db.writer<KeyRow>('signing_keys').select('*').orderBy('activates_at');
  const kidOf = (jwt: string) => decodeProtectedHeader(jwt).kid;

  it('creates exactly one first key when two servers start at once', async function () {
    await Promise.all([c1.keys.ensureSigningKey(), c2.keys.ensureSigningKey()]);
    const rows = await keyRows();
    expect(rows).to.have.length(1);
    const [only] = rows;
    expect(c1.keys.list().map((k) => k.kid)).to.deep.equal([only!.kid]);
    expect(c2.keys.list().map((k) => k.kid)).to.deep.equal([only!.kid]);
    expect(c1.keys.list()[0]!.state).to.equal('active');
    expect(only!.home_region).to.equal('local');
    expect(only!.alg).to.equal('EdDSA');
    // Calling it again is a no-op.
    await c1.keys.ensureSigningKey();
    await c2.keys.ensureSigningKey();
    expect(await keyRows()).to.have.length(1);
  });

  it('stores the private key encrypted, and only under the server secret', async function () {
    const [row] = await keyRows();
    const sealed = row!.private_jwk_encrypted!;
    expect(sealed).to.be.a('string');
    expect(() => {
      JSON.parse(sealed);
    }).to.throw(SyntaxError);
    expect(sealed).not.to.include('"d"');
    expect(row!.public_jwk).not.to.have.property('d');
    // What is stored is the real private key of the published public key.
    const privateJwk = JSON.parse(new ServerSecrets(TEST_SECRET).open(sealed, row!.kid)) as JWK;
    expect(privateJwk.d).to.be.a('string');
    expect(sealed).not.to.include(privateJwk.d!);
    expect(privateJwk.x).to.equal(row!.public_jwk.x);
    // The kid is the RFC 7638 thumbprint of the public key.
    expect(await calculateJwkThumbprint(row!.public_jwk)).to.equal(row!.kid);
  });

  it('publishes only public members in the JWKS', function () {
    const { keys } = c1.keys.jwks();
    expect(keys).to.have.length(1);
    for (const jwk of keys) {
      for (const member of PRIVATE_MEMBERS) expect(jwk, `JWKS member ${member}`).not.to.have.property(member);
      expect(jwk).to.include({ kty: 'OKP', crv: 'Ed25519', alg: 'EdDSA', use: 'sig' });
      expect(jwk.kid).to.be.a('string');
      expect(jwk.x).to.be.a('string');
    }
    expect(JSON.stringify(c1.keys.jwks())).not.to.include('"d"');
  });

  describe('rotation', function () {
    let username: string;
    let oldKid: string;
    let newKid: string;
    let oldToken: string;
    let sessionId: string;

    before(async function () {
      const user = await c1.users.register('rotator', PASSWORD);
      username = user.username!;
      await c1.revocations.poll();
      await c2.revocations.poll();
      await c2.keys.load();
    });

    const login = () => loginTokens(c1.auth, username, PASSWORD, {});

    it('publishes a new key at once but keeps signing with the old one until activation', async function () {
      const first = await login();
      oldKid = kidOf(first.accessToken)!;
      oldToken = first.accessToken;
      sessionId = first.sessionId;
      expect(oldKid).to.equal(c1.keys.list()[0]!.kid);

      const info = await c1.keys.rotate();
      newKid = info.kid;
      expect(newKid).not.to.equal(oldKid);
      expect(info.state).to.equal('pending');
      expect(info.activatesAt.getTime()).to.equal(clock.now().getTime() + 300_000);
      expect(c1.keys.list().find((k) => k.kid === newKid)?.state).to.equal('pending');
      expect(c1.keys.jwks().keys.map((k) => k.kid)).to.have.members([oldKid, newKid]);

      // Still signing with the old key, on this server and on another one that reloads.
      expect(kidOf((await login()).accessToken)).to.equal(oldKid);
      await c2.keys.load();
      expect(c2.keys.jwks().keys.map((k) => k.kid)).to.have.members([oldKid, newKid]);
      expect(kidOf((await loginTokens(c2.auth, username, PASSWORD, {})).accessToken)).to.equal(oldKid);
      expect(await keyRows()).to.have.length(2);
    });

    it('signs with the new key after the activation delay, keeping the old one published', async function () {
      clock.advance(301);
      await c1.keys.load();
      const fresh = await login();
      expect(kidOf(fresh.accessToken)).to.equal(newKid);
      const states = Object.fromEntries(c1.keys.list().map((k) => [k.kid, k.state]));
      expect(states).to.deep.equal({ [oldKid]: 'retiring', [newKid]: 'active' });
      expect(c1.keys.jwks().keys.map((k) => k.kid)).to.have.members([oldKid, newKid]);
      // Tokens of both keys verify, on both servers.
      for (const c of [c1, c2]) {
        expect((await c.auth.authenticate(oldToken)).sessionId).to.equal(sessionId);
        expect((await c.auth.authenticate(fresh.accessToken)).sessionId).to.equal(fresh.sessionId);
      }
    });

    it('retires the old key once its last token has expired: gone from the JWKS and refused', async function () {
      const [oldRow] = (await keyRows()).filter((r) => r.kid === oldKid);
      const oldPrivate = JSON.parse(new ServerSecrets(TEST_SECRET).open(oldRow!.private_jwk_encrypted!, oldKid)) as JWK;
      const userId = (await c1.users.find(username)).id;
      const mintWithOldKey = async () => {
        const iat = Math.floor(clock.now().getTime() / 1000);
        return new SignJWT({ sid: sessionId, region: 'local', preferred_username: username })
          .setProtectedHeader({ alg: 'EdDSA', kid: oldKid, typ: 'at+jwt' })
          .setIssuer(c1.config.tokens.issuer)
          .setSubject(userId)
          .setAudience(c1.config.tokens.audience)
          .setIssuedAt(iat)
          .setExpirationTime(iat + c1.config.tokens.accessTtl)
          .setJti(randomBytes(16).toString('base64url'))
          .sign(await importJWK(oldPrivate, 'EdDSA'));
      };
      // Sanity: while the old key is published, a token minted with it is accepted.
      expect((await c1.auth.authenticate(await mintWithOldKey())).sessionId).to.equal(sessionId);

      clock.advance(c1.config.tokens.accessTtl + c1.config.tokens.clockSkew);
      await c1.keys.load();
      await c2.keys.load();
      const states = Object.fromEntries(c1.keys.list().map((k) => [k.kid, k.state]));
      expect(states).to.deep.equal({ [oldKid]: 'retired', [newKid]: 'active' });
      for (const c of [c1, c2]) {
        expect(c.keys.jwks().keys.map((k) => k.kid)).to.deep.equal([newKid]);
        // Even a token with a fresh exp is refused once its key is retired.
        const err = await rejectsWith(c.auth.authenticate(await mintWithOldKey()), 'invalid_token');
        expect(err.detail).to.match(/unknown key/);
        await rejectsWith(c.auth.authenticate(oldToken), 'invalid_token');
      }
      // New tokens still work.
      const fresh = await login();
      expect(kidOf(fresh.accessToken)).to.equal(newKid);
      expect((await c2.auth.authenticate(fresh.accessToken)).sessionId).to.equal(fresh.sessionId);
    });
  });

  describe('a server without a secret', function () {
    it('can list keys and publish the JWKS, but cannot sign or rotate', async function () {
      const config = testConfig(db.url, { secret: undefined });
      expect(config.secret).to.equal(undefined);
      const reader = buildContainer(config, { clock });
      try {
        await reader.keys.load();
        const listed = reader.keys.list().map((k) => k.kid);
        expect(listed).to.have.members((await keyRows()).map((r) => r.kid));
        expect(reader.keys.jwks().keys).to.deep.equal(c1.keys.jwks().keys);
        expect(reader.keys.jwks().keys).to.have.length.at.least(1);

        const before = (await keyRows()).length;
        await rejectsWith(
          Promise.resolve().then(() => reader.keys.signingKey()),
          'bad_config',
        );
        await rejectsWith(reader.keys.rotate(), 'bad_config');
        expect(await keyRows()).to.have.length(before);
        // Nor can it issue refresh tokens, and a refused start leaves no session behind.
        const owner = await c1.users.find('rotator');
        const sessionsBefore = await c1.db.writer('sessions').where({ user_id: owner.id }).count<Array<{ count: string }>>('* as count');
        await rejectsWith(startSession(reader, owner, {}), 'bad_config');
        const sessionsAfter = await c1.db.writer('sessions').where({ user_id: owner.id }).count<Array<{ count: string }>>('* as count');
        expect(sessionsAfter).to.deep.equal(sessionsBefore);
      } finally {
        await shutdown(reader);
      }
    });

    it('cannot create the first key of an empty region', async function () {
      const empty = await createTestDatabase('key_ring_empty');
      const reader = buildContainer(testConfig(empty.url, { secret: undefined }), { clock });
      try {
        await reader.db.migrateLatest();
        await rejectsWith(reader.keys.ensureSigningKey(), 'bad_config');
        expect(await reader.db.writer('signing_keys').count<Array<{ count: string }>>('* as count')).to.deep.equal([{ count: '0' }]);
      } finally {
        await shutdown(reader);
        await empty.drop();
      }
    });
  });
});
