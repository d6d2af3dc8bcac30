import { randomUUID } from 'node:crypto';
import { expect } from 'chai';
import { calculateJwkThumbprint, exportJWK, generateKeyPair, SignJWT, type CryptoKey, type JWK } from 'jose';
import { ManualClock } from '../../src/platform/clock.js';
import { startTestApp, type TestApp } from '../helpers/app.js';
import { createAccount, expectInvalidToken, expectProblem, login, type Account, type TokenResponse } from '../helpers/http-assert.js';
import {
  cryptoKeySigner,
  decodePart,
  forgeJwt,
  hmacSigner,
  publicKeyAsSecrets,
  startHoneypot,
  swapPayload,
  type Honeypot,
  type Signer,
} from '../helpers/http-jwt.js';

const ENDPOINTS = ['/v1/me', '/v1/verify'] as const;

describe('access-token attacks on Bearer routes (docs/api.md#access-tokens, RFC 8725)', function () {
  const clock = new ManualClock();
  let app: TestApp;
  let victim: Account;
  let bystander: Account;
  let genuine: TokenResponse;
  let ourKid: string;
  let ourJwk: JWK;
  let serverSigner: Signer;
  let attacker: { kid: string; jwk: JWK; signer: Signer; key: CryptoKey };
  let honeypot: Honeypot;

  before(async function () {
    app = await startTestApp('http_jwt_attacks', { clock });
    victim = await createAccount(app, 'victim');
    bystander = await createAccount(app, 'mallory');
    genuine = await login(app, victim.username, victim.password);
    const signing = app.container.keys.signingKey();
    expect(signing.alg, 'these tests assume the default EdDSA').to.equal('EdDSA');
    ourKid = signing.kid;
    serverSigner = cryptoKeySigner(signing.key, 'EdDSA');
    const jwks = (await (await app.request('/.well-known/jwks.json')).json()) as { keys: JWK[] };
    ourJwk = jwks.keys.find((k) => k.kid === ourKid)!;
    expect(ourJwk, 'the signing key is published').to.be.an('object');

    const pair = await generateKeyPair('EdDSA', { crv: 'Ed25519', extractable: true });
    const jwk = await exportJWK(pair.publicKey);
    attacker = { kid: await calculateJwkThumbprint(jwk), jwk, signer: cryptoKeySigner(pair.privateKey, 'EdDSA'), key: pair.privateKey };
    honeypot = await startHoneypot({ keys: [{ ...jwk, kid: attacker.kid, alg: 'EdDSA', use: 'sig' }] });
  });
  after(async function () {
    await honeypot?.close();
    await app?.close();
  });

  /** Claims that would pass every check, for the victim's real session. */
  function validClaims(overrides: Record<string, unknown> = {}): Record<string, unknown> {
    const now = Math.floor(clock.now().getTime() / 1000);
    const claims: Record<string, unknown> = {
      iss: app.container.config.tokens.issuer,
      sub: victim.user.id,
      aud: app.container.config.tokens.audience,
      iat: now,
      exp: now + 900,
      jti: randomUUID(),
      sid: genuine.sessionId,
      region: app.container.config.region,
      preferred_username: victim.username,
      ...overrides,
    };
    for (const [name, value] of Object.entries(claims)) if (value === undefined) delete claims[name];
    return claims;
  }

  const validHeader = (overrides: Record<string, unknown> = {}) => ({ alg: 'EdDSA', typ: 'at+jwt', kid: ourKid, ...overrides });

  async function expectRefused(token: string): Promise<void> {
    for (const path of ENDPOINTS) {
      const res = await app.request(path, { token });
      await expectInvalidToken(res);
      expect(res.headers.get('x-auth-user-id'), `${path} leaks no identity`).to.equal(null);
    }
  }

  async function expectAccepted(token: string, userId = victim.user.id): Promise<void> {
    for (const path of ENDPOINTS) {
      const res = await app.request(path, { token });
      expect(res.status, `${path}: ${await res.clone().text()}`).to.equal(200);
    }
    const verify = await app.request('/v1/verify', { token });
    expect(verify.headers.get('x-auth-user-id')).to.equal(userId);
  }

  describe('positive controls', function () {
    it('the genuine token from login is accepted', async function () {
      await expectAccepted(genuine.accessToken);
    });

    it('a token the test forges with the server key and valid claims is accepted (so the refusals below are about the attack)', async function () {
      await expectAccepted(await forgeJwt(validHeader(), validClaims(), serverSigner));
    });

    it('iat within the 30 s skew in the future is accepted', async function () {
      const now = Math.floor(clock.now().getTime() / 1000);
      await expectAccepted(await forgeJwt(validHeader(), validClaims({ iat: now + 20, exp: now + 920 }), serverSigner));
    });
  });

  describe('unsigned and tampered tokens', function () {
    for (const alg of ['none', 'None', 'NONE', 'nOnE']) {
      it(`alg "${alg}" with our kid and an empty signature`, async function () {
        await expectRefused(await forgeJwt(validHeader({ alg }), validClaims()));
      });
    }

    it('alg "none" carrying the genuine signature', async function () {
      const token = await forgeJwt(validHeader({ alg: 'none' }), decodePart(genuine.accessToken, 1));
      await expectRefused(token + genuine.accessToken.split('.')[2]);
    });

    it('the genuine token with sub changed to another user', async function () {
      await expectRefused(
        swapPayload(genuine.accessToken, { ...decodePart(genuine.accessToken, 1), sub: bystander.user.id, preferred_username: bystander.username }),
      );
    });

    it('the genuine token with exp pushed a year ahead', async function () {
      const payload = decodePart(genuine.accessToken, 1);
      await expectRefused(swapPayload(genuine.accessToken, { ...payload, exp: (payload.exp as number) + 365 * 86_400 }));
    });

    it('the genuine token with the signature stripped ("header.payload.")', async function () {
      const [header, payload] = genuine.accessToken.split('.');
      await expectRefused(`${header}.${payload}.`);
    });

    it('the genuine token without its third part ("header.payload")', async function () {
      const [header, payload] = genuine.accessToken.split('.');
      await expectRefused(`${header}.${payload}`);
    });

    it('the genuine token with a flipped signature bit', async function () {
      const [header, payload, signature] = genuine.accessToken.split('.');
      const bytes = Buffer.from(signature!, 'base64url');
      bytes[0] = bytes[0]! ^ 1;
      await expectRefused(`${header}.${payload}.${bytes.toString('base64url')}`);
    });

    it('the genuine token with the header re-encoded (a different signing input)', async function () {
      const [, payload, signature] = genuine.accessToken.split('.');
      const header = Buffer.from(JSON.stringify(validHeader({ extra: 1 }))).toString('base64url');
      await expectRefused(`${header}.${payload}.${signature}`);
    });

    it('a JWE-shaped five-part token', async function () {
      await expectRefused(`${genuine.accessToken}.AAAA.BBBB`);
    });

    it('a token longer than any real one (8 KiB claim)', async function () {
      await expectRefused(await forgeJwt(validHeader(), validClaims({ pad: 'x'.repeat(8192) }), serverSigner));
    });
  });

  describe('HMAC signed with the public key (algorithm confusion)', function () {
    for (const bits of [256, 384, 512] as const) {
      it(`HS${bits} keyed with every usual encoding of our public key`, async function () {
        const secrets = publicKeyAsSecrets(ourJwk);
        expect(secrets).to.have.length.above(5);
        for (const [, secret] of secrets) {
          await expectRefused(await forgeJwt(validHeader({ alg: `HS${bits}` }), validClaims(), hmacSigner(secret, bits)));
        }
      });
    }

    it('HS256 with no kid, keyed with the raw public key', async function () {
      const [, raw] = publicKeyAsSecrets(ourJwk)[0]!;
      await expectRefused(await forgeJwt({ alg: 'HS256', typ: 'at+jwt' }, validClaims(), hmacSigner(raw)));
    });
  });

  describe('keys the token chooses', function () {
    it('a foreign Ed25519 key signing with our kid (jose SignJWT)', async function () {
      const token = await new SignJWT(validClaims()).setProtectedHeader(validHeader()).sign(attacker.key);
      await expectRefused(token);
    });

    it('a foreign P-256 key signing ES256 with our kid', async function () {
      const pair = await generateKeyPair('ES256');
      await expectRefused(await forgeJwt(validHeader({ alg: 'ES256' }), validClaims(), cryptoKeySigner(pair.privateKey, 'ES256')));
    });

    it('a foreign key with its own kid and no other hint', async function () {
      await expectRefused(await forgeJwt(validHeader({ kid: attacker.kid }), validClaims(), attacker.signer));
    });

    it('a foreign key without any kid', async function () {
      await expectRefused(await forgeJwt({ alg: 'EdDSA', typ: 'at+jwt' }, validClaims(), attacker.signer));
    });

    it('an embedded "jwk" header with the attacker\'s key (with and without kid)', async function () {
      await expectRefused(await forgeJwt(validHeader({ jwk: attacker.jwk, kid: attacker.kid }), validClaims(), attacker.signer));
      await expectRefused(await forgeJwt({ alg: 'EdDSA', typ: 'at+jwt', jwk: attacker.jwk }, validClaims(), attacker.signer));
      await expectRefused(await forgeJwt(validHeader({ jwk: attacker.jwk }), validClaims(), attacker.signer));
    });

    it('"jku" pointing at a server that holds the attacker\'s key: refused, and the URL is never fetched', async function () {
      const jku = `${honeypot.url}/jwks.json`;
      await expectRefused(await forgeJwt(validHeader({ jku, kid: attacker.kid }), validClaims(), attacker.signer));
      await expectRefused(await forgeJwt(validHeader({ jku }), validClaims(), attacker.signer));
      await new Promise((resolve) => setTimeout(resolve, 100));
      expect(honeypot.hits).to.deep.equal([]);
    });

    it('"x5u" pointing at a local server: refused, and the URL is never fetched', async function () {
      const x5u = `${honeypot.url}/cert.pem`;
      await expectRefused(await forgeJwt(validHeader({ x5u, kid: attacker.kid }), validClaims(), attacker.signer));
      await new Promise((resolve) => setTimeout(resolve, 100));
      expect(honeypot.hits).to.deep.equal([]);
    });

    it('"x5c" with garbage certificates', async function () {
      await expectRefused(await forgeJwt(validHeader({ x5c: ['MIIBIjANBgkqhkiG9w0BAQEFAAOC'], kid: attacker.kid }), validClaims(), attacker.signer));
    });

    for (const name of ['jwk', 'jku', 'x5u'] as const) {
      it(`a server-signed token that names its own key ("${name}") is refused too`, async function () {
        const value = name === 'jwk' ? ourJwk : `${honeypot.url}/${name}`;
        await expectRefused(await forgeJwt(validHeader({ [name]: value }), validClaims(), serverSigner));
        expect(honeypot.hits).to.deep.equal([]);
      });
    }

    for (const [label, kid, signer] of [
      ['path traversal to /dev/null, HS256 with an empty key', '../../dev/null', () => hmacSigner('')],
      ['deep path traversal, HS256 with an empty key', '../../../../../../../../dev/null', () => hmacSigner('')],
      ['SQL injection returning a chosen key', "x' UNION SELECT 'secret' -- ", () => hmacSigner('secret')],
      ['SQL tautology', "' OR '1'='1", () => hmacSigner('')],
      ['a URL', 'http://127.0.0.1:1/key', () => hmacSigner('')],
    ] as const) {
      it(`kid ${label}`, async function () {
        await expectRefused(await forgeJwt(validHeader({ alg: 'HS256', kid }), validClaims(), signer()));
        await expectRefused(await forgeJwt(validHeader({ kid }), validClaims(), attacker.signer));
      });
    }

    it('a server-signed token with an unknown kid', async function () {
      await expectRefused(await forgeJwt(validHeader({ kid: 'not-a-published-kid' }), validClaims(), serverSigner));
    });

    it('a server-signed token with a non-string kid', async function () {
      await expectRefused(await forgeJwt(validHeader({ kid: 1 }), validClaims(), serverSigner));
    });
  });

  describe('header checks with a valid server signature', function () {
    it('an unknown critical header ("crit")', async function () {
      await expectRefused(await forgeJwt(validHeader({ crit: ['x-authctl-unknown'], 'x-authctl-unknown': true }), validClaims(), serverSigner));
    });

    it('typ "JWT" instead of "at+jwt"', async function () {
      await expectRefused(await forgeJwt(validHeader({ typ: 'JWT' }), validClaims(), serverSigner));
    });

    it('no typ', async function () {
      await expectRefused(await forgeJwt({ alg: 'EdDSA', kid: ourKid }, validClaims(), serverSigner));
    });

    it('alg "Ed25519" (not the configured EdDSA)', async function () {
      await expectRefused(await forgeJwt(validHeader({ alg: 'Ed25519' }), validClaims(), serverSigner));
    });
  });

  describe('claim checks with a valid server signature', function () {
    const cases: Array<[string, () => Record<string, unknown>]> = [
      ['wrong iss', () => validClaims({ iss: 'https://evil.example' })],
      ['wrong aud', () => validClaims({ aud: 'some-other-api' })],
      ['aud missing', () => validClaims({ aud: undefined })],
      ['iss missing', () => validClaims({ iss: undefined })],
      ['sid missing', () => validClaims({ sid: undefined })],
      ['sub missing', () => validClaims({ sub: undefined })],
      ['exp missing', () => validClaims({ exp: undefined })],
      ['iat missing', () => validClaims({ iat: undefined })],
      ['jti missing', () => validClaims({ jti: undefined })],
      ['sid not a string', () => validClaims({ sid: 12345 })],
      ['exp as a string', () => validClaims({ exp: String(Math.floor(clock.now().getTime() / 1000) + 900) })],
      [
        'iat 60 s in the future (beyond the 30 s skew)',
        () => {
          const now = Math.floor(clock.now().getTime() / 1000);
          return validClaims({ iat: now + 60, exp: now + 960 });
        },
      ],
      ['nbf 60 s in the future', () => validClaims({ nbf: Math.floor(clock.now().getTime() / 1000) + 60 })],
      [
        'exp 31 s in the past',
        () => {
          const now = Math.floor(clock.now().getTime() / 1000);
          return validClaims({ iat: now - 931, exp: now - 31 });
        },
      ],
    ];
    for (const [label, claims] of cases) {
      it(label, async function () {
        await expectRefused(await forgeJwt(validHeader(), claims(), serverSigner));
      });
    }

    it('a valid token for a revoked session', async function () {
      const doomed = await login(app, victim.username, victim.password);
      const res = await app.request('/v1/auth/logout', { method: 'POST', token: doomed.accessToken });
      expect(res.status).to.equal(204);
      await expectRefused(await forgeJwt(validHeader(), validClaims({ sid: doomed.sessionId }), serverSigner));
    });
  });

  describe('tokens of the wrong kind or from elsewhere', function () {
    it('a refresh token presented as a Bearer access token', async function () {
      await expectRefused(genuine.refreshToken);
    });

    it('an access token presented as a refresh token', async function () {
      const res = await app.request('/v1/auth/refresh', { method: 'POST', json: { refreshToken: genuine.accessToken } });
      // Longer than any refresh token: refused by the schema before the codec sees it.
      await expectProblem(res, 400, 'invalid_request');
      const short = await forgeJwt({ alg: 'EdDSA' }, { sub: victim.user.id }, serverSigner);
      expect(short.length).to.be.below(512);
      await expectProblem(await app.request('/v1/auth/refresh', { method: 'POST', json: { refreshToken: short } }), 401, 'invalid_refresh_token');
    });

    it('a token signed by the key ring of another deployment (same issuer and audience, its own kid)', async function () {
      const other = await startTestApp('http_jwt_attacks_other', { clock });
      try {
        const foreign = other.container.keys.signingKey();
        expect(foreign.kid).to.not.equal(ourKid);
        const signer = cryptoKeySigner(foreign.key, 'EdDSA');
        await expectRefused(await forgeJwt(validHeader({ kid: foreign.kid }), validClaims(), signer));
        // …and with our kid on the header, the signature does not match our key.
        await expectRefused(await forgeJwt(validHeader(), validClaims(), signer));
        // A genuine token of the other deployment, for a session that exists only there.
        const account = await createAccount(other, 'elsewhere');
        await expectRefused((await login(other, account.username, account.password)).accessToken);
      } finally {
        await other.close();
      }
    });

    it('a JWS in JSON serialization, and compact forms with junk segments', async function () {
      const [header, payload, signature] = genuine.accessToken.split('.') as [string, string, string];
      // The same signature bytes, spelled differently: a spare low bit of the last character.
      const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';
      const twin = signature.slice(0, -1) + alphabet[alphabet.indexOf(signature.at(-1)!) ^ 1]!;
      expect(Buffer.from(twin, 'base64url').equals(Buffer.from(signature, 'base64url')), 'the twin decodes to the same bytes').to.equal(true);
      const respelled = `${header}.${payload}.${twin}`;
      for (const token of [
        JSON.stringify({ protected: header, payload, signature }),
        `${header}..${signature}`,
        `.${payload}.${signature}`,
        `${header}.${payload}.${signature}.`,
        `${header}.${payload}.${signature}==`,
        `${header}=.${payload}.${signature}`,
        respelled,
        `${Buffer.from('not json').toString('base64url')}.${payload}.${signature}`,
        `${header}.${Buffer.from('[1,2]').toString('base64url')}.${signature}`,
        '...',
      ]) {
        const res = await app.request('/v1/me', { headers: { authorization: `Bearer ${token}` } });
        expect(res.status, token).to.equal(401);
        await expectInvalidToken(res);
      }
    });
  });

  describe('skew boundaries with a valid server signature (30 s)', function () {
    const now = () => Math.floor(clock.now().getTime() / 1000);

    it('nbf 29 s ahead is accepted, 31 s ahead refused', async function () {
      await expectAccepted(await forgeJwt(validHeader(), validClaims({ nbf: now() + 29 }), serverSigner));
      await expectRefused(await forgeJwt(validHeader(), validClaims({ nbf: now() + 31 }), serverSigner));
    });

    it('iat 31 s ahead is refused', async function () {
      await expectRefused(await forgeJwt(validHeader(), validClaims({ iat: now() + 31, exp: now() + 931 }), serverSigner));
    });

    it('exp 29 s past is accepted, 31 s past refused', async function () {
      await expectAccepted(await forgeJwt(validHeader(), validClaims({ iat: now() - 929, exp: now() - 29 }), serverSigner));
      await expectRefused(await forgeJwt(validHeader(), validClaims({ iat: now() - 931, exp: now() - 31 }), serverSigner));
    });

    it('crit naming a header this server does not process ("b64":false, RFC 7797)', async function () {
      await expectRefused(await forgeJwt(validHeader({ crit: ['b64'], b64: false }), validClaims(), serverSigner));
    });

    it('exp far in the future but iat in the past beyond the token lifetime is still a valid-looking token only if signed by us', async function () {
      await expectRefused(await forgeJwt(validHeader(), validClaims({ iat: now() - 86_400, exp: now() + 365 * 86_400 }), attacker.signer));
    });
  });

  // Last: these move the shared clock.
  describe('expiry of genuine tokens (ManualClock)', function () {
    it('exp passed by 29 s is still accepted (30 s skew)', async function () {
      const tokens = await login(app, victim.username, victim.password);
      clock.advance(tokens.expiresIn + 29);
      await expectAccepted(tokens.accessToken);
    });

    it('exp passed by 31 s is refused', async function () {
      const tokens = await login(app, victim.username, victim.password);
      clock.advance(tokens.expiresIn + 31);
      await expectRefused(tokens.accessToken);
    });

    it('the login token from the start of the file is long expired', async function () {
      await expectRefused(genuine.accessToken);
    });
  });
});
