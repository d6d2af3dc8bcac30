import { randomBytes } from 'node:crypto';
import { expect } from 'chai';
import type { IdentityView } from '../../src/core/oidc/identity-accounts.js';
import type { ProviderIdentity } from '../../src/model/identity.js';
import type { UserRecord } from '../../src/model/user.js';
import { ManualClock } from '../../src/platform/clock.js';
import { startTestApp, type TestApp } from '../helpers/app.js';
import { createAccount, expectProblem, login } from '../helpers/http-assert.js';

const google = (overrides: Partial<ProviderIdentity> = {}): ProviderIdentity => ({
  provider: 'google',
  subject: `sub-${randomBytes(8).toString('hex')}`,
  email: null,
  emailVerified: false,
  name: null,
  preferredUsername: `me${randomBytes(4).toString('hex')}`,
  ...overrides,
});

describe('GET/DELETE /v1/me/identities: the caller’s provider identities', function () {
  this.timeout(60_000);
  const clock = new ManualClock();
  let app: TestApp;

  before(async () => {
    app = await startTestApp('oidc_me_identities', {
      clock,
      overrides: {
        identity: {
          providers: [
            { id: 'google', clientId: 'test-client', displayName: 'Google' },
            { id: 'corp', issuer: 'http://127.0.0.1:1/corp', clientId: 'corp-client', displayName: 'Corp SSO' },
          ],
          redirectUrls: ['http://127.0.0.1/app/*'],
        },
      },
    });
  });
  after(async () => app?.close());

  /** An access token for a user, signed in now (as a provider sign-in ends: a session and its tokens). */
  async function tokenOf(user: UserRecord): Promise<string> {
    const result = await app.container.auth.signIn(user, 'pwd', {});
    if (!('accessToken' in result)) expect.fail('a second factor was asked for');
    return result.accessToken;
  }
  const list = async (token: string): Promise<IdentityView[]> => {
    const res = await app.request('/v1/me/identities', { token });
    const text = await res.text();
    expect(res.status, text).to.equal(200);
    return (JSON.parse(text) as { identities: IdentityView[] }).identities;
  };

  it('lists the caller’s identities (the provider’s name, never the subject), only the caller’s', async () => {
    const identity = google({ email: `ada-${randomBytes(3).toString('hex')}@example.test`, emailVerified: true });
    const user = await app.container.identities.signInWith(identity, 'off');
    const corp = await app.container.identities.link(user.id, { ...google(), provider: 'corp' });
    const token = await tokenOf(user);
    const identities = await list(token);
    expect(identities.map((i) => [i.provider, i.displayName])).to.deep.equal([
      ['google', 'Google'],
      ['corp', 'Corp SSO'],
    ]);
    expect(identities[0]).to.include({ email: identity.email, emailVerified: true });
    expect(identities[1]!.id).to.equal(corp.id);
    expect(JSON.stringify(identities)).to.not.include(identity.subject);

    const other = await createAccount(app, 'noids');
    expect(await list((await login(app, other.username, other.password)).accessToken)).to.deep.equal([]);
    await expectProblem(await app.request('/v1/me/identities'), 401, 'invalid_token');
  });

  it('DELETE needs a recent authentication, refuses the last way to sign in (409), and 404s someone else’s or an unknown id', async () => {
    const user = await app.container.identities.signInWith(google(), 'off');
    const [only] = await app.container.identities.list(user.id);
    const token = await tokenOf(user);
    const del = (id: string, t = token) => app.request(`/v1/me/identities/${id}`, { method: 'DELETE', token: t });

    const last = await expectProblem(await del(only!.id), 409, 'last_sign_in_method');
    expect(last.detail).to.match(/last way to sign in/);

    const other = await createAccount(app, 'thief');
    const otherToken = (await login(app, other.username, other.password)).accessToken;
    await expectProblem(await del(only!.id, otherToken), 404, 'not_found');
    await expectProblem(await del('not-a-uuid'), 404, 'not_found');
    await expectProblem(await del('google'), 404, 'not_found');
    expect((await app.container.identities.list(user.id)).map((i) => i.id)).to.deep.equal([only!.id]);

    const second = await app.container.identities.link(user.id, { ...google(), provider: 'corp' });
    // An old authentication: step-up first.
    clock.advance(app.container.config.identity.reauthWindow + 1);
    await expectProblem(await del(second.id), 403, 'reauthentication_required');
    expect(await app.container.identities.list(user.id)).to.have.length(2);
    const fresh = await tokenOf(user);
    expect((await del(second.id, fresh)).status).to.equal(204);
    expect((await list(fresh)).map((i) => i.id)).to.deep.equal([only!.id]);
    await expectProblem(await del(second.id, fresh), 404, 'not_found');
  });

  it('GET …/authorize needs a recent authentication, a configured provider and a valid PKCE challenge', async () => {
    const account = await createAccount(app, 'linker');
    const token = (await login(app, account.username, account.password)).accessToken;
    const challenge = randomBytes(32).toString('base64url');
    const query = `redirect_to=${encodeURIComponent('http://127.0.0.1/app/linked')}&code_challenge=${challenge}&code_challenge_method=S256`;
    await expectProblem(await app.request(`/v1/me/identities/github/authorize?${query}`, { token }), 404, 'not_found');
    await expectProblem(
      await app.request(`/v1/me/identities/google/authorize?redirect_to=x&code_challenge=short&code_challenge_method=S256`, { token }),
      400,
      'invalid_request',
    );
    await expectProblem(await app.request(`/v1/me/identities/google/authorize?${query.replace('S256', 'plain')}`, { token }), 400, 'invalid_request');
    await expectProblem(await app.request(`/v1/me/identities/google/authorize?${query}`), 401, 'invalid_token');
    clock.advance(app.container.config.identity.reauthWindow + 1);
    await expectProblem(await app.request(`/v1/me/identities/google/authorize?${query}`, { token }), 403, 'reauthentication_required');
  });

  it('POST /v1/me/identities validates its body before redeeming anything', async () => {
    const account = await createAccount(app, 'poster');
    const token = (await login(app, account.username, account.password)).accessToken;
    await expectProblem(await app.request('/v1/me/identities', { method: 'POST', token, json: { code: 'x' } }), 400, 'invalid_request');
    await expectProblem(await app.request('/v1/me/identities', { method: 'POST', json: { code: 'x', codeVerifier: 'y'.repeat(43) } }), 401, 'invalid_token');
  });
});
