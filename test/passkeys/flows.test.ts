import { expect } from 'chai';
import type { PublicKeyCredentialCreationOptionsJSON, PublicKeyCredentialRequestOptionsJSON } from '@simplewebauthn/server';
import type { Browser } from 'playwright-core';
import type { TokenResponse } from '../../src/core/auth/auth-service.js';
import type { PasskeyView } from '../../src/core/passkeys/passkeys.js';
import { ManualClock } from '../../src/platform/clock.js';
import { startTestApp, type TestApp } from '../helpers/app.js';
import { launchChromium } from '../helpers/browser.js';
import { decodeJwt } from 'jose';
import {
  createAccount,
  expectInvalidRequest,
  expectInvalidToken,
  expectProblem,
  expectTokenResponse,
  login,
  refresh,
  uniqueUsername,
  type Account,
} from '../helpers/http-assert.js';
import { authClaims, enrolTotp, expectChallenge, totpAt, type Enrolled } from '../mfa/two-step-support.js';
import { PASSKEY_CHROMIUM_ARGS, PasskeyTab, startPageServer, webauthnConfig, type PageServer } from './support.js';

/**
 * The passkey ceremonies as an app's page runs them — @simplewebauthn/browser in Chromium with
 * the DevTools virtual authenticator — against the HTTP API: registration (behind step-up), the
 * list, renaming and removal (never of the last way to sign in), sign-in by username and
 * usernameless, with and without user verification, the second step of a password login,
 * step-up, what the tokens say (`amr`, `acr`), and the sessions a removed passkey takes with it.
 */
