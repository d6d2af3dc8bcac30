import { generateKeyPairSync, randomUUID, sign, type KeyObject } from 'node:crypto';
import { expect } from 'chai';
import { buildContainer, type Container } from '../../src/container.js';
import type { TokenResponse } from '../../src/core/auth/auth-service.js';
import { AccessTokens } from '../../src/core/tokens/access-tokens.js';
import { TOKEN_ERRORS, type CheckName } from '../../src/core/tokens/token-rules.js';
import { testConfig } from '../helpers/app.js';
import { rejectsWith, loginTokens } from '../helpers/assert.js';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';
import { migrate, shutdown, startBackground } from '../../src/runtime.js';

const PASSWORD = 'token rules passphrase';
const EVERY_CHECK: CheckName[] = ['format', 'alg', 'typ', 'kid', 'signature', 'iss', 'aud', 'exp', 'nbf', 'iat', 'claims', 'session'];

/** A compact JWS over any header and claims, signed with an Ed25519 key. */
function jws(header: Record<string, unknown>, claims: Record<string, unknown>, key: KeyObject): string {
  const input = `${Buffer.from(JSON.stringify(header)).toString('base64url')}.${Buffer.from(JSON.stringify(claims)).toString('base64url')}`;
  return `${input}.${sign(null, Buffer.from(input), key).toString('base64url')}`;
}

