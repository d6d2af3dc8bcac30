import { expect } from 'chai';
import { systemClock } from '../../src/platform/clock.js';
import { createAccount, expectProblem, expectTokenResponse, login } from '../helpers/http-assert.js';
import { eventually, startRegions, type RegionNode } from '../regions/support.js';
import { authClaims, enrolTotp, expectChallenge, totpAt } from './two-step-support.js';

describe('two-step login across regions', function () {
  this.timeout(90_000);
  let a: RegionNode;
  let b: RegionNode;

  before(async function () {
    // `ma` sends users homed elsewhere home (regions.loginPolicy: home); `mb` lets them in.
    [a, b] = (await startRegions(['ma', 'mb'], (name) => (name === 'ma' ? { regions: { loginPolicy: 'home' } } : {}))) as [RegionNode, RegionNode];
  });
  after(async function () {
    await Promise.all([a?.close(), b?.close()]);
  });

  const post = (node: RegionNode, path: string, json: unknown) => node.request(path, { method: 'POST', json });
  // A code of the step after the enrolment's (±1 step is accepted; the enrolment spent its own).
  const nextCode = (secret: string) => totpAt(secret, new Date(systemClock.now().getTime() + 30_000));

  it('a user enrolled in one region must pass the second factor in another; the mfaToken used there is refused back home once the use replicates', async function () {
    const user = await createAccount(a, 'travel');
    await eventually('the user at mb', async () => ((await b.query('select 1 from users where id = ?', [user.user.id])).length > 0 ? true : undefined));
    const { secret } = await enrolTotp(a, (await login(a, user.username, user.password)).accessToken, systemClock);
    await eventually('the factor at mb', async () => ((await b.container.mfa.activeTypes(user.user.id)).length > 0 ? true : undefined));

    const challenge = await expectChallenge(await post(b, '/v1/auth/login', { username: user.username, password: user.password }));
    expect(challenge.factors).to.include('totp');
    const tokens = await expectTokenResponse(await post(b, '/v1/auth/mfa/verify', { mfaToken: challenge.mfaToken, code: nextCode(secret) }));
    expect(authClaims(tokens)).to.deep.include({ amr: ['pwd', 'otp', 'mfa'], acr: 'aal2' });

    // The use replicates: the same mfaToken is refused in the region it was not used in.
    await eventually('the use of the mfaToken at ma', async () => ((await a.query('select 1 from mfa_token_uses')).length > 0 ? true : undefined));
    await expectProblem(await post(a, '/v1/auth/mfa/verify', { mfaToken: challenge.mfaToken, recoveryCode: 'x' }), 401, 'invalid_mfa_token');
  });

  it('the region login policy holds at the second step too: an mfaToken of a user homed elsewhere is 421 wrong_region where the policy is home', async function () {
    const user = await createAccount(b, 'homed-b');
    await eventually('the user at ma', async () => ((await a.query('select 1 from users where id = ?', [user.user.id])).length > 0 ? true : undefined));
    await enrolTotp(b, (await login(b, user.username, user.password)).accessToken, systemClock);
    await eventually('the factor at ma', async () => ((await a.container.mfa.activeTypes(user.user.id)).length > 0 ? true : undefined));
    const { mfaToken } = await expectChallenge(await post(b, '/v1/auth/login', { username: user.username, password: user.password }));
    const res = await post(a, '/v1/auth/mfa/verify', { mfaToken, code: '123456' });
    expect(res.status).to.equal(421);
    expect(res.headers.get('content-type')).to.match(/^application\/problem\+json/);
    // wrong_region carries where to go (members beyond the six of every problem, and Location).
    const problem = (await res.json()) as Record<string, unknown>;
    expect(problem).to.include({ status: 421, code: 'wrong_region', region: 'mb', location: `${b.url}/v1/auth/login` });
    expect(res.headers.get('location')).to.equal(`${b.url}/v1/auth/login`);
  });
});