describe('passkey flows in a real browser', function () {
  this.timeout(120_000);
  let browser: Browser | undefined;
  let pages: PageServer;
  let app: TestApp;
  let clock: ManualClock;
  const tabs: PasskeyTab[] = [];

  const post = (path: string, json: unknown, token?: string) => app.request(path, { method: 'POST', json, ...(token ? { token } : {}) });

  async function ok<T>(res: Response, status = 200): Promise<T> {
    const text = await res.text();
    expect(res.status, text).to.equal(status);
    return JSON.parse(text) as T;
  }

  async function tab(settings: Parameters<typeof PasskeyTab.open>[2] = {}): Promise<PasskeyTab> {
    const opened = await PasskeyTab.open(browser!, pages.origin(), settings);
    tabs.push(opened);
    return opened;
  }

  /** A new password account, logged in a moment ago (registration needs a recent authentication). */
  async function signedIn(prefix: string): Promise<Account & { token: string }> {
    const account = await createAccount(app, prefix);
    return { ...account, token: (await login(app, account.username, account.password)).accessToken };
  }

  async function creationOptions(token: string): Promise<PublicKeyCredentialCreationOptionsJSON> {
    return ok(await post('/v1/me/passkeys/options', undefined, token));
  }

  /** Registers a passkey of `t` for `token`'s user through the HTTP API. */
  async function registerOn(t: PasskeyTab, token: string, name?: string): Promise<PasskeyView> {
    const response = await t.register(await creationOptions(token));
    return ok(await post('/v1/me/passkeys', { response, ...(name ? { name } : {}) }, token), 201);
  }

  async function requestOptions(body?: Record<string, unknown>): Promise<PublicKeyCredentialRequestOptionsJSON> {
    return ok(await post('/v1/auth/passkey/options', body));
  }

  /**
   * A page that does not ask the authenticator to verify its user (WebAuthn's `discouraged`: a
   * client may always ask for less than `preferred`); with a virtual authenticator that cannot
   * verify its user, Chromium would otherwise refuse the ceremony.
   */
  const withoutUv = (options: PublicKeyCredentialRequestOptionsJSON): PublicKeyCredentialRequestOptionsJSON => ({
    ...options,
    userVerification: 'discouraged',
  });

  /** Signs in with `t`'s passkey for options of `body` (as the page `alter`s them): the raw answer. */
  async function passkeySignIn(
    t: PasskeyTab,
    body?: Record<string, unknown>,
    alter: (o: PublicKeyCredentialRequestOptionsJSON) => PublicKeyCredentialRequestOptionsJSON = (o) => o,
  ): Promise<Response> {
    return post('/v1/auth/passkey/verify', { response: await t.authenticate(alter(await requestOptions(body))) });
  }

  /** The tokens work: `GET /v1/me` with the access token is the user. */
  async function expectWorking(tokens: TokenResponse, userId: string): Promise<void> {
    const me = await ok<{ user: { id: string } }>(await app.request('/v1/me', { token: tokens.accessToken }));
    expect(me.user.id).to.equal(userId);
  }

  /** A session's row: which passkey signed it in, and why it ended. */
  const sessionRow = (id: string) => app.container.db.writer('sessions').where({ id }).first<{ passkey_id: string | null; revoke_reason: string | null }>();

  /** base64url of a virtual credential's id (DevTools gives base64). */
  const credentialIds = async (t: PasskeyTab) => (await t.credentials()).map((c) => Buffer.from(c.credentialId, 'base64').toString('base64url'));

  before(async function () {
    const launched = await launchChromium(PASSKEY_CHROMIUM_ARGS);
    if (!launched.browser) this.skip();
    browser = launched.browser;
    pages = await startPageServer();
    clock = new ManualClock();
    app = await startTestApp('passkey_flows', { clock, overrides: { identity: { webauthn: webauthnConfig([pages.origin()]) } } });
  });

  after(async function () {
    for (const t of tabs) await t.close();
    await app?.close();
    await browser?.close();
    await pages?.close();
  });

  describe('registration and the list', function () {
    let alice: Account & { token: string };
    let device: PasskeyTab;
    let registered: PasskeyView;

    before(async function () {
      alice = await signedIn('pk_alice');
      device = await tab();
    });

    it('needs a recent authentication: with a stale auth_time both steps are 403 reauthentication_required', async function () {
      const fresh = await creationOptions(alice.token);
      const response = await device.register(fresh);
      clock.advance(app.container.config.identity.reauthWindow + 1);
      await expectProblem(await post('/v1/me/passkeys/options', undefined, alice.token), 403, 'reauthentication_required');
      await expectProblem(await post('/v1/me/passkeys', { response }, alice.token), 403, 'reauthentication_required');
      expect(await ok<{ passkeys: PasskeyView[] }>(await app.request('/v1/me/passkeys', { token: alice.token }))).to.deep.equal({ passkeys: [] });
      alice.token = (await login(app, alice.username, alice.password)).accessToken;
      await device.clearCredentials();
    });

    it('the options name the RP and the user, ask for a discoverable credential and user verification (preferred) and no attestation', async function () {
      const options = await creationOptions(alice.token);
      expect(options.rp).to.deep.equal({ id: 'localhost', name: 'authctl tests' });
      expect(options.user).to.deep.equal({
        id: Buffer.from(alice.user.id.replace(/-/g, ''), 'hex').toString('base64url'),
        name: alice.username,
        displayName: alice.username,
      });
      expect(options.authenticatorSelection).to.include({ residentKey: 'preferred', userVerification: 'preferred' });
      expect(options.attestation).to.equal('none');
      expect(options.timeout).to.equal(300_000);
      expect(options.excludeCredentials).to.deep.equal([]);
      // The challenge is the sealed value itself (base64url of its bytes), a new one each time.
      expect(Buffer.from(options.challenge, 'base64url').toString('utf8')).to.match(/^pk_[A-Za-z0-9_-]+$/);
      expect((await creationOptions(alice.token)).challenge).to.not.equal(options.challenge);
    });

    it('registers a passkey: 201 with its view (a device-bound one), listed; the next options exclude it', async function () {
      registered = await registerOn(device, alice.token);
      expect(registered).to.include({ name: 'Passkey 1', backupEligible: false, backedUp: false, lastUsedAt: null });
      expect(registered.transports).to.include('internal');
      expect(Object.keys(registered).sort()).to.deep.equal(['aaguid', 'backedUp', 'backupEligible', 'createdAt', 'id', 'lastUsedAt', 'name', 'transports']);
      const list = await ok<{ passkeys: PasskeyView[] }>(await app.request('/v1/me/passkeys', { token: alice.token }));
      expect(list.passkeys).to.deep.equal([registered]);
      const excluded = (await creationOptions(alice.token)).excludeCredentials!.map((c) => c.id);
      expect(excluded).to.deep.equal(await credentialIds(device));
    });

    it('renames it (trimmed, 1–64 characters); an unknown, malformed or foreign id is 404', async function () {
      const renamed = await ok<PasskeyView>(
        await app.request(`/v1/me/passkeys/${registered.id}`, { method: 'PATCH', token: alice.token, json: { name: '  Work laptop ' } }),
      );
      expect(renamed).to.deep.equal({ ...registered, name: 'Work laptop' });
      await expectInvalidRequest(await app.request(`/v1/me/passkeys/${registered.id}`, { method: 'PATCH', token: alice.token, json: { name: ' ' } }), 'name');
      await expectInvalidRequest(
        await app.request(`/v1/me/passkeys/${registered.id}`, { method: 'PATCH', token: alice.token, json: { name: 'x'.repeat(65) } }),
        'name',
      );
      const patch = (id: string, token: string) => app.request(`/v1/me/passkeys/${id}`, { method: 'PATCH', token, json: { name: 'mine now' } });
      await expectProblem(await patch('0192f0c4-7d1e-7c3a-9b1e-3f2a1c0d4e70', alice.token), 404, 'not_found');
      await expectProblem(await patch('not-a-uuid', alice.token), 404, 'not_found');
      const mallory = await signedIn('pk_mallory');
      await expectProblem(await patch(registered.id, mallory.token), 404, 'not_found');
      await expectProblem(await app.request(`/v1/me/passkeys/${registered.id}`, { method: 'DELETE', token: mallory.token }), 404, 'not_found');
    });

    it('signs in by username: the options list the passkey; tokens at aal2 with amr ["hwk", "user"] that work on GET /v1/me', async function () {
      const options = await requestOptions({ username: alice.username.toUpperCase() });
      expect(options.allowCredentials!.map((c) => c.id)).to.deep.equal(await credentialIds(device));
      expect(options).to.include({ rpId: 'localhost', userVerification: 'preferred', timeout: 300_000 });
      const tokens = await expectTokenResponse(await post('/v1/auth/passkey/verify', { response: await device.authenticate(options) }));
      expect(tokens.user.id).to.equal(alice.user.id);
      expect(authClaims(tokens)).to.deep.include({ amr: ['hwk', 'user'], acr: 'aal2' });
      await expectWorking(tokens, alice.user.id);
      const [used] = (await ok<{ passkeys: PasskeyView[] }>(await app.request('/v1/me/passkeys', { token: alice.token }))).passkeys;
      expect(used!.lastUsedAt).to.equal(clock.now().toISOString());
    });

    it('signs in usernameless: the options list no credential, the discoverable passkey names its user', async function () {
      const options = await requestOptions();
      expect(options.allowCredentials).to.deep.equal([]);
      const tokens = await expectTokenResponse(await post('/v1/auth/passkey/verify', { response: await device.authenticate(options) }));
      expect(tokens.user.id).to.equal(alice.user.id);
      expect(authClaims(tokens)).to.deep.include({ amr: ['hwk', 'user'], acr: 'aal2' });
      await expectWorking(tokens, alice.user.id);
    });

    it('removal needs a recent authentication; a password account may remove its only passkey', async function () {
      const second = await registerOn(await tab(), alice.token, 'Phone');
      clock.advance(app.container.config.identity.reauthWindow + 1);
      await expectProblem(await app.request(`/v1/me/passkeys/${second.id}`, { method: 'DELETE', token: alice.token }), 403, 'reauthentication_required');
      alice.token = (await login(app, alice.username, alice.password)).accessToken;
      expect((await app.request(`/v1/me/passkeys/${second.id}`, { method: 'DELETE', token: alice.token })).status).to.equal(204);
      expect((await app.request(`/v1/me/passkeys/${registered.id}`, { method: 'DELETE', token: alice.token })).status).to.equal(204);
      expect(await ok<{ passkeys: PasskeyView[] }>(await app.request('/v1/me/passkeys', { token: alice.token }))).to.deep.equal({ passkeys: [] });
      await expectProblem(await app.request(`/v1/me/passkeys/${registered.id}`, { method: 'DELETE', token: alice.token }), 404, 'not_found');
      // Removed: it signs in no more.
      await expectProblem(await passkeySignIn(device), 401, 'passkey_rejected');
    });
  });

  describe('the options of a username nobody has, or of a user without passkeys', function () {
    it('have the shape of a real answer: credentials derived from the identifier, the same each time, other for another', async function () {
      const nobody = uniqueUsername('pk_nobody');
      const first = await requestOptions({ username: nobody });
      const again = await requestOptions({ username: nobody.toUpperCase() });
      expect(first.allowCredentials).to.have.length(1);
      expect(again.allowCredentials).to.deep.equal(first.allowCredentials);
      expect(first.allowCredentials![0]!.id).to.match(/^[A-Za-z0-9_-]{43}$/);
      expect(again.challenge).to.not.equal(first.challenge);
      const other = await requestOptions({ username: uniqueUsername('pk_nobody') });
      expect(other.allowCredentials![0]!.id).to.not.equal(first.allowCredentials![0]!.id);
      const without = await createAccount(app, 'pk_without');
      const real = await requestOptions({ username: without.username });
      expect(real.allowCredentials).to.have.length(1);
      expect(Object.keys(real.allowCredentials![0]!).sort()).to.deep.equal(Object.keys(first.allowCredentials![0]!).sort());
      expect((await requestOptions({ email: 'nobody@example.com' })).allowCredentials).to.have.length(1);
    });

    it('take the same work for a user with passkeys, one without and a name nobody has: one query each (no timing oracle)', async function () {
      const holder = await signedIn('pk_work_has');
      await registerOn(await tab(), holder.token);
      const without = await createAccount(app, 'pk_work_none');
      const statements: string[] = [];
      const onQuery = (q: { sql: string }) => statements.push(q.sql);
      const queriesOf = async (username: string) => {
        statements.length = 0;
        app.container.db.writer.on('query', onQuery);
        try {
          await requestOptions({ username });
        } finally {
          app.container.db.writer.off('query', onQuery);
        }
        return statements.filter((sql) => /"(users|passkeys)"/.test(sql));
      };
      const has = await queriesOf(holder.username);
      const none = await queriesOf(without.username);
      const nobody = await queriesOf(uniqueUsername('pk_work_nobody'));
      expect(has, has.join('\n')).to.have.length(1);
      expect(none).to.deep.equal(has);
      expect(nobody).to.deep.equal(has);
    });
  });

  describe('without user verification, and the second step', function () {
    let bob: Account & { token: string };
    let device: PasskeyTab;
    let totp: Enrolled;

    before(async function () {
      bob = await signedIn('pk_bob');
      device = await tab();
      await registerOn(device, bob.token);
      // From now on the authenticator cannot verify its user (no PIN or biometric at hand): it signs with UV off.
      await device.setUserVerified(false);
    });

    it('a passkey that did not verify its user is one first factor: amr ["hwk"], aal1', async function () {
      const tokens = await expectTokenResponse(await passkeySignIn(device, { username: bob.username }, withoutUv));
      expect(authClaims(tokens)).to.deep.include({ amr: ['hwk'], acr: 'aal1' });
      await expectWorking(tokens, bob.user.id);
    });

    it('with a TOTP factor it asks for a second step — the code, never the same passkey — and ends at aal2', async function () {
      totp = await enrolTotp(app, bob.token, clock);
      clock.advance(30);
      const challenge = await expectChallenge(await passkeySignIn(device, {}, withoutUv));
      expect(challenge.factors).to.deep.equal(['totp', 'recovery_code']);
      await expectProblem(await post('/v1/auth/passkey/options', { mfaToken: challenge.mfaToken }), 404, 'not_found');
      const tokens = await expectTokenResponse(await post('/v1/auth/mfa/verify', { mfaToken: challenge.mfaToken, code: totpAt(totp.secret, clock.now()) }));
      expect(authClaims(tokens)).to.deep.include({ amr: ['hwk', 'otp', 'mfa'], acr: 'aal2' });
      await expectWorking(tokens, bob.user.id);
    });

    it('a passkey that verified its user needs no second step, whatever factors the user has', async function () {
      await device.setUserVerified(true);
      try {
        const tokens = await expectTokenResponse(await passkeySignIn(device));
        expect(authClaims(tokens)).to.deep.include({ amr: ['hwk', 'user'], acr: 'aal2' });
      } finally {
        await device.setUserVerified(false);
      }
    });

    it("after a password, the passkey is offered as the second step: the mfaToken's options list it, and it ends the login at aal2", async function () {
      const challenge = await expectChallenge(await post('/v1/auth/login', { username: bob.username, password: bob.password }));
      expect(challenge.factors).to.deep.equal(['totp', 'recovery_code', 'passkey']);
      const options = await requestOptions({ mfaToken: challenge.mfaToken });
      expect(options.allowCredentials!.map((c) => c.id)).to.deep.equal(await credentialIds(device));

      // Another user's passkey answering this login's challenge proves nothing: 401, and the mfaToken stays good.
      const stranger = await tab();
      const carol = await signedIn('pk_carol');
      await registerOn(stranger, carol.token);
      const foreign = await stranger.authenticate({ ...options, allowCredentials: [] });
      await expectProblem(await post('/v1/auth/mfa/verify', { mfaToken: challenge.mfaToken, passkey: foreign }), 401, 'passkey_rejected');
      // An answer to another ceremony's challenge is refused too.
      const signInAnswer = await device.authenticate(withoutUv(await requestOptions()));
      await expectProblem(await post('/v1/auth/mfa/verify', { mfaToken: challenge.mfaToken, passkey: signInAnswer }), 400, 'invalid_passkey_challenge');

      const passkey = await device.authenticate(withoutUv(options));
      const tokens = await expectTokenResponse(await post('/v1/auth/mfa/verify', { mfaToken: challenge.mfaToken, passkey }));
      expect(authClaims(tokens)).to.deep.include({ amr: ['pwd', 'hwk', 'mfa'], acr: 'aal2' });
      await expectWorking(tokens, bob.user.id);
      // The mfaToken and the challenge were spent with the session.
      await expectProblem(
        await post('/v1/auth/mfa/verify', { mfaToken: challenge.mfaToken, code: totpAt(totp.secret, clock.now()) }),
        401,
        'invalid_mfa_token',
      );
    });

    it('a second step answered by a passkey that verified its user says so: amr ["pwd", "hwk", "user", "mfa"]', async function () {
      await device.setUserVerified(true);
      const challenge = await expectChallenge(await post('/v1/auth/login', { username: bob.username, password: bob.password }));
      const passkey = await device.authenticate(await requestOptions({ mfaToken: challenge.mfaToken }));
      const tokens = await expectTokenResponse(await post('/v1/auth/mfa/verify', { mfaToken: challenge.mfaToken, passkey }));
      expect(authClaims(tokens)).to.deep.include({ amr: ['pwd', 'hwk', 'user', 'mfa'], acr: 'aal2' });
    });
  });

  describe('under identity.mfa "required"', function () {
    /** A server of the same database that requires a second factor of every login. */
    let strict: TestApp;
    const strictPost = (path: string, json: unknown, token?: string) => strict.request(path, { method: 'POST', json, ...(token ? { token } : {}) });

    before(async function () {
      strict = await startTestApp('passkey_flows_required', {
        db: app.db,
        migrate: false,
        clock,
        overrides: { identity: { mfa: 'required', webauthn: webauthnConfig([pages.origin()]) } },
      });
    });

    after(async function () {
      await strict?.close();
    });

    it('a passkey is the factor: a password login offers it alone, no TOTP enrolment; step-up wants the passkey, not the password', async function () {
      // Registered where no second factor is required: the user has a password and a passkey, no TOTP factor.
      const fay = await signedIn('pk_fay');
      const device = await tab();
      await registerOn(device, fay.token);

      const challenge = await expectChallenge(await strictPost('/v1/auth/login', { username: fay.username, password: fay.password }));
      expect(challenge).to.deep.include({ factors: ['passkey'], enrolmentRequired: false });
      const options = await ok<PublicKeyCredentialRequestOptionsJSON>(await strictPost('/v1/auth/passkey/options', { mfaToken: challenge.mfaToken }));
      const passkey = await device.authenticate(options);
      const tokens = await expectTokenResponse(await strictPost('/v1/auth/mfa/verify', { mfaToken: challenge.mfaToken, passkey }));
      expect(authClaims(tokens)).to.deep.include({ amr: ['pwd', 'hwk', 'user', 'mfa'], acr: 'aal2' });

      const stepUp = await expectProblem(await strictPost('/v1/auth/reauthenticate', { password: fay.password }, tokens.accessToken), 400, 'invalid_request');
      expect(stepUp.detail).to.match(/passkey/);
      // The passkey is the way: it renews the session's authentication at aal2.
      const stepUpOptions = await ok<PublicKeyCredentialRequestOptionsJSON>(
        await strictPost('/v1/auth/passkey/options', { purpose: 'reauthenticate' }, tokens.accessToken),
      );
      const renewed = await ok<{ accessToken: string }>(
        await strictPost('/v1/auth/reauthenticate', { passkey: await device.authenticate(stepUpOptions) }, tokens.accessToken),
      );
      expect(decodeJwt(renewed.accessToken)).to.deep.include({ sid: tokens.sessionId, amr: ['hwk', 'user'], acr: 'aal2' });

      // A passkey that did not verify its user is the first factor, so it cannot be the second too: that login enrols a TOTP factor.
      await device.setUserVerified(false);
      const signInOptions = await ok<PublicKeyCredentialRequestOptionsJSON>(await strictPost('/v1/auth/passkey/options', {}));
      const enrol = await expectChallenge(await strictPost('/v1/auth/passkey/verify', { response: await device.authenticate(withoutUv(signInOptions)) }));
      expect(enrol).to.deep.include({ factors: [], enrolmentRequired: true });
    });
  });

  describe('a synced passkey', function () {
    it('is backup-eligible, and signs in as swk', async function () {
      const dora = await signedIn('pk_dora');
      const device = await tab({ synced: true });
      const view = await registerOn(device, dora.token);
      expect(view).to.include({ backupEligible: true, backedUp: true });
      const tokens = await expectTokenResponse(await passkeySignIn(device, { username: dora.username }));
      expect(authClaims(tokens)).to.deep.include({ amr: ['swk', 'user'], acr: 'aal2' });
      await expectWorking(tokens, dora.user.id);
    });
  });

  describe('the last way to sign in', function () {
    it('a passkey lets an account without a password unlink its provider; its last passkey cannot be removed, another one can', async function () {
      const c = app.container;
      const user = await c.identities.signInWith(
        { provider: 'google', subject: `sub-${Date.now()}`, email: null, emailVerified: false, name: 'Erin', preferredUsername: uniqueUsername('pk_erin') },
        'verified-email',
      );
      expect(user.passwordHash).to.equal(null);
      const viaProvider = (await c.auth.signIn(user, 'fed', {}, { idp: 'google' })) as TokenResponse;
      const first = await registerOn(await tab(), viaProvider.accessToken);
      // The passkey is a way to sign in: the only identity may go.
      await c.identities.unlink(user.id, 'google');

      const laptop = tabs[tabs.length - 1]!;
      const tokens = await expectTokenResponse(await passkeySignIn(laptop));
      expect(tokens.user.id).to.equal(user.id);
      const refused = await expectProblem(
        await app.request(`/v1/me/passkeys/${first.id}`, { method: 'DELETE', token: tokens.accessToken }),
        409,
        'last_sign_in_method',
      );
      expect(refused.detail).to.match(/last way to sign in/);

      const spare = await tab();
      const second = await registerOn(spare, tokens.accessToken, 'Spare key');
      expect((await app.request(`/v1/me/passkeys/${first.id}`, { method: 'DELETE', token: tokens.accessToken })).status).to.equal(204);
      // The session the removed passkey signed in ended with it; the spare key signs in, and is the last way left.
      await expectInvalidToken(await app.request('/v1/me', { token: tokens.accessToken }));
      const bySpare = await expectTokenResponse(await passkeySignIn(spare));
      await expectProblem(await app.request(`/v1/me/passkeys/${second.id}`, { method: 'DELETE', token: bySpare.accessToken }), 409, 'last_sign_in_method');
    });
  });

  describe('step-up with a passkey', function () {
    let gwen: Account & { token: string };
    let device: PasskeyTab;
    let replay: Record<string, unknown>;

    /** The options of a step-up of `token`'s session. */
    async function stepUpOptions(token: string): Promise<PublicKeyCredentialRequestOptionsJSON> {
      return ok(await post('/v1/auth/passkey/options', { purpose: 'reauthenticate' }, token));
    }

    const reauthenticate = (token: string, passkey: unknown) => post('/v1/auth/reauthenticate', { passkey }, token);

    before(async function () {
      gwen = await signedIn('pk_gwen');
      device = await tab();
      await registerOn(device, gwen.token);
    });

    it('renews the session: a new access token of it with auth_time now, amr ["hwk", "user"] at aal2, and a stale token may register a passkey again', async function () {
      const session = await login(app, gwen.username, gwen.password);
      clock.advance(app.container.config.identity.reauthWindow + 1);
      await expectProblem(await post('/v1/me/passkeys/options', undefined, session.accessToken), 403, 'reauthentication_required');

      const options = await stepUpOptions(session.accessToken);
      expect(options.allowCredentials!.map((c) => c.id)).to.deep.equal(await credentialIds(device));
      expect(options).to.include({ rpId: 'localhost', userVerification: 'preferred', timeout: 300_000 });
      const passkey = await device.authenticate(options);
      const renewed = await ok<{ accessToken: string; tokenType: string; expiresIn: number }>(await reauthenticate(session.accessToken, passkey));
      expect(Object.keys(renewed).sort()).to.deep.equal(['accessToken', 'expiresIn', 'tokenType']);
      expect(decodeJwt(renewed.accessToken)).to.deep.include({
        sid: session.sessionId,
        auth_time: Math.floor(clock.now().getTime() / 1000),
        amr: ['hwk', 'user'],
        acr: 'aal2',
      });
      replay = passkey as unknown as Record<string, unknown>;

      // The renewed token registers a second passkey; the session's refresh token still works and carries the new auth_time.
      await registerOn(await tab(), renewed.accessToken, 'Spare key');
      const refreshed = await expectTokenResponse(await refresh(app, session.refreshToken));
      expect(authClaims(refreshed)).to.deep.include({ auth_time: Math.floor(clock.now().getTime() / 1000), amr: ['hwk', 'user'] });
      // A step-up is not a sign-in: the session is still the password's, not one the passkey signed in.
      expect((await sessionRow(session.sessionId)).passkey_id).to.equal(null);
    });

    it('refuses a replayed answer: its challenge was spent with the renewal', async function () {
      const session = await login(app, gwen.username, gwen.password);
      // The same answer for another session: bound to the first one, and spent there.
      const problem = await expectProblem(await reauthenticate(session.accessToken, replay), 400, 'invalid_passkey_challenge');
      expect(problem.detail).to.match(/another session|used already/);
      const first = await stepUpOptions(session.accessToken);
      const answer = await device.authenticate(first);
      expect((await reauthenticate(session.accessToken, answer)).status).to.equal(200);
      const again = await expectProblem(await reauthenticate(session.accessToken, answer), 400, 'invalid_passkey_challenge');
      expect(again.detail).to.match(/used already/);
    });

    it("refuses another user's passkey, a sign-in's challenge, another session's challenge; and a step-up's challenge signs nobody in", async function () {
      const session = await login(app, gwen.username, gwen.password);
      const options = await stepUpOptions(session.accessToken);

      const stranger = await tab();
      const hank = await signedIn('pk_hank');
      await registerOn(stranger, hank.token);
      const foreign = await stranger.authenticate({ ...options, allowCredentials: [] });
      await expectProblem(await reauthenticate(session.accessToken, foreign), 401, 'passkey_rejected');
      // Nor may Hank renew his own session with the challenge of Gwen's.
      await expectProblem(await reauthenticate(hank.token, foreign), 400, 'invalid_passkey_challenge');

      const signInAnswer = await device.authenticate(await requestOptions({ username: gwen.username }));
      await expectProblem(await reauthenticate(session.accessToken, signInAnswer), 400, 'invalid_passkey_challenge');

      const other = await login(app, gwen.username, gwen.password);
      const otherSessions = await device.authenticate(await stepUpOptions(other.accessToken));
      const wrongSession = await expectProblem(await reauthenticate(session.accessToken, otherSessions), 400, 'invalid_passkey_challenge');
      expect(wrongSession.detail).to.match(/another session/);

      const stepUpAnswer = await device.authenticate(options);
      await expectProblem(await post('/v1/auth/passkey/verify', { response: stepUpAnswer }), 400, 'invalid_passkey_challenge');
      // None of it spent the challenge: the right answer still renews the session.
      expect((await reauthenticate(session.accessToken, stepUpAnswer)).status).to.equal(200);
    });

    it('the options want the caller’s access token (401) and a passkey of theirs (404); a body with both password and passkey is 400', async function () {
      await expectInvalidToken(await post('/v1/auth/passkey/options', { purpose: 'reauthenticate' }));
      await expectInvalidRequest(await post('/v1/auth/passkey/options', { purpose: 'login' }, gwen.token));
      const ivy = await signedIn('pk_ivy');
      await expectProblem(await post('/v1/auth/passkey/options', { purpose: 'reauthenticate' }, ivy.token), 404, 'not_found');
      const session = await login(app, gwen.username, gwen.password);
      const passkey = await device.authenticate(await stepUpOptions(session.accessToken));
      await expectInvalidRequest(await post('/v1/auth/reauthenticate', { passkey, password: gwen.password }, session.accessToken), 'passkey');
    });

    it('proves what a login would: without user verification it is aal1, and refused for an account whose logins then want a second factor', async function () {
      await device.setUserVerified(false);
      try {
        const session = await login(app, gwen.username, gwen.password);
        const plain = await ok<{ accessToken: string }>(
          await reauthenticate(session.accessToken, await device.authenticate(withoutUv(await stepUpOptions(session.accessToken)))),
        );
        expect(decodeJwt(plain.accessToken)).to.deep.include({ amr: ['hwk'], acr: 'aal1' });

        await enrolTotp(app, session.accessToken, clock);
        const refused = await expectProblem(
          await reauthenticate(session.accessToken, await device.authenticate(withoutUv(await stepUpOptions(session.accessToken)))),
          401,
          'passkey_rejected',
        );
        expect(refused.detail).to.match(/verify its user/);
        await device.setUserVerified(true);
        const verified = await ok<{ accessToken: string }>(
          await reauthenticate(session.accessToken, await device.authenticate(await stepUpOptions(session.accessToken))),
        );
        expect(decodeJwt(verified.accessToken)).to.deep.include({ amr: ['hwk', 'user'], acr: 'aal2' });
      } finally {
        await device.setUserVerified(true);
      }
    });
  });

  describe('removing a passkey ends the sessions it signed in', function () {
    it('its sign-ins and the logins it was a step of are revoked (passkey_removed); the password’s and another passkey’s sessions stay', async function () {
      const rita = await signedIn('pk_rita');
      const laptop = await tab();
      const phone = await tab();
      const removed = await registerOn(laptop, rita.token, 'Laptop');
      const kept = await registerOn(phone, rita.token, 'Phone');
      const totp = await enrolTotp(app, rita.token, clock);
      const code = () => {
        clock.advance(30);
        return totpAt(totp.secret, clock.now());
      };
      const passwordLogin = () => post('/v1/auth/login', { username: rita.username, password: rita.password });

      const signedInByIt = await expectTokenResponse(await passkeySignIn(laptop));
      const pwdThenIt = await expectChallenge(await passwordLogin());
      const secondStep = await expectTokenResponse(
        await post('/v1/auth/mfa/verify', {
          mfaToken: pwdThenIt.mfaToken,
          passkey: await laptop.authenticate(await requestOptions({ mfaToken: pwdThenIt.mfaToken })),
        }),
      );
      await laptop.setUserVerified(false);
      const itThenCode = await expectChallenge(await passkeySignIn(laptop, {}, withoutUv));
      await laptop.setUserVerified(true);
      const firstStep = await expectTokenResponse(await post('/v1/auth/mfa/verify', { mfaToken: itThenCode.mfaToken, code: code() }));
      const byPhone = await expectTokenResponse(await passkeySignIn(phone));
      const pwd = await expectChallenge(await passwordLogin());
      const byPassword = await expectTokenResponse(await post('/v1/auth/mfa/verify', { mfaToken: pwd.mfaToken, code: code() }));

      for (const t of [signedInByIt, secondStep, firstStep]) expect((await sessionRow(t.sessionId)).passkey_id).to.equal(removed.id);
      expect((await sessionRow(byPhone.sessionId)).passkey_id).to.equal(kept.id);
      expect((await sessionRow(byPassword.sessionId)).passkey_id).to.equal(null);

      expect((await app.request(`/v1/me/passkeys/${removed.id}`, { method: 'DELETE', token: byPassword.accessToken })).status).to.equal(204);
      for (const t of [signedInByIt, secondStep, firstStep]) {
        await expectInvalidToken(await app.request('/v1/me', { token: t.accessToken }));
        await expectProblem(await refresh(app, t.refreshToken), 401, 'invalid_refresh_token');
        expect((await sessionRow(t.sessionId)).revoke_reason).to.equal('passkey_removed');
      }
      for (const t of [byPhone, byPassword]) {
        await expectWorking(t, rita.user.id);
        expect((await refresh(app, t.refreshToken)).status).to.equal(200);
      }
    });

    it('the caller’s own session too, when the passkey being removed signed it in', async function () {
      const sam = await signedIn('pk_sam');
      const device = await tab();
      const passkey = await registerOn(device, sam.token);
      const mine = await expectTokenResponse(await passkeySignIn(device));
      expect((await app.request(`/v1/me/passkeys/${passkey.id}`, { method: 'DELETE', token: mine.accessToken })).status).to.equal(204);
      await expectInvalidToken(await app.request('/v1/me', { token: mine.accessToken }));
      // The password's session, which did the registering, goes on.
      expect((await app.request('/v1/me', { token: sam.token })).status).to.equal(200);
    });
  });

  describe('telemetry', function () {
    it('counts the ceremonies in authctl_passkey_ceremonies_total', async function () {
      const metrics = await (await app.request('/metrics')).text();
      for (const [ceremony, result] of [
        ['register', 'success'],
        ['login', 'success'],
        ['login', 'failure'],
        ['mfa', 'success'],
        ['mfa', 'failure'],
        ['reauthenticate', 'success'],
        ['reauthenticate', 'failure'],
      ]) {
        expect(metrics).to.match(new RegExp(`authctl_passkey_ceremonies_total\\{ceremony="${ceremony}",result="${result}",region="[^"]+"\\} [1-9]`));
      }
    });
  });
});
