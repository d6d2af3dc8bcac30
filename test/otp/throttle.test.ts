import { expect } from 'chai';
import { expectProblem, expectTokenResponse, uniquePassword } from '../helpers/http-assert.js';
import { waitUntil } from '../jobs/setup.js';
import { poster, startEmailRegion, tag, type EmailRegion } from '../email/support.js';
import { allowAnotherSend, mailedCode, verifyCode, wrongCode } from './support.js';

const REDIS_URL = process.env.AUTHCTL_TEST_REDIS_URL ?? 'redis://127.0.0.1:6379';

describe('brute force of e-mailed codes: the account login limits', function () {
  this.timeout(60_000);
  let region: EmailRegion;

  before(async function () {
    // Three free failures, then the back-off (1 s, 2 s, …): what an attacker guessing codes of
    // fresh messages, three tries a message, runs into.
    region = await startEmailRegion('otp_throttle', {
      cache: { redisUrl: REDIS_URL, keyPrefix: `otp-throttle-${tag()}` },
      rateLimit: { freeFailures: 3, maxBackoff: 60 },
    });
  });
  after(async function () {
    await region?.close();
  });

  const post = (path: string, json: unknown) => poster(region)(path, json);

  it('guesses across fresh codes reach 429 + Retry-After, even with the right code, which stays unspent; then it signs in', async function () {
    const email = `bf${tag()}@example.com`;
    const password = uniquePassword();
    expect((await post('/v1/auth/register', { username: `bf${tag()}`, email, password })).status).to.equal(201);

    // The first message: its three tries are all wrong (and it is dead).
    const first = await mailedCode(region, email);
    for (let i = 1; i <= 3; i++) await expectProblem(await verifyCode(region, email, wrongCode(first, i)), 400, 'invalid_code');
    // A fresh message: the guess past the free failures opens a back-off …
    await allowAnotherSend(region, email);
    const second = await mailedCode(region, email);
    await expectProblem(await verifyCode(region, email, wrongCode(second)), 400, 'invalid_code');
    // … within which even the right code is refused, without being checked.
    const limited = await expectProblem(await verifyCode(region, email, second), 429, 'rate_limited');
    expect(limited.detail).to.match(/retry in \d+ s/);
    const res = await verifyCode(region, email, second);
    expect(res.status).to.equal(429);
    expect(Number(res.headers.get('retry-after'))).to.be.at.least(1);
    // One counter for the account, whatever the credential: the password is held off as well.
    await expectProblem(await post('/v1/auth/login', { email, password }), 429, 'rate_limited');
    const [row] = await region.app.container.db
      .writer<{ attempts: number }>('email_challenges')
      .whereRaw('lower(email) = lower(?)', [email])
      .whereNull('ended_at')
      .select('attempts');
    expect(row, 'the second code is still live, one wrong try on it').to.deep.equal({ attempts: 1 });

    // Once the back-off has passed, the right code signs in (and resets the account's counter).
    let status = 0;
    await waitUntil(async () => {
      const r = await verifyCode(region, email, second);
      status = r.status;
      if (status === 200) {
        await expectTokenResponse(r);
        return true;
      }
      expect(status, 'only 429 while the back-off holds').to.equal(429);
      return false;
    }, 'the back-off to pass');
    await expectTokenResponse(await post('/v1/auth/login', { email, password }));
  });
});
