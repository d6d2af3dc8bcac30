import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { expect } from 'chai';
import type { AuthenticationResponseJSON, PublicKeyCredentialRequestOptionsJSON, RegistrationResponseJSON } from '@simplewebauthn/server';
import type { Browser } from 'playwright-core';
import { ManualClock } from '../../src/platform/clock.js';
import { startTestApp, type TestApp } from '../helpers/app.js';
import { launchChromium } from '../helpers/browser.js';
import { createAccount, expectProblem, expectTokenResponse, login, type Account } from '../helpers/http-assert.js';
import { LogCapture } from '../helpers/log-capture.js';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';
import { base64urlJson, clientDataOf, PASSKEY_CHROMIUM_ARGS, PasskeyTab, startPageServer, webauthnConfig, type PageServer } from './support.js';

/**
 * Every refusal of a passkey ceremony, each made by the check it is about: the responses are real
 * ones — made by Chromium's virtual authenticator on a page calling @simplewebauthn/browser — and
 * then altered, or made where they should not be (another origin, another RP ID), or by an
 * authenticator that should not have them (a clone with an older counter, another key under the
 * same credential id). None is ever a 500, none signs anyone in.
 */
const FREE_FAILURES = 30;

describe('passkey attacks: altered and misplaced WebAuthn responses', function () {
  this.timeout(120_000);
  let browser: Browser | undefined;
  let pages: PageServer;
  /** A second page server: the same host, another port, so another origin (not allowed). */
  let elsewhere: PageServer;
  let db: TestDatabase;
  let app: TestApp;
  /** The same database, an RP ID of `sub.localhost`: what registers a credential the main app would not. */
  let subApp: TestApp;
  let clock: ManualClock;
  let logs: LogCapture;
  let tab: PasskeyTab;
  /** The user whose passkey `tab` holds. */
  let account: Account & { token: string };

  const post = (path: string, json: unknown, token?: string, on: TestApp = app) => on.request(path, { method: 'POST', json, ...(token ? { token } : {}) });

  async function loginOptions(body: Record<string, unknown> = {}, on: TestApp = app): Promise<PublicKeyCredentialRequestOptionsJSON> {
    const res = await post('/v1/auth/passkey/options', body, undefined, on);
    expect(res.status, await res.clone().text()).to.equal(200);
    return (await res.json()) as PublicKeyCredentialRequestOptionsJSON;
  }

  /** Registers a passkey on `t` for `token`'s user, through `on`: the stored passkey's id. */
  async function registerPasskey(t: PasskeyTab, token: string, on: TestApp = app): Promise<string> {
    const options = await post('/v1/me/passkeys/options', {}, token, on);
    expect(options.status, await options.clone().text()).to.equal(200);
    const response = await t.register((await options.json()) as Parameters<PasskeyTab['register']>[0]);
    const res = await post('/v1/me/passkeys', { response }, token, on);
    expect(res.status, await res.clone().text()).to.equal(201);
    return ((await res.json()) as { id: string }).id;
  }

  /** A new user, logged in a moment ago (registration needs a recent authentication). */
  async function signedIn(prefix: string): Promise<Account & { token: string }> {
    const created = await createAccount(app, prefix);
    return { ...created, token: (await login(app, created.username, created.password)).accessToken };
  }

  const verify = (response: unknown, on: TestApp = app) => post('/v1/auth/passkey/verify', { response }, undefined, on);

  /** A fresh, genuine assertion of `t` for a new usernameless challenge. */
  async function assertion(t: PasskeyTab = tab): Promise<AuthenticationResponseJSON> {
    return t.authenticate(await loginOptions());
  }

  before(async function () {
    const launched = await launchChromium(PASSKEY_CHROMIUM_ARGS);
    if (!launched.browser) this.skip();
    browser = launched.browser;
    pages = await startPageServer();
    elsewhere = await startPageServer();
    clock = new ManualClock();
    logs = new LogCapture();
    db = await createTestDatabase('passkey_attacks');
    // The sub.localhost origin is allowed, so that only the RP ID check can refuse what is made there.
    const origins = [pages.origin(), pages.origin('sub')];
    app = await startTestApp('passkey_attacks', {
      db,
      clock,
      log: logs.logger({ region: 'local' }),
      // Failures count toward the account's login limits: room for every case below, and a test of the limit itself.
      overrides: { identity: { webauthn: webauthnConfig(origins) }, rateLimit: { freeFailures: FREE_FAILURES } },
    });
    logs.follow(app.container.requestContext);
    subApp = await startTestApp('passkey_attacks_sub', {
      db,
      clock,
      migrate: false,
      overrides: { identity: { webauthn: webauthnConfig([pages.origin('sub')], 'sub.localhost') } },
    });
    tab = await PasskeyTab.open(browser, pages.origin());
    account = await signedIn('pk_attack');
    await registerPasskey(tab, account.token);
  });

  after(async function () {
    await tab?.close();
    await subApp?.close();
    await app?.close();
    await db?.drop();
    await browser?.close();
    await pages?.close();
    await elsewhere?.close();
  });

  it('the genuine assertion signs in (the baseline every case below alters)', async function () {
    const tokens = await expectTokenResponse(await verify(await assertion()));
    expect(tokens.user.id).to.equal(account.user.id);
  });

  describe('origin', function () {
    it('an assertion made on an origin that is not on identity.webauthn.origins is 400 invalid_passkey_response, naming the origin', async function () {
      const other = await PasskeyTab.open(browser!, elsewhere.origin());
      try {
        // The same authenticator's credential is needed: copy it over (a phishing page on another port of the same host).
        for (const credential of await tab.credentials()) await other.addCredential(credential);
        const response = await other.authenticate(await loginOptions());
        expect(clientDataOf(response).origin).to.equal(elsewhere.origin());
        const problem = await expectProblem(await verify(response), 400, 'invalid_passkey_response');
        expect(problem.detail).to.match(/origin/i);
      } finally {
        await other.close();
      }
    });

    it('a registration made on another origin is refused the same way, and stores nothing', async function () {
      const fresh = await signedIn('pk_origin');
      const other = await PasskeyTab.open(browser!, elsewhere.origin());
      try {
        const options = await post('/v1/me/passkeys/options', {}, fresh.token);
        const response = await other.register((await options.json()) as Parameters<PasskeyTab['register']>[0]);
        const problem = await expectProblem(await post('/v1/me/passkeys', { response }, fresh.token), 400, 'invalid_passkey_response');
        expect(problem.detail).to.match(/origin/i);
        const list = (await (await app.request('/v1/me/passkeys', { token: fresh.token })).json()) as { passkeys: unknown[] };
        expect(list.passkeys).to.have.length(0);
      } finally {
        await other.close();
      }
    });

    it('a clientDataJSON whose origin was rewritten to an allowed one no longer matches its signature: 401 passkey_rejected', async function () {
      const other = await PasskeyTab.open(browser!, elsewhere.origin());
      try {
        for (const credential of await tab.credentials()) await other.addCredential(credential);
        const response = await other.authenticate(await loginOptions());
        const clientData = { ...clientDataOf(response), origin: pages.origin() };
        const altered = { ...response, response: { ...response.response, clientDataJSON: base64urlJson(clientData) } };
        await expectProblem(await verify(altered), 401, 'passkey_rejected');
      } finally {
        await other.close();
      }
    });
  });

  describe('RP ID', function () {
    it('a registration under another RP ID (the options altered on the page) is 400 invalid_passkey_response, naming the RP ID', async function () {
      const fresh = await signedIn('pk_rpid_reg');
      const sub = await PasskeyTab.open(browser!, pages.origin('sub'));
      try {
        const options = (await (await post('/v1/me/passkeys/options', {}, fresh.token)).json()) as Parameters<PasskeyTab['register']>[0];
        const response = await sub.register({ ...options, rp: { ...options.rp, id: 'sub.localhost' } });
        const problem = await expectProblem(await post('/v1/me/passkeys', { response }, fresh.token), 400, 'invalid_passkey_response');
        expect(problem.detail).to.match(/rp ?id/i);
      } finally {
        await sub.close();
      }
    });

    it("an assertion of a known credential signed for another RP ID is 400 invalid_passkey_response (the authenticator data's RP ID hash)", async function () {
      // A credential of sub.localhost, registered (legitimately) through a server of that RP ID on the same database.
      const fresh = await signedIn('pk_rpid_auth');
      const sub = await PasskeyTab.open(browser!, pages.origin('sub'));
      try {
        await registerPasskey(sub, fresh.token, subApp);
        const options = await loginOptions();
        const response = await sub.authenticate({ ...options, rpId: 'sub.localhost' });
        const problem = await expectProblem(await verify(response), 400, 'invalid_passkey_response');
        expect(problem.detail).to.match(/rp ?id/i);
      } finally {
        await sub.close();
      }
    });
  });

  describe('challenge', function () {
    it('a replayed assertion (the same response twice) signs in once: the second is 400 invalid_passkey_challenge', async function () {
      const response = await assertion();
      await expectTokenResponse(await verify(response));
      const problem = await expectProblem(await verify(response), 400, 'invalid_passkey_challenge');
      expect(problem.detail).to.match(/used/);
    });

    it('two concurrent uses of one assertion: exactly one signs in', async function () {
      const response = await assertion();
      const results = await Promise.all([verify(response), verify(response), verify(response)]);
      expect(results.map((r) => r.status).sort()).to.deep.equal([200, 400, 400]);
    });

    it('a challenge that was not issued by authctl (an attacker chose it) is 400 invalid_passkey_challenge', async function () {
      const options = await loginOptions();
      const response = await tab.authenticate({ ...options, challenge: Buffer.from(`pk_${randomBytes(48).toString('base64url')}`).toString('base64url') });
      await expectProblem(await verify(response), 400, 'invalid_passkey_challenge');
    });

    it("a registration's challenge answered as a sign-in is 400 invalid_passkey_challenge (another ceremony)", async function () {
      const registration = (await (await post('/v1/me/passkeys/options', {}, account.token)).json()) as { challenge: string };
      const options = await loginOptions();
      const response = await tab.authenticate({ ...options, challenge: registration.challenge });
      const problem = await expectProblem(await verify(response), 400, 'invalid_passkey_challenge');
      expect(problem.detail).to.match(/ceremony/);
    });

    it('a challenge older than 5 minutes is 400 invalid_passkey_challenge (expired), though the signature is good', async function () {
      const options = await loginOptions();
      const response = await tab.authenticate(options);
      clock.advance(301);
      try {
        const problem = await expectProblem(await verify(response), 400, 'invalid_passkey_challenge');
        expect(problem.detail).to.match(/expired/);
      } finally {
        clock.advance(-301);
      }
    });

    it("a registration response replayed (for the same user) is refused: the challenge was spent with the passkey's insert", async function () {
      const fresh = await signedIn('pk_reg_replay');
      const extra = await PasskeyTab.open(browser!, pages.origin());
      try {
        const options = await post('/v1/me/passkeys/options', {}, fresh.token);
        const response: RegistrationResponseJSON = await extra.register((await options.json()) as Parameters<PasskeyTab['register']>[0]);
        expect((await post('/v1/me/passkeys', { response }, fresh.token)).status).to.equal(201);
        await expectProblem(await post('/v1/me/passkeys', { response }, fresh.token), 400, 'invalid_passkey_challenge');
      } finally {
        await extra.close();
      }
    });

    it("another user's registration challenge is 400 invalid_passkey_challenge (bound to who asked)", async function () {
      const alice = await signedIn('pk_bound_a');
      const mallory = await signedIn('pk_bound_m');
      const extra = await PasskeyTab.open(browser!, pages.origin());
      try {
        const options = await post('/v1/me/passkeys/options', {}, alice.token);
        const response = await extra.register((await options.json()) as Parameters<PasskeyTab['register']>[0]);
        await expectProblem(await post('/v1/me/passkeys', { response }, mallory.token), 400, 'invalid_passkey_challenge');
      } finally {
        await extra.close();
      }
    });
  });

  describe('signature and key', function () {
    it('a signature with one byte changed is 401 passkey_rejected', async function () {
      const response = await assertion();
      const signature = Buffer.from(response.response.signature, 'base64url');
      signature.writeUInt8(signature.readUInt8(signature.length - 1) ^ 0x01, signature.length - 1);
      await expectProblem(
        await verify({ ...response, response: { ...response.response, signature: signature.toString('base64url') } }),
        401,
        'passkey_rejected',
      );
    });

    it('an authenticator that holds the credential id under another private key (a forgery) is 401 passkey_rejected', async function () {
      const [credential] = await tab.credentials();
      const forger = await PasskeyTab.open(browser!, pages.origin());
      try {
        const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
        await forger.addCredential({ ...credential!, privateKey: privateKey.export({ type: 'pkcs8', format: 'der' }).toString('base64') });
        const response = await forger.authenticate(await loginOptions());
        expect(response.id).to.equal(Buffer.from(credential!.credentialId, 'base64').toString('base64url'));
        await expectProblem(await verify(response), 401, 'passkey_rejected');
      } finally {
        await forger.close();
      }
    });

    it('a credential authctl does not know is 401 passkey_rejected', async function () {
      const stranger = await PasskeyTab.open(browser!, pages.origin());
      try {
        const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
        await stranger.addCredential({
          credentialId: randomBytes(32).toString('base64'),
          isResidentCredential: true,
          rpId: 'localhost',
          privateKey: privateKey.export({ type: 'pkcs8', format: 'der' }).toString('base64'),
          userHandle: randomBytes(16).toString('base64'),
          signCount: 0,
        });
        await expectProblem(await verify(await stranger.authenticate(await loginOptions())), 401, 'passkey_rejected');
      } finally {
        await stranger.close();
      }
    });

    it("a discoverable credential's user handle swapped for another user's (it is not signed) does not sign in as them: 401 passkey_rejected", async function () {
      const other = await signedIn('pk_handle');
      const response = await assertion();
      const swapped = { ...response, response: { ...response.response, userHandle: Buffer.from(other.user.id).toString('base64url') } };
      const res = await verify(swapped);
      await expectProblem(res, 401, 'passkey_rejected');
    });
  });

  describe('user presence', function () {
    it('an assertion whose authenticator data says nobody was present is 400 invalid_passkey_response, before its signature is judged', async function () {
      const response = await assertion();
      // The flags byte follows the 32-byte RP ID hash; UP is its lowest bit. Altered, the signature no longer covers it,
      // so only a presence check that runs first answers 400 (without one, this would be 401 passkey_rejected).
      const data = Buffer.from(response.response.authenticatorData, 'base64url');
      data.writeUInt8(data.readUInt8(32) & ~0x01, 32);
      const problem = await expectProblem(
        await verify({ ...response, response: { ...response.response, authenticatorData: data.toString('base64url') } }),
        400,
        'invalid_passkey_response',
      );
      expect(problem.detail).to.match(/present/);
    });
  });

  describe('counter', function () {
    it('a cloned authenticator (the same key, an older counter) is 401 passkey_rejected and logged as passkey.counter_regressed; the original keeps working', async function () {
      const [snapshot] = await tab.credentials();
      // The original moves on…
      await expectTokenResponse(await verify(await assertion()));
      await expectTokenResponse(await verify(await assertion()));
      // …and the clone, made from the earlier snapshot, signs with a counter the server has seen already.
      const clone = await PasskeyTab.open(browser!, pages.origin());
      try {
        await clone.addCredential(snapshot!);
        const before = logs.events('passkey.counter_regressed').length;
        await expectProblem(await verify(await assertion(clone)), 401, 'passkey_rejected');
        expect(logs.events('passkey.counter_regressed')).to.have.length(before + 1);
      } finally {
        await clone.close();
      }
      await expectTokenResponse(await verify(await assertion()));
    });
  });

  describe('backup eligibility', function () {
    it("a device-bound passkey's key asserting as backup-eligible (synced) is 401 passkey_rejected: it would sign in as hwk", async function () {
      const owner = await signedIn('pk_be');
      const own = await PasskeyTab.open(browser!, pages.origin());
      const synced = await PasskeyTab.open(browser!, pages.origin());
      try {
        await registerPasskey(own, owner.token);
        const [credential] = await own.credentials();
        expect(credential!.backupEligibility).to.equal(false);
        // The same key and credential id, a counter well ahead: only the BE flag tells it apart.
        await synced.addCredential({ ...credential!, signCount: credential!.signCount + 100, backupEligibility: true, backupState: true });
        const before = logs.events('passkey.failed').length;
        await expectProblem(await verify(await assertion(synced)), 401, 'passkey_rejected');
        await logs.settle();
        expect(
          logs
            .events('passkey.failed')
            .slice(before)
            .map((l) => l.reason),
        ).to.deep.equal(['backup_eligibility']);
        // The passkey itself is unharmed: its own authenticator still signs in, as hwk.
        const tokens = await expectTokenResponse(await verify(await assertion(own)));
        expect(tokens.user.id).to.equal(owner.user.id);
      } finally {
        await own.close();
        await synced.close();
      }
    });
  });

  describe('malformed bodies: 400, never a 500', function () {
    const cases: Array<[string, (genuine: AuthenticationResponseJSON) => unknown]> = [
      ['no response', () => ({})],
      ['a string', () => ({ response: 'x' })],
      ['an empty object', () => ({ response: {} })],
      ['clientDataJSON that is not base64url JSON', (g) => ({ response: { ...g, response: { ...g.response, clientDataJSON: '!!!' } } })],
      [
        'clientDataJSON of the wrong type (webauthn.create)',
        (g) => ({ response: { ...g, response: { ...g.response, clientDataJSON: base64urlJson({ ...clientDataOf(g), type: 'webauthn.create' }) } } }),
      ],
      [
        'authenticatorData cut short',
        (g) => ({ response: { ...g, response: { ...g.response, authenticatorData: g.response.authenticatorData.slice(0, 20) } } }),
      ],
      ['a signature that is not DER', (g) => ({ response: { ...g, response: { ...g.response, signature: 'AAAA' } } })],
      ['type other than public-key', (g) => ({ response: { ...g, type: 'password' } })],
      ['a huge id', (g) => ({ response: { ...g, id: 'A'.repeat(20_000), rawId: 'A'.repeat(20_000) } })],
    ];

    let genuine: AuthenticationResponseJSON;
    before(async function () {
      genuine = await assertion();
    });

    for (const [name, make] of cases) {
      it(name, async function () {
        const res = await post('/v1/auth/passkey/verify', make(genuine));
        const text = await res.text();
        expect(res.status, text).to.be.oneOf([400, 401, 413]);
        expect(text).to.not.match(/at .*\.js:\d+/);
      });
    }
  });

  it("refused assertions count toward the account's login limits: past them, 429 with Retry-After, even for a genuine one", async function () {
    const target = await signedIn('pk_throttle');
    const own = await PasskeyTab.open(browser!, pages.origin());
    try {
      await registerPasskey(own, target.token);
      const response = await assertion(own);
      const signature = Buffer.from(response.response.signature, 'base64url');
      signature.writeUInt8(signature.readUInt8(5) ^ 0x40, 5);
      const forged = { ...response, response: { ...response.response, signature: signature.toString('base64url') } };
      // The free failures, then one more that opens the first back-off window (1 s)…
      for (let i = 0; i <= FREE_FAILURES; i++) await expectProblem(await verify(forged), 401, 'passkey_rejected');
      // …in which even the genuine passkey waits, as a right password would.
      const limited = await verify(await assertion(own));
      expect(limited.headers.get('retry-after')).to.match(/^\d+$/);
      await expectProblem(limited, 429, 'rate_limited');
    } finally {
      await own.close();
    }
  });

  it('none of the refusals above logged a challenge, a response, a signature or a public key', function () {
    expect(logs.lines.length).to.be.greaterThan(0);
    // A challenge is `pk_…` sealed; in a response it is base64url of that (`cGtf…`).
    expect(logs.text).to.not.match(/pk_[A-Za-z0-9_-]{40,}|cGtf[A-Za-z0-9_-]{40,}/);
    expect(logs.text).to.not.match(/"(clientDataJSON|authenticatorData|attestationObject|signature|publicKey|rawId)":/);
  });
});
