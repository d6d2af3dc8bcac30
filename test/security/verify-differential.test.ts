import { expect } from 'chai';
import fc from 'fast-check';
import { generateKeyPair, importJWK, jwtVerify, type JWK } from 'jose';
import { randomUUID } from 'node:crypto';
import { ManualClock } from '../../src/platform/clock.js';
import { startTestApp, type TestApp } from '../helpers/app.js';
import { createAccount, login, type Account, type TokenResponse } from '../helpers/http-assert.js';
import { cryptoKeySigner, forgeJwt, type Signer } from '../helpers/http-jwt.js';

/**
 * authctl verifies access tokens with its own ordered rules over node:crypto (docs/design-decisions.md).
 * This holds them to an implementation nobody here wrote: over thousands of generated tokens —
 * headers, claims, keys and single-character corruptions mixed — authctl accepts a token exactly
 * when jose's `jwtVerify` (with the options authctl's verifier used before it had its own rules)
 * accepts it and the token passes the few checks authctl adds on top (canonical spelling, no
 * key-choosing header, authctl's own claims, issue time not in the future, the session's revocation).
 */
describe('access-token verification agrees with jose (differential)', function () {
  this.timeout(120_000);
  const clock = new ManualClock();
  let app: TestApp;
  let account: Account;
  let genuine: TokenResponse;
  let ourKid: string;
  let ourJwk: JWK;
  let serverSigner: Signer;
  let foreignSigner: Signer;
  let revokedSessionId: string;

  before(async function () {
    app = await startTestApp('security_verify_differential', { clock });
    account = await createAccount(app, 'diff');
    genuine = await login(app, account.username, account.password);
    const revoked = await login(app, account.username, account.password);
    await app.container.sessions.revoke(revoked.sessionId, 'admin');
    revokedSessionId = revoked.sessionId;
    const signing = app.container.keys.signingKey();
    ourKid = signing.kid;
    serverSigner = cryptoKeySigner(signing.key, 'EdDSA');
    const jwks = (await (await app.request('/.well-known/jwks.json')).json()) as { keys: JWK[] };
    ourJwk = jwks.keys.find((k) => k.kid === ourKid)!;
    const foreign = await generateKeyPair('EdDSA', { crv: 'Ed25519' });
    foreignSigner = cryptoKeySigner(foreign.privateKey, 'EdDSA');
  });
  after(async function () {
    await app?.close();
  });

  const KEY_CHOOSING = ['jwk', 'jku', 'x5u', 'x5c', 'x5t', 'x5t#S256'];

  /** jose's verdict, with the options authctl's verifier passed to jwtVerify, and authctl's own additions. */
  async function oracle(token: string): Promise<boolean> {
    const { tokens } = app.container.config;
    const now = clock.now();
    let payload: Record<string, unknown>;
    let header: Record<string, unknown>;
    try {
      const key = await importJWK(ourJwk, 'EdDSA');
      const result = await jwtVerify(token, key, {
        algorithms: [tokens.alg],
        issuer: tokens.issuer,
        audience: tokens.audience,
        typ: 'at+jwt',
        clockTolerance: tokens.clockSkew,
        currentDate: now,
        requiredClaims: ['exp', 'iat', 'sub', 'jti'],
      });
      payload = result.payload;
      header = result.protectedHeader;
    } catch {
      return false;
    }
    const canonical = token.split('.').every((part) => Buffer.from(part, 'base64url').toString('base64url') === part);
    if (!canonical || token.length > 4096) return false;
    if (header.kid !== ourKid || KEY_CHOOSING.some((name) => name in header)) return false;
    if (typeof payload.sid !== 'string' || typeof payload.region !== 'string' || typeof payload.preferred_username !== 'string') return false;
    if ((payload.iat as number) > Math.floor(now.getTime() / 1000) + tokens.clockSkew) return false;
    return payload.sid !== revokedSessionId;
  }

  async function authctl(token: string): Promise<boolean> {
    try {
      await app.container.auth.authenticate(token);
      return true;
    } catch (err) {
      expect((err as { code?: string }).code, `a refusal is invalid_token, never a crash: ${String(err)}`).to.equal('invalid_token');
      return false;
    }
  }

  const now = () => Math.floor(clock.now().getTime() / 1000);
  /**
   * The valid value six times in seven, each other value once in seven: with some fifteen fields,
   * about one generated token in ten is valid, so both verdicts are well exercised.
   */
  function mostly<T>(valid: T, ...others: T[]): fc.Arbitrary<T> {
    return fc.oneof({ arbitrary: fc.constant(valid), weight: 6 * others.length }, ...others.map((o) => ({ arbitrary: fc.constant(o), weight: 1 })));
  }
  const header = fc.record(
    {
      alg: mostly('EdDSA', 'none', 'HS256', 'ES256', 'eddsa', 'Ed25519'),
      typ: mostly<string | undefined>('at+jwt', 'AT+JWT', 'application/at+jwt', 'JWT', 'jwt', undefined),
      kid: mostly<'ours' | 'other' | undefined>('ours', 'other', undefined),
      crit: mostly<unknown>(undefined, ['b64'], ['exp'], [], 'b64'),
      b64: mostly<boolean | undefined>(undefined, true, false),
      jwk: mostly<string | undefined>(undefined, 'embedded'),
    },
    { requiredKeys: ['alg', 'typ', 'kid', 'crit', 'b64', 'jwk'] },
  );
  const claims = fc.record(
    {
      iss: mostly('ok', 'wrong', 'missing'),
      aud: mostly('ok', 'array', 'arrayWithOther', 'wrong', 'missing'),
      exp: mostly<number | string>(900, -100, -10, 0, 'string', 'missing'),
      iat: mostly<number | string>(0, 20, 100, -3600, 'string', 'missing'),
      nbf: mostly<number | string>('missing', 10, 100, -10, 'string'),
      sid: mostly('live', 'revoked', 'missing', 'number'),
      sub: mostly('ok', 'missing', 'number'),
      extra: mostly('none', 'dropRegion', 'dropUsername', 'dropJti'),
    },
    { requiredKeys: ['iss', 'aud', 'exp', 'iat', 'nbf', 'sid', 'sub', 'extra'] },
  );
  const signing = mostly('server', 'foreign', 'empty');
  const corruption = fc.option(fc.record({ at: fc.nat(), to: fc.constantFrom('A', 'B', '_', '-', '=', '.', 'a', '0') }), { freq: 8 });

  async function build(
    h: { alg: string; typ: string | undefined; kid: 'ours' | 'other' | undefined; crit: unknown; b64: boolean | undefined; jwk: string | undefined },
    c: { iss: string; aud: string; exp: number | string; iat: number | string; nbf: number | string; sid: string; sub: string; extra: string },
    how: string,
  ): Promise<string> {
    const { tokens, region } = app.container.config;
    const t = now();
    const head: Record<string, unknown> = { alg: h.alg };
    if (h.typ !== undefined) head.typ = h.typ;
    if (h.kid !== undefined) head.kid = h.kid === 'ours' ? ourKid : 'some-other-key';
    if (h.crit !== undefined) head.crit = h.crit;
    if (h.b64 !== undefined) head.b64 = h.b64;
    if (h.jwk !== undefined) head.jwk = ourJwk;
    const body: Record<string, unknown> = { jti: randomUUID(), region, preferred_username: account.username };
    if (c.iss !== 'missing') body.iss = c.iss === 'ok' ? tokens.issuer : 'https://evil.example';
    if (c.aud === 'ok') body.aud = tokens.audience;
    else if (c.aud === 'array') body.aud = [tokens.audience];
    else if (c.aud === 'arrayWithOther') body.aud = ['other-api', tokens.audience];
    else if (c.aud === 'wrong') body.aud = 'other-api';
    const time = (v: number | string) => (typeof v === 'number' ? t + v : v);
    if (c.exp !== 'missing') body.exp = time(c.exp);
    if (c.iat !== 'missing') body.iat = time(c.iat);
    if (c.nbf !== 'missing') body.nbf = time(c.nbf);
    if (c.sid !== 'missing') body.sid = c.sid === 'live' ? genuine.sessionId : c.sid === 'revoked' ? revokedSessionId : 42;
    if (c.sub !== 'missing') body.sub = c.sub === 'ok' ? account.user.id : 7;
    if (c.extra === 'dropRegion') delete body.region;
    if (c.extra === 'dropUsername') delete body.preferred_username;
    if (c.extra === 'dropJti') delete body.jti;
    return forgeJwt(head, body, how === 'server' ? serverSigner : how === 'foreign' ? foreignSigner : undefined);
  }

  it('the generator reaches both verdicts (accepted and refused tokens), so agreement is not vacuous', async function () {
    const validHeader = { alg: 'EdDSA', typ: 'at+jwt', kid: 'ours' as const, crit: undefined, b64: undefined, jwk: undefined };
    const validClaims = { iss: 'ok', aud: 'ok', exp: 900, iat: 0, nbf: 'missing', sid: 'live', sub: 'ok', extra: 'none' };
    const accepted = await build(validHeader, validClaims, 'server');
    expect(await oracle(accepted)).to.equal(true);
    expect(await authctl(accepted)).to.equal(true);
    expect(await authctl(genuine.accessToken)).to.equal(true);
    const forged = await build(validHeader, validClaims, 'foreign');
    expect(await oracle(forged)).to.equal(false);
    expect(await authctl(forged)).to.equal(false);
  });

  it('accepts exactly what jose accepts (plus authctl’s own checks), over generated tokens', async function () {
    const verdicts = { accepted: 0, refused: 0 };
    await fc.assert(
      fc.asyncProperty(header, claims, signing, corruption, async (h, c, how, corrupt) => {
        let token = await build(h, c, how);
        if (corrupt) {
          const at = corrupt.at % token.length;
          token = token.slice(0, at) + corrupt.to + token.slice(at + 1);
        }
        const expected = await oracle(token);
        const actual = await authctl(token);
        verdicts[actual ? 'accepted' : 'refused'] += 1;
        expect(actual, `authctl ${actual ? 'accepted' : 'refused'} what jose ${expected ? 'accepts' : 'refuses'}: ${token}`).to.equal(expected);
      }),
      { numRuns: 3_000, seed: 20261202 },
    );
    expect(verdicts.accepted, 'some generated tokens are valid').to.be.greaterThan(50);
    expect(verdicts.refused, 'most are not').to.be.greaterThan(1_000);
  });
});