// AccessTokens.explain runs the rules verify runs (src/core/tokens/token-rules.ts), over the
// region's real key ring and revocation list: what explain reports failing is what verify throws.
describe('access-token rules: verify and explain', function () {
  let db: TestDatabase;
  let c: Container;
  let tokens: AccessTokens;
  let login: TokenResponse;
  let signer: { kid: string; key: KeyObject };

  before(async function () {
    db = await createTestDatabase('token_rules');
    c = buildContainer(testConfig(db.url));
    await migrate(c);
    await startBackground(c);
    const t = c.config.tokens;
    tokens = new AccessTokens({
      ring: c.keys,
      revocations: c.revocations,
      clock: c.clock,
      issuer: t.issuer,
      audience: t.audience,
      alg: t.alg,
      ttlSeconds: t.accessTtl,
      skewSeconds: t.clockSkew,
      region: c.config.region,
    });
    await c.users.register('ruled', PASSWORD);
    login = await loginTokens(c.auth, 'ruled', PASSWORD, {});
    signer = c.keys.signingKey();
  });

  after(async function () {
    await shutdown(c);
    await db?.drop();
  });

  const now = () => Math.floor(Date.now() / 1000);
  const header = (over: Record<string, unknown> = {}) => ({ alg: 'EdDSA', typ: 'at+jwt', kid: signer.kid, ...over });
  const claims = (over: Record<string, unknown> = {}) => {
    const base: Record<string, unknown> = JSON.parse(Buffer.from(login.accessToken.split('.')[1]!, 'base64url').toString('utf8')) as Record<string, unknown>;
    const all = { ...base, ...over };
    for (const [name, value] of Object.entries(all)) if (value === undefined) delete all[name];
    return all;
  };
  const signed = (h: Record<string, unknown>, cl: Record<string, unknown>) => jws(h, cl, signer.key);
  const findSession = (id: string) => c.sessions.findById(id);

  it('a valid token: every check reported, every one ok, and verify accepts it', async function () {
    const { checks, failed } = await tokens.explain(login.accessToken, findSession);
    expect(checks.map((x) => x.check)).to.deep.equal(EVERY_CHECK);
    expect(
      checks.filter((x) => !x.ok),
      JSON.stringify(checks),
    ).to.deep.equal([]);
    expect(checks.every((x) => x.error === null && x.detail.length > 0)).to.equal(true);
    expect(failed).to.equal(null);
    expect((await tokens.verify(login.accessToken)).sid).to.equal(login.sessionId);
  });

  // [what, the token, the check that refuses it, verify's error]
  const failures: Array<[string, () => string, CheckName, string]> = [
    ['longer than any real token', () => signed(header(), claims({ pad: 'x'.repeat(4096) })), 'format', TOKEN_ERRORS.tooLong],
    ['a padded spelling of a genuine token', () => `${login.accessToken}==`, 'format', TOKEN_ERRORS.malformed],
    ['another algorithm named in the header', () => signed(header({ alg: 'ES256' }), claims()), 'alg', TOKEN_ERRORS.alg],
    ['typ JWT', () => signed(header({ typ: 'JWT' }), claims()), 'typ', TOKEN_ERRORS.typ],
    ['a key in the header', () => signed(header({ jku: 'https://evil.example/jwks' }), claims()), 'kid', TOKEN_ERRORS.ownKey],
    ['an unknown critical header', () => signed(header({ crit: ['x-unknown'], 'x-unknown': 1 }), claims()), 'signature', TOKEN_ERRORS.notValid],
    ['b64 false (an unencoded payload)', () => signed(header({ crit: ['b64'], b64: false }), claims()), 'signature', TOKEN_ERRORS.notValid],
    ['signed by another key under our kid', () => jws(header(), claims(), generateKeyPairSync('ed25519').privateKey), 'signature', TOKEN_ERRORS.notValid],
    ['wrong issuer', () => signed(header(), claims({ iss: 'https://evil.example' })), 'iss', TOKEN_ERRORS.notValid],
    ['no issuer', () => signed(header(), claims({ iss: undefined })), 'iss', TOKEN_ERRORS.notValid],
    ['wrong audience', () => signed(header(), claims({ aud: 'other-app' })), 'aud', TOKEN_ERRORS.notValid],
    ['exp as a string', () => signed(header(), claims({ exp: String(now() + 900) })), 'exp', TOKEN_ERRORS.notValid],
    ['no exp', () => signed(header(), claims({ exp: undefined })), 'exp', TOKEN_ERRORS.notValid],
    ['nbf beyond the skew', () => signed(header(), claims({ nbf: now() + 60 })), 'nbf', TOKEN_ERRORS.notValid],
    ['iat as a string', () => signed(header(), claims({ iat: String(now()) })), 'iat', TOKEN_ERRORS.notValid],
    ['no jti', () => signed(header(), claims({ jti: undefined })), 'claims', TOKEN_ERRORS.notValid],
    ['expired beyond the skew', () => signed(header(), claims({ iat: now() - 960, exp: now() - 60 })), 'exp', TOKEN_ERRORS.expired],
    ['no sid', () => signed(header(), claims({ sid: undefined })), 'claims', TOKEN_ERRORS.lacksClaims],
    ['issued in the future beyond the skew', () => signed(header(), claims({ iat: now() + 60, exp: now() + 960 })), 'iat', TOKEN_ERRORS.future],
  ];
  for (const [what, make, check, error] of failures) {
    it(`${what}: only the ${check} check fails, with the error verify throws`, async function () {
      const token = make();
      const { checks, failed } = await tokens.explain(token, findSession);
      expect(checks.map((x) => x.check)).to.deep.equal(EVERY_CHECK);
      expect(
        checks.filter((x) => !x.ok).map((x) => x.check),
        JSON.stringify(checks.filter((x) => !x.ok)),
      ).to.deep.equal([check]);
      expect(failed).to.include({ check, ok: false, error });
      expect((await rejectsWith(tokens.verify(token), 'invalid_token')).detail).to.equal(error);
    });
  }

  it('no key to check the signature with (unknown or missing kid): the kid check refuses it, the signature goes unchecked', async function () {
    for (const [token, error] of [
      [signed(header({ kid: 'no-such-kid' }), claims()), TOKEN_ERRORS.unknownKey],
      [signed(header({ kid: undefined }), claims()), TOKEN_ERRORS.noKid],
    ] as const) {
      const { checks, failed } = await tokens.explain(token);
      expect(failed).to.include({ check: 'kid', error });
      expect(checks.filter((x) => !x.ok).map((x) => [x.check, x.detail.startsWith('not checked')])).to.deep.equal([
        ['kid', false],
        ['signature', true],
      ]);
      expect((await rejectsWith(tokens.verify(token), 'invalid_token')).detail).to.equal(error);
    }
  });

  it('a revoked session: the session check, from the revocation list (verify) and the session row (explain); a remembered token is refused the same way', async function () {
    const other = await loginTokens(c.auth, 'ruled', PASSWORD, {});
    await tokens.verify(other.accessToken);
    await c.sessions.revoke(other.sessionId, 'admin');
    const { checks, failed } = await tokens.explain(other.accessToken, findSession);
    expect(checks.filter((x) => !x.ok).map((x) => x.check)).to.deep.equal(['session']);
    expect(failed).to.include({ check: 'session', error: TOKEN_ERRORS.revoked });
    expect(failed!.detail).to.match(new RegExp(`^session ${other.sessionId} was revoked at .* \\(admin\\)$`));
    expect(tokens.verifyKnown.bind(tokens, other.accessToken)).to.throw(TOKEN_ERRORS.revoked);
    expect((await rejectsWith(tokens.verify(other.accessToken), 'invalid_token')).detail).to.equal(TOKEN_ERRORS.revoked);
  });

  it('what only the session row shows (ended, or gone) is reported by explain; servers go by the revocation list', async function () {
    const other = await loginTokens(c.auth, 'ruled', PASSWORD, {});
    await c.db
      .writer('sessions')
      .where({ id: other.sessionId })
      .update({ expires_at: new Date(Date.now() - 1000) });
    const ended = await tokens.explain(other.accessToken, findSession);
    expect(ended.failed).to.include({ check: 'session', error: TOKEN_ERRORS.sessionEnded });
    expect(ended.failed!.detail).to.match(/ expired at /);
    expect((await tokens.verify(other.accessToken)).sid).to.equal(other.sessionId);

    const gone = await tokens.explain(signed(header(), claims({ sid: randomUUID() })), findSession);
    expect(gone.failed).to.include({ check: 'session', error: TOKEN_ERRORS.sessionEnded });
    expect(gone.failed!.detail).to.match(/is unknown to this region's database$/);
  });

  it('a key withdrawn while its token is remembered: verifyKnown refuses it as no longer published', async function () {
    const kept = await loginTokens(c.auth, 'ruled', PASSWORD, {});
    await tokens.verify(kept.accessToken);
    const kid = c.keys.signingKey().kid;
    await c.keys.rotate();
    await c.db
      .writer('signing_keys')
      .where({ kid })
      .update({ retires_at: new Date(Date.now() - 1000) });
    await c.keys.load();
    expect(tokens.verifyKnown.bind(tokens, kept.accessToken)).to.throw(TOKEN_ERRORS.unpublishedKey);
    // Not remembered any more: the full verification says the key is unknown, as explain does.
    expect((await rejectsWith(tokens.verify(kept.accessToken), 'invalid_token')).detail).to.equal(TOKEN_ERRORS.unknownKey);
    expect((await tokens.explain(kept.accessToken)).failed).to.include({ check: 'kid', error: TOKEN_ERRORS.unknownKey });
  });
});
