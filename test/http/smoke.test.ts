import { expect } from 'chai';
import { startTestApp, type TestApp } from '../helpers/app.js';

describe('smoke', function () {
  let app: TestApp;
  before(async function () {
    app = await startTestApp('smoke');
  });
  after(async function () {
    await app?.close();
  });

  it('registers, logs in, calls /v1/me, refreshes and logs out', async function () {
    const reg = await app.request('/v1/auth/register', { method: 'POST', json: { username: 'Alice', password: 'correct horse battery' } });
    expect(reg.status, await reg.clone().text()).to.equal(201);
    const login = await app.request('/v1/auth/login', { method: 'POST', json: { username: 'alice', password: 'correct horse battery' } });
    const tokens = (await login.json()) as { accessToken: string; refreshToken: string };
    expect(login.status).to.equal(200);
    const me = await app.request('/v1/me', { token: tokens.accessToken });
    expect(me.status).to.equal(200);
    const refreshed = await app.request('/v1/auth/refresh', { method: 'POST', json: { refreshToken: tokens.refreshToken } });
    expect(refreshed.status).to.equal(200);
    const out = await app.request('/v1/auth/logout', { method: 'POST', token: tokens.accessToken });
    expect(out.status).to.equal(204);
    const after = await app.request('/v1/me', { token: tokens.accessToken });
    expect(after.status).to.equal(401);
  });
});
