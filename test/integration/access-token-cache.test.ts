import { expect } from 'chai';
import { buildContainer, type Container } from '../../src/container.js';
import { ManualClock } from '../../src/platform/clock.js';
import { testConfig } from '../helpers/app.js';
import { rejectsWith, loginTokens } from '../helpers/assert.js';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';
import { migrate, shutdown, startBackground } from '../../src/runtime.js';

// Access tokens verified once are remembered by their text; these are the checks a remembered
// token must still pass on every use.
describe('access-token verification cache', function () {
  let db: TestDatabase;
  let clock: ManualClock;
  let c: Container;

  before(async function () {
    db = await createTestDatabase('at_cache');
    clock = new ManualClock();
    c = buildContainer(testConfig(db.url, { keys: { activationDelay: 60 } }), { clock });
    await migrate(c);
    await startBackground(c);
    await c.users.register('cachedtoken', 'cached token passphrase');
  });

  after(async function () {
    await shutdown(c);
    await db?.drop();
  });

  const login = () => loginTokens(c.auth, 'cachedtoken', 'cached token passphrase', {});

  it('a remembered token still expires (30 s skew, no more)', async function () {
    const { accessToken } = await login();
    await c.auth.authenticate(accessToken);
    clock.advance(900 + 29);
    await c.auth.authenticate(accessToken);
    clock.advance(2);
    await rejectsWith(c.auth.authenticate(accessToken), 'invalid_token');
  });

  it('a remembered token is refused once its session is revoked', async function () {
    const tokens = await login();
    const principal = await c.auth.authenticate(tokens.accessToken);
    await c.auth.logout(principal);
    await rejectsWith(c.auth.authenticate(tokens.accessToken), 'invalid_token');
  });

  it('a remembered token is refused once its signing key is withdrawn from the JWKS', async function () {
    const { accessToken } = await login();
    await c.auth.authenticate(accessToken);
    const [kid] = c.keys.jwks().keys.map((k) => k.kid);
    // An emergency retirement (a leaked key): the key leaves the JWKS while its tokens still live.
    await c.db.writer('signing_keys').where({ kid }).update({ retires_at: clock.now() });
    await c.keys.load();
    expect(c.keys.jwks().keys.map((k) => k.kid)).to.not.include(kid);
    await rejectsWith(c.auth.authenticate(accessToken), 'invalid_token');
  });
});
