import { randomBytes } from 'node:crypto';
import { expect } from 'chai';
import { decodeJwt } from 'jose';
import type { IdentityView } from '../../src/core/oidc/identity-accounts.js';
import { ManualClock } from '../../src/platform/clock.js';
import { startTestApp, type TestApp } from '../helpers/app.js';
import { expectInvalidToken, expectProblem, login, refresh, uniquePassword, uniqueUsername, type Account, type TokenResponse } from '../helpers/http-assert.js';
import { deliverCallback, loginAtProvider, pkcePair, providerConfig, signInThroughProvider, startProvider, type TestProvider } from './support.js';

const CLIENT = { clientId: 'authctl-link', clientSecret: 'link-client-secret-0123456789' };
const APP = 'https://app.example.com/auth/done';
const SETTINGS = 'https://app.example.com/settings/linked';

/** A password user registered through the API, with the address given (unverified: nobody proved it yet). */
interface PasswordUser extends Pick<Account, 'username' | 'password'> {
  id: string;
  email: string;
}

/** Where a link dance ended: the app's `redirect_to` with the link code, and the verifier the app kept. */
interface LinkLeg {
  location: URL;
  code: string | null;
  error: string | null;
  verifier: string;
}

describe('signed-in linking against a real OpenID Provider', function () {
  this.timeout(60_000);
  const clock = new ManualClock();
  let op: TestProvider;
  let app: TestApp;

  before(async () => {
    op = await startProvider();
    app = await startTestApp('oidc_link_flow', {
      clock,
      // A database poll a minute apart: a revocation refused at once was published, not polled.
      overrides: (url) => ({ ...providerConfig(op, url, CLIENT, [APP, SETTINGS]), revocation: { pollIntervalMs: 60_000 } }),
    });
    op.registerClient({ ...CLIENT, redirectUris: [`${app.url}/v1/auth/oidc/google/callback`] });
  });

  after(async () => {
    await app?.close();
    await op?.close();
  });

  const address = (local: string) => `${local}-${randomBytes(4).toString('hex')}@example.test`;

  /** A provider account nobody has signed in with yet, at `email` (verified by the provider). */
  function providerAccount(email = address('g')): string {
    const sub = `g-${randomBytes(6).toString('hex')}`;
    op.accounts.set(sub, { sub, email, email_verified: true, name: sub });
    return sub;
  }

  async function passwordUser(prefix: string): Promise<PasswordUser> {
    const username = uniqueUsername(prefix);
    const password = uniquePassword();
    const email = address(prefix);
    const res = await app.request('/v1/auth/register', { method: 'POST', json: { username, email, password } });
    const text = await res.text();
    expect(res.status, text).to.equal(201);
    const { user } = JSON.parse(text) as { user: { id: string; emailVerified: boolean } };
    expect(user.emailVerified).to.equal(false);
    return { id: user.id, username, password, email };
  }

  const fresh = async (user: PasswordUser): Promise<TokenResponse> => login(app, user.username, user.password);

  function authorizeLink(token: string, query: Record<string, string>): Promise<Response> {
    return app.request(`/v1/me/identities/google/authorize?${new URLSearchParams({ code_challenge_method: 'S256', ...query }).toString()}`, { token });
  }

  /** The app's side of a link: fetch the provider URL with the Bearer, send the browser there, the provider's login as `sub`, the callback. */
  async function linkDance(token: string, sub: string, redirectTo = SETTINGS): Promise<LinkLeg> {
    const { verifier, challenge } = pkcePair();
    const res = await authorizeLink(token, { redirect_to: redirectTo, code_challenge: challenge });
    const text = await res.text();
    expect(res.status, text).to.equal(200);
    const { url } = JSON.parse(text) as { url: string };
    expect(new URL(url).origin).to.equal(op.url);
    const leg = await loginAtProvider(op, url, { sub });
    const landed = await deliverCallback(app.request, leg.callbackUrl);
    return { location: landed.location, code: landed.code, error: landed.error, verifier };
  }

  const finishLink = (token: string | undefined, code: string | null, codeVerifier: string) =>
    app.request('/v1/me/identities', { method: 'POST', ...(token ? { token } : {}), json: { code, codeVerifier } });

  /** A provider sign-in (the web flow) of `sub`, to its tokens. */
  async function providerSignIn(sub: string): Promise<TokenResponse & { user: { id: string } }> {
    const outcome = await signInThroughProvider(app.request, op, { redirectTo: APP, sub });
    expect(outcome.error, outcome.errorDescription ?? '').to.equal(null);
    const res = await app.request('/v1/auth/oidc/token', { method: 'POST', json: { code: outcome.code, codeVerifier: outcome.verifier } });
    const text = await res.text();
    expect(res.status, text).to.equal(200);
    return JSON.parse(text) as TokenResponse & { user: { id: string } };
  }

  async function identitiesOf(token: string): Promise<IdentityView[]> {
    const res = await app.request('/v1/me/identities', { token });
    const text = await res.text();
    expect(res.status, text).to.equal(200);
    return (JSON.parse(text) as { identities: IdentityView[] }).identities;
  }

  const liveHolder = async (sub: string) => (await app.container.repos.identities.findLive('google', sub))?.userId;
  const usersWithAddress = async (email: string) =>
    Number((await app.container.db.writer('users').whereRaw('lower(email) = lower(?)', [email]).count<[{ count: string }]>('* as count'))[0]!.count);

  /** A password user with the provider account `sub` (at the user's own address) linked through the whole signed-in flow. */
  async function linkedUser(prefix: string): Promise<{ user: PasswordUser; sub: string; identity: IdentityView }> {
    const user = await passwordUser(prefix);
    const sub = providerAccount(user.email);
    const { accessToken } = await fresh(user);
    const leg = await linkDance(accessToken, sub);
    expect(leg.error).to.equal(null);
    const res = await finishLink(accessToken, leg.code, leg.verifier);
    const text = await res.text();
    expect(res.status, text).to.equal(201);
    return { user, sub, identity: JSON.parse(text) as IdentityView };
  }

  it('links a provider account to a signed-in password user, and a provider sign-in of it then lands in that same user', async () => {
    const user = await passwordUser('linker');
    const sub = providerAccount(user.email);
    const { accessToken } = await fresh(user);

    const leg = await linkDance(accessToken, sub);
    expect(leg.error).to.equal(null);
    expect(leg.location.origin + leg.location.pathname).to.equal(SETTINGS);
    expect(leg.code).to.match(/^oc_/);
    expect(await liveHolder(sub), 'nothing is linked before the app finishes the link').to.equal(undefined);

    const res = await finishLink(accessToken, leg.code, leg.verifier);
    const text = await res.text();
    expect(res.status, text).to.equal(201);
    const identity = JSON.parse(text) as IdentityView;
    const displayName = app.container.oidc.providers()[0]!.displayName;
    expect(identity).to.include({ provider: 'google', displayName, email: user.email, emailVerified: true });
    expect(text).to.not.include(sub);
    expect(await liveHolder(sub)).to.equal(user.id);

    const signedIn = await providerSignIn(sub);
    expect(signedIn.user.id).to.equal(user.id);
    expect(decodeJwt(signedIn.accessToken)).to.include({ sub: user.id, idp: 'google' });
    expect(await usersWithAddress(user.email), 'no second user for the address').to.equal(1);
    expect((await identitiesOf(signedIn.accessToken)).map((i) => i.id)).to.deep.equal([identity.id]);
    expect((await identitiesOf(accessToken)).map((i) => i.id)).to.deep.equal([identity.id]);
  });

  it('refuses the link code to another signed-in user, with a wrong verifier and a second time; only its owner links, once', async () => {
    const owner = await passwordUser('owner');
    const thief = await passwordUser('thief');
    const sub = providerAccount();
    const ownerToken = (await fresh(owner)).accessToken;
    const thiefToken = (await fresh(thief)).accessToken;
    const leg = await linkDance(ownerToken, sub);

    // The code and even the verifier in another user's hands link nothing (link CSRF, a leaked redirect).
    await expectProblem(await finishLink(thiefToken, leg.code, leg.verifier), 400, 'invalid_oidc_code');
    expect(await identitiesOf(thiefToken)).to.deep.equal([]);
    await expectProblem(await finishLink(ownerToken, leg.code, pkcePair().verifier), 400, 'invalid_oidc_code');
    await expectProblem(await finishLink(undefined, leg.code, leg.verifier), 401, 'invalid_token');
    expect(await liveHolder(sub)).to.equal(undefined);

    expect((await finishLink(ownerToken, leg.code, leg.verifier)).status, 'the refusals did not spend the code').to.equal(201);
    expect(await liveHolder(sub)).to.equal(owner.id);
    await expectProblem(await finishLink(ownerToken, leg.code, leg.verifier), 400, 'invalid_oidc_code');
    await expectProblem(await finishLink(thiefToken, leg.code, leg.verifier), 400, 'invalid_oidc_code');
    expect(await identitiesOf(thiefToken)).to.deep.equal([]);
    expect(await identitiesOf(ownerToken)).to.have.length(1);
  });

  it('keeps login codes and link codes apart: neither endpoint takes the other’s', async () => {
    const user = await passwordUser('apart');
    const { accessToken } = await fresh(user);

    const loginSub = providerAccount();
    const login = await signInThroughProvider(app.request, op, { redirectTo: APP, sub: loginSub });
    expect(login.code).to.match(/^oc_/);
    await expectProblem(await finishLink(accessToken, login.code, login.verifier), 400, 'invalid_oidc_code');
    expect(await identitiesOf(accessToken)).to.deep.equal([]);
    expect(await liveHolder(loginSub)).to.not.equal(user.id);

    const linkSub = providerAccount();
    const leg = await linkDance(accessToken, linkSub);
    const sessionsBefore = await app.container.db.writer('sessions').where({ user_id: user.id }).count<[{ count: string }]>('* as count');
    await expectProblem(
      await app.request('/v1/auth/oidc/token', { method: 'POST', json: { code: leg.code, codeVerifier: leg.verifier } }),
      400,
      'invalid_oidc_code',
    );
    const sessionsAfter = await app.container.db.writer('sessions').where({ user_id: user.id }).count<[{ count: string }]>('* as count');
    expect(sessionsAfter[0]!.count, 'no session was opened with a link code').to.equal(sessionsBefore[0]!.count);
    expect(await liveHolder(linkSub)).to.equal(undefined);
    expect((await finishLink(accessToken, leg.code, leg.verifier)).status, 'the link code still links where it belongs').to.equal(201);
  });

  it('answers 409 identity_taken for a provider account another user has, and the account stays theirs', async () => {
    const sub = providerAccount();
    const holder = await providerSignIn(sub);
    const user = await passwordUser('taker');
    const { accessToken } = await fresh(user);
    const leg = await linkDance(accessToken, sub);
    expect(leg.error, 'the dance itself ends with a code').to.equal(null);
    await expectProblem(await finishLink(accessToken, leg.code, leg.verifier), 409, 'identity_taken');
    expect(await liveHolder(sub)).to.equal(holder.user.id);
    expect(await identitiesOf(accessToken)).to.deep.equal([]);
    expect((await providerSignIn(sub)).user.id).to.equal(holder.user.id);
  });

  it('starts a link only with a recent authentication (403) and an allowed redirect_to (400, and no provider URL)', async () => {
    const user = await passwordUser('starter');
    const { accessToken } = await fresh(user);
    const { challenge } = pkcePair();
    for (const redirectTo of [
      'https://evil.example/cb',
      'https://app.example.com.evil.example/settings/linked',
      'https://app.example.com/settings/linked/../../x',
    ]) {
      const res = await authorizeLink(accessToken, { redirect_to: redirectTo, code_challenge: challenge });
      const problem = await expectProblem(res, 400, 'redirect_not_allowed');
      expect(JSON.stringify(problem)).to.not.include(op.url);
    }
    clock.advance(app.container.config.identity.reauthWindow + 1);
    await expectProblem(await authorizeLink(accessToken, { redirect_to: SETTINGS, code_challenge: challenge }), 403, 'reauthentication_required');
    const again = await fresh(user);
    expect((await authorizeLink(again.accessToken, { redirect_to: SETTINGS, code_challenge: challenge })).status).to.equal(200);
  });

  it('unlinking keeps the password and ends the sessions signed in through the provider; the provider account is then refused as not linked (its address is the account’s, linking off) until linked again', async () => {
    const { user, sub, identity } = await linkedUser('unlinker');
    const throughProvider = await providerSignIn(sub);
    expect(throughProvider.user.id).to.equal(user.id);
    const withPassword = await fresh(user);

    const del = await app.request(`/v1/me/identities/${identity.id}`, { method: 'DELETE', token: withPassword.accessToken });
    expect(del.status, await del.text()).to.equal(204);

    // The session the provider account opened ends at once (published, not left to the poll); the password's stays.
    await expectInvalidToken(await app.request('/v1/me', { token: throughProvider.accessToken }));
    await expectProblem(await refresh(app, throughProvider.refreshToken), 401, 'invalid_refresh_token');
    const row = await app.container.db.writer('sessions').where({ id: throughProvider.sessionId }).first<{ revoke_reason: string | null }>();
    expect(row?.revoke_reason).to.equal('identity_unlinked');
    expect((await app.request('/v1/me', { token: withPassword.accessToken })).status).to.equal(200);
    expect((await refresh(app, withPassword.refreshToken)).status).to.equal(200);
    expect((await fresh(user)).user.id, 'the password still signs in').to.equal(user.id);
    expect(await identitiesOf(withPassword.accessToken)).to.deep.equal([]);

    // The provider says the address is verified, but the account's own address is not, and the
    // provider is configured linking "off": no automatic link, no second user.
    const outcome = await signInThroughProvider(app.request, op, { redirectTo: APP, sub });
    expect(outcome.code).to.equal(null);
    expect(outcome.error).to.equal('identity_not_linked');
    expect(await liveHolder(sub)).to.equal(undefined);
    expect(await usersWithAddress(user.email)).to.equal(1);

    // Signed in, the owner links it again: a new identity.
    const leg = await linkDance((await fresh(user)).accessToken, sub);
    const relinked = await finishLink(withPassword.accessToken, leg.code, leg.verifier);
    const text = await relinked.text();
    expect(relinked.status, text).to.equal(201);
    expect((JSON.parse(text) as IdentityView).id).to.not.equal(identity.id);
    expect((await providerSignIn(sub)).user.id).to.equal(user.id);
  });

  it('unlinking one of two identities of a provider keeps the sessions signed in through that provider', async () => {
    const { user, sub } = await linkedUser('twice');
    const second = providerAccount();
    const token = (await fresh(user)).accessToken;
    const leg = await linkDance(token, second);
    expect((await finishLink(token, leg.code, leg.verifier)).status).to.equal(201);
    const throughProvider = await providerSignIn(sub);
    const [first] = await identitiesOf(token);

    expect((await app.request(`/v1/me/identities/${first!.id}`, { method: 'DELETE', token })).status).to.equal(204);
    // A session records the provider, not which of its accounts: one of the user's is still linked.
    expect((await app.request('/v1/me', { token: throughProvider.accessToken })).status).to.equal(200);
    expect((await identitiesOf(token)).map((i) => i.email)).to.deep.equal([op.accounts.get(second)!.email]);
  });
});
