import { expect } from 'chai';
import { startTestApp, type TestApp } from '../helpers/app.js';
import { createAccount, expectInvalidRequest, expectInvalidToken, expectProblem, login, refresh, uniquePassword } from '../helpers/http-assert.js';
import { LogCapture } from '../helpers/log-capture.js';

/** `DELETE /v1/me`: self-service deletion, confirmed by the current password, under the login limits. */
describe('DELETE /v1/me', function () {
  let app: TestApp;
  const capture = new LogCapture();

  before(async function () {
    // Two free failures, then an exponential back-off.
    app = await startTestApp('http_delete_me', { overrides: { rateLimit: { freeFailures: 2, maxBackoff: 60 } }, log: capture.logger() });
  });
  after(async function () {
    await app?.close();
  });

  const remove = (token: string, json?: unknown) => app.request('/v1/me', { method: 'DELETE', token, ...(json === undefined ? {} : { json }) });

  it('needs a Bearer token and the current password; a wrong one is 401, then 429 with Retry-After, and nothing is deleted', async function () {
    const account = await createAccount(app, 'delme');
    const { accessToken } = await login(app, account.username, account.password);
    await expectInvalidToken(await app.request('/v1/me', { method: 'DELETE', json: { currentPassword: account.password } }));
    await expectInvalidRequest(await remove(accessToken), '');
    await expectInvalidRequest(await remove(accessToken, {}), 'currentPassword');
    // Past the free failures the back-off holds off the next attempt: within a few, one is 429.
    let throttled: Response | undefined;
    for (let attempt = 0; attempt < 5 && !throttled; attempt++) {
      const res = await remove(accessToken, { currentPassword: uniquePassword() });
      if (res.status === 429) throttled = res;
      else await expectProblem(res, 401, 'invalid_credentials');
    }
    expect(throttled, 'a 429 within 5 wrong passwords').to.not.equal(undefined);
    expect(Number(throttled!.headers.get('retry-after'))).to.be.at.least(1);
    await expectProblem(throttled!, 429, 'rate_limited');
    expect((await app.request('/v1/me', { token: accessToken })).status).to.equal(200);
  });

  it('204 with the right password: every session of the user is revoked and the user is gone, logged as user.deleted', async function () {
    const account = await createAccount(app, 'delme');
    const first = await login(app, account.username, account.password);
    const other = await login(app, account.username, account.password);
    const res = await remove(first.accessToken, { currentPassword: account.password });
    expect(res.status, await res.text()).to.equal(204);
    await expectInvalidToken(await app.request('/v1/me', { token: other.accessToken }));
    await expectProblem(await refresh(app, other.refreshToken), 401, 'invalid_refresh_token');
    await expectProblem(
      await app.request('/v1/auth/login', { method: 'POST', json: { username: account.username, password: account.password } }),
      401,
      'invalid_credentials',
    );
    await capture.settle();
    expect(capture.events('user.deleted').map((e) => e.userId)).to.include(account.user.id);
  });
});
