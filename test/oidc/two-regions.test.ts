import { expect } from 'chai';
import { decodeJwt } from 'jose';
import type { TokenResponse } from '../helpers/http-assert.js';
import { eventually, startRegions, type RegionNode } from '../regions/support.js';
import { signInThroughProvider, startProvider, type TestProvider } from './support.js';

const CLIENT = { clientId: 'authctl-regions', clientSecret: 'regions-client-secret-0123456789' };
const APP = 'https://app.example.test/auth/callback';

/**
 * Provider sign-in across two regions that share the server secret: the flow starts in one, the
 * provider's callback lands in the other (a load balancer or DNS may send it anywhere), and the
 * tokens work in both.
 */
describe('provider sign-in across two regions', function () {
  this.timeout(90_000);
  let op: TestProvider;
  let eu: RegionNode;
  let us: RegionNode;

  before(async function () {
    op = await startProvider({ name: 'Google', accounts: [{ sub: 'g-twin', email: 'twin@example.test', email_verified: true, name: 'Twin' }] });
    const nodes = await startRegions(['eu', 'us'], () => ({ identity: { ...op.config(CLIENT, [APP]), email: 'off' } }));
    [eu, us] = [nodes[0]!, nodes[1]!];
    // Each region registers its own callback at the provider.
    op.registerClient({ ...CLIENT, redirectUris: [eu, us].map((node) => `${node.url}/v1/auth/oidc/google/callback`) });
  });

  after(async function () {
    await eu?.close();
    await us?.close();
    await op?.close();
  });

  /** The status of GET /v1/me at `node` with `token`. */
  const meStatus = async (node: RegionNode, token: string) => (await node.request('/v1/me', { token })).status;

  it('authorize in eu, the callback delivered to us, the code redeemed in us: the tokens work in both regions, and refresh in eu', async function () {
    const signIn = await signInThroughProvider(eu.request, op, { redirectTo: APP, sub: 'g-twin', finish: us.request });
    expect(signIn.error, signIn.errorDescription ?? '').to.equal(null);
    expect(`${signIn.location.origin}${signIn.location.pathname}`).to.equal(APP);
    const res = await us.request('/v1/auth/oidc/token', { method: 'POST', json: { code: signIn.code, codeVerifier: signIn.verifier } });
    expect(res.status, await res.clone().text()).to.equal(200);
    const tokens = (await res.json()) as TokenResponse;
    const claims = decodeJwt(tokens.accessToken);
    expect(claims).to.include({ idp: 'google', region: 'us' });
    expect(claims.amr).to.deep.equal(['fed']);

    expect(await meStatus(us, tokens.accessToken)).to.equal(200);
    // eu knows the user and us's signing key once they have replicated.
    await eventually('the access token to work in eu', async () => ((await meStatus(eu, tokens.accessToken)) === 200 ? true : undefined));
    const refreshed = await eventually('a refresh in eu', async () => {
      const r = await eu.request('/v1/auth/refresh', { method: 'POST', json: { refreshToken: tokens.refreshToken } });
      return r.status === 200 ? ((await r.json()) as TokenResponse) : undefined;
    });
    expect(decodeJwt(refreshed.accessToken)).to.include({ idp: 'google', sub: claims.sub });
    expect(await meStatus(eu, refreshed.accessToken)).to.equal(200);
    expect(await meStatus(us, refreshed.accessToken)).to.equal(200);

    // One user in both regions, with the one identity.
    const users = await eu.query<{ id: string }>('select id from users where id = ?', [claims.sub]);
    expect(users).to.have.length(1);
  });

  it('a state spent in us is refused in eu once replicated, and the code redeemed in us is refused in eu', async function () {
    const signIn = await signInThroughProvider(eu.request, op, { redirectTo: APP, sub: 'g-twin', finish: us.request });
    expect(signIn.code).to.be.a('string');
    const redeemed = await us.request('/v1/auth/oidc/token', { method: 'POST', json: { code: signIn.code, codeVerifier: signIn.verifier } });
    expect(redeemed.status).to.equal(200);

    // The same callback (state and provider code) replayed at the other region.
    const replayed = await eventually('eu to refuse the spent state', async () => {
      const res = await eu.request(signIn.callbackUrl.pathname + signIn.callbackUrl.search, { redirect: 'manual' });
      if (res.status !== 400) return undefined;
      return ((await res.json()) as { code: string }).code;
    });
    expect(replayed).to.equal('invalid_oidc_state');
    const code = await eventually('eu to refuse the spent code', async () => {
      const res = await eu.request('/v1/auth/oidc/token', { method: 'POST', json: { code: signIn.code, codeVerifier: signIn.verifier } });
      return res.status === 400 ? ((await res.json()) as { code: string }).code : undefined;
    });
    expect(code).to.equal('invalid_oidc_code');
    // And in us, where it was spent, at once.
    const again = await us.request(signIn.callbackUrl.pathname + signIn.callbackUrl.search, { redirect: 'manual' });
    expect(again.status).to.equal(400);
    expect(((await again.json()) as { code: string }).code).to.equal('invalid_oidc_state');
  });
});
