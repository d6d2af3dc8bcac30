import { expect } from 'chai';
import { buildContainer } from '../../src/container.js';
import { ServerSecrets } from '../../src/core/keys/secrets.js';
import { ManualClock } from '../../src/platform/clock.js';
import type { AppError } from '../../src/platform/errors.js';
import { shutdown } from '../../src/runtime.js';
import { startTestApp, TEST_SECRET, testConfig, type TestApp } from '../helpers/app.js';
import { createAccount, expectProblem, login, type Account } from '../helpers/http-assert.js';
import { assertNoSecrets, LogCapture } from '../helpers/log-capture.js';
import { decodeQr, enrol, oathtool, startEnrolment } from './support.js';

const RECOVERY_CODE = /^[0-9a-hjkmnp-tv-z]{4}-[0-9a-hjkmnp-tv-z]{4}-[0-9a-hjkmnp-tv-z]{4}$/;

async function rejection(promise: Promise<unknown>): Promise<AppError> {
  try {
    await promise;
  } catch (err) {
    return err as AppError;
  }
  expect.fail('expected a rejection');
}

describe('TOTP factors and recovery codes (/v1/me/mfa)', function () {
  this.timeout(60_000);
  // Ten seconds into a 30-second step: a step boundary never falls inside a test by accident.
  const clock = new ManualClock(Date.parse('2030-01-15T12:00:10Z'));
  const logs = new LogCapture();
  let app: TestApp;
  const secretsSeen: Array<[string, string]> = [];

  before(async () => {
    app = await startTestApp('mfa_factors', { clock, logSink: logs, overrides: { log: { level: 'info' }, mail: { productName: 'Example Co' } } });
  });
  after(async () => {
    await app?.close();
  });

  /** A fresh account, logged in now (its access token's auth_time is the clock's now). */
  async function signedIn(prefix: string): Promise<Account & { token: string; userId: string }> {
    const account = await createAccount(app, prefix);
    const tokens = await login(app, account.username, account.password);
    return { ...account, token: tokens.accessToken, userId: account.user.id };
  }

  function remember(enrolment: { secret: string; uri: string; recoveryCodes?: string[] }): void {
    secretsSeen.push(['TOTP secret', enrolment.secret], ['otpauth URI', enrolment.uri]);
    for (const code of enrolment.recoveryCodes ?? []) secretsSeen.push(['recovery code', code], ['recovery code (bare)', code.replace(/-/g, '')]);
  }

  it('enrols: a 160-bit secret, an otpauth:// URI with issuer and label, a QR code holding that URI; a first code from oathtool confirms it and ten distinct recovery codes come back', async () => {
    const alice = await signedIn('alice');
    const started = await startEnrolment(app, alice.token);
    expect(started.secret).to.match(/^[A-Z2-7]{32}$/);
    const uri = new URL(started.uri);
    expect(uri.protocol).to.equal('otpauth:');
    expect(uri.host).to.equal('totp');
    expect(decodeURIComponent(uri.pathname)).to.equal(`/Example Co:${alice.username}`);
    expect(Object.fromEntries(uri.searchParams)).to.deep.equal({ issuer: 'Example Co', secret: started.secret, algorithm: 'SHA1', digits: '6', period: '30' });
    expect(decodeQr(started.qrCode)).to.equal(started.uri);

    // Pending: listed, but not asked at login.
    const pending = (await (await app.request('/v1/me/mfa', { token: alice.token })).json()) as { factors: Array<{ status: string }> };
    expect(pending.factors.map((f) => f.status)).to.deep.equal(['pending']);
    expect(await app.container.mfa.activeTypes(alice.userId)).to.deep.equal([]);

    const res = await app.request('/v1/me/mfa/totp/confirm', {
      method: 'POST',
      token: alice.token,
      json: { factorId: started.factorId, code: oathtool(started.secret, clock.now()) },
    });
    expect(res.status).to.equal(200);
    const { recoveryCodes } = (await res.json()) as { recoveryCodes: string[] };
    remember({ ...started, recoveryCodes });
    expect(recoveryCodes).to.have.length(10);
    expect(new Set(recoveryCodes).size).to.equal(10);
    for (const code of recoveryCodes) expect(code).to.match(RECOVERY_CODE);

    const listRes = await app.request('/v1/me/mfa', { token: alice.token });
    const listText = await listRes.text();
    expect(listText).not.to.contain(started.secret);
    const list = JSON.parse(listText) as { factors: Array<Record<string, unknown>>; recoveryCodesLeft: number };
    expect(list.recoveryCodesLeft).to.equal(10);
    expect(list.factors).to.have.length(1);
    expect(list.factors[0]).to.include({ id: started.factorId, type: 'totp', status: 'active', confirmedAt: clock.now().toISOString() });
    expect(await app.container.mfa.activeTypes(alice.userId)).to.deep.equal(['totp', 'recovery_code']);

    // One active TOTP factor per user.
    await expectProblem(await app.request('/v1/me/mfa/totp', { method: 'POST', token: alice.token }), 409, 'conflict');
  });

  it('accepts a code once: the step of enrolment is spent, a replay of a step is refused, a code of two steps ago is refused, the previous step is accepted once', async () => {
    const bob = await signedIn('bob');
    const enrolled = await enrol(app, bob.token, clock.now());
    remember(enrolled);
    const verify = (code: string) => app.container.mfa.verify(bob.userId, { code });

    // The code that confirmed the factor cannot be used again.
    expect((await rejection(verify(oathtool(enrolled.secret, clock.now())))).code).to.equal('invalid_code');

    clock.advance(120); // four steps on
    expect((await rejection(verify(oathtool(enrolled.secret, clock.now(), -2)))).code).to.equal('invalid_code');
    expect(await verify(oathtool(enrolled.secret, clock.now(), -1))).to.equal('totp');
    expect((await rejection(verify(oathtool(enrolled.secret, clock.now(), -1)))).code).to.equal('invalid_code');
    expect(await verify(oathtool(enrolled.secret, clock.now()))).to.equal('totp');
    expect((await rejection(verify(oathtool(enrolled.secret, clock.now())))).code).to.equal('invalid_code');
    // A newer step spent, an older one (still inside the window) is refused.
    clock.advance(30);
    expect(await verify(oathtool(enrolled.secret, clock.now(), 1))).to.equal('totp');
    expect((await rejection(verify(oathtool(enrolled.secret, clock.now())))).code).to.equal('invalid_code');
    expect((await rejection(verify('000000'))).code).to.equal('invalid_code');
  });

  it('a replayed code raced against itself is accepted exactly once', async () => {
    const carl = await signedIn('carl');
    const enrolled = await enrol(app, carl.token, clock.now());
    remember(enrolled);
    clock.advance(30);
    const code = oathtool(enrolled.secret, clock.now());
    const outcomes = await Promise.allSettled(Array.from({ length: 8 }, () => app.container.mfa.verify(carl.userId, { code })));
    expect(outcomes.filter((o) => o.status === 'fulfilled')).to.have.length(1);
    for (const o of outcomes) if (o.status === 'rejected') expect((o.reason as AppError).code).to.equal('invalid_code');
  });

  it('brute force of codes at confirmation is throttled like passwords: 429 with Retry-After, and then even the right code is refused', async () => {
    const dora = await signedIn('dora');
    const started = await startEnrolment(app, dora.token);
    remember(started);
    const right = oathtool(started.secret, clock.now());
    let limited: Response | undefined;
    for (let guess = 0; guess < 30 && !limited; guess++) {
      const code = String(guess).padStart(6, '0');
      if (code === right) continue;
      const res = await app.request('/v1/me/mfa/totp/confirm', { method: 'POST', token: dora.token, json: { factorId: started.factorId, code } });
      if (res.status === 429) limited = res;
      else await expectProblem(res, 400, 'invalid_code');
    }
    expect(limited, 'throttled within 30 guesses').to.not.equal(undefined);
    await expectProblem(limited!, 429, 'rate_limited');
    expect(Number(limited!.headers.get('retry-after'))).to.be.greaterThan(0);
    const res = await app.request('/v1/me/mfa/totp/confirm', { method: 'POST', token: dora.token, json: { factorId: started.factorId, code: right } });
    await expectProblem(res, 429, 'rate_limited');
    expect((await app.container.mfa.overview(dora.userId)).factors.map((f) => f.status)).to.deep.equal(['pending']);
  });

  it('a recovery code works once (any case, dashes or spaces), and regenerating kills the old ones', async () => {
    const erin = await signedIn('erin');
    const enrolled = await enrol(app, erin.token, clock.now());
    remember(enrolled);
    const [first, second] = enrolled.recoveryCodes as [string, string];
    expect(await app.container.mfa.verify(erin.userId, { recoveryCode: first.toUpperCase().replace(/-/g, ' ') })).to.equal('recovery_code');
    expect((await rejection(app.container.mfa.verify(erin.userId, { recoveryCode: first }))).code).to.equal('invalid_code');
    expect((await app.container.mfa.overview(erin.userId)).recoveryCodesLeft).to.equal(9);
    expect((await rejection(app.container.mfa.verify(erin.userId, { recoveryCode: 'aaaa-bbbb-cccc' }))).code).to.equal('invalid_code');

    const res = await app.request('/v1/me/mfa/recovery-codes', { method: 'POST', token: erin.token });
    expect(res.status).to.equal(200);
    const { recoveryCodes } = (await res.json()) as { recoveryCodes: string[] };
    remember({ secret: enrolled.secret, uri: enrolled.uri, recoveryCodes });
    expect(recoveryCodes).to.have.length(10);
    expect(recoveryCodes).not.to.include(second);
    expect((await rejection(app.container.mfa.verify(erin.userId, { recoveryCode: second }))).code).to.equal('invalid_code');
    expect(await app.container.mfa.verify(erin.userId, { recoveryCode: recoveryCodes[3]! })).to.equal('recovery_code');
    expect((await app.container.mfa.overview(erin.userId)).recoveryCodesLeft).to.equal(9);
    const ended = await app.container.db.writer('mfa_recovery_codes').where({ user_id: erin.userId }).select('end_reason');
    expect(ended.filter((r: { end_reason: string | null }) => r.end_reason === 'replaced')).to.have.length(9);
  });

  it('removal, regeneration and enrolment need a recent authentication: 403 reauthentication_required once auth_time is older than identity.reauthWindow', async () => {
    const finn = await signedIn('finn');
    const enrolled = await enrol(app, finn.token, clock.now());
    remember(enrolled);
    clock.advance(app.container.config.identity.reauthWindow + 1);
    // The access token itself is still valid (accessTtl is longer than the window): /v1/me/mfa lists.
    expect((await app.request('/v1/me/mfa', { token: finn.token })).status).to.equal(200);
    await expectProblem(await app.request(`/v1/me/mfa/totp/${enrolled.factorId}`, { method: 'DELETE', token: finn.token }), 403, 'reauthentication_required');
    await expectProblem(await app.request('/v1/me/mfa/recovery-codes', { method: 'POST', token: finn.token }), 403, 'reauthentication_required');
    await expectProblem(await app.request('/v1/me/mfa/totp', { method: 'POST', token: finn.token }), 403, 'reauthentication_required');
    await expectProblem(
      await app.request('/v1/me/mfa/totp/confirm', { method: 'POST', token: finn.token, json: { factorId: enrolled.factorId, code: '123456' } }),
      403,
      'reauthentication_required',
    );
    expect(await app.container.mfa.activeTypes(finn.userId)).to.deep.equal(['totp', 'recovery_code']);

    // With a fresh authentication (the password and, the factor being active, a code) the removal
    // goes through, and the recovery codes end with it.
    const renewed = await app.request('/v1/auth/reauthenticate', {
      method: 'POST',
      token: finn.token,
      json: { password: finn.password, code: oathtool(enrolled.secret, clock.now()) },
    });
    expect(renewed.status, await renewed.clone().text()).to.equal(200);
    const fresh = (await renewed.json()) as { accessToken: string };
    await expectProblem(
      await app.request('/v1/me/mfa/totp/0192f0c4-7d1e-7c3a-9b1e-3f2a1c0d4e70', { method: 'DELETE', token: fresh.accessToken }),
      404,
      'not_found',
    );
    expect((await app.request(`/v1/me/mfa/totp/${enrolled.factorId}`, { method: 'DELETE', token: fresh.accessToken })).status).to.equal(204);
    expect(await app.container.mfa.overview(finn.userId)).to.deep.equal({ factors: [], recoveryCodesLeft: 0 });
    expect(await app.container.mfa.activeTypes(finn.userId)).to.deep.equal([]);
    expect((await rejection(app.container.mfa.verify(finn.userId, { recoveryCode: enrolled.recoveryCodes[0]! }))).code).to.equal('invalid_code');
    const row = (await app.container.db.writer('mfa_factors').where({ id: enrolled.factorId }).first()) as { removed_at: Date | null };
    expect(row.removed_at, 'the row stays, removed (so no late replicated change revives it)').to.be.an.instanceOf(Date);
  });

  it("a new start replaces a pending factor; a pending factor expires after 10 minutes; another user's factor is not found", async () => {
    const gail = await signedIn('gail');
    const first = await app.container.mfa.startTotp(gail.userId);
    const second = await app.container.mfa.startTotp(gail.userId);
    remember(first);
    remember(second);
    expect((await rejection(app.container.mfa.confirmTotp(gail.userId, first.factorId, oathtool(first.secret, clock.now())))).code).to.equal('not_found');
    const hal = await signedIn('hal');
    expect((await rejection(app.container.mfa.confirmTotp(hal.userId, second.factorId, oathtool(second.secret, clock.now())))).code).to.equal('not_found');
    clock.advance(601);
    expect((await rejection(app.container.mfa.confirmTotp(gail.userId, second.factorId, oathtool(second.secret, clock.now())))).code).to.equal('not_found');
    expect((await app.container.mfa.overview(gail.userId)).factors).to.deep.equal([]);
  });

  it('the secret is sealed at rest: the column is not the secret, opens only with the server secret and in its own row, and is re-sealed with the new secret during a rotation', async () => {
    const ivan = await signedIn('ivan');
    const enrolled = await enrol(app, ivan.token, clock.now());
    remember(enrolled);
    const sealedOf = async () =>
      ((await app.container.db.writer('mfa_factors').where({ id: enrolled.factorId }).first()) as { secret_sealed: string }).secret_sealed;
    const sealed = await sealedOf();
    expect(sealed).not.to.contain(enrolled.secret);
    expect(Buffer.from(sealed).toString()).not.to.contain(Buffer.from(enrolled.secret, 'utf8').toString('base64'));
    expect(new ServerSecrets(TEST_SECRET).open(sealed, `mfa-totp:${enrolled.factorId}`)).to.equal(enrolled.secret);
    expect(() => new ServerSecrets('another-secret-of-at-least-32-characters!').open(sealed, `mfa-totp:${enrolled.factorId}`)).to.throw(/server secret/);
    expect(() => new ServerSecrets(TEST_SECRET).open(sealed, 'mfa-totp:0192f0c4-7d1e-7c3a-9b1e-3f2a1c0d4e70')).to.throw(/could not be decrypted/);

    // A server on the rotated secret (the old one as previous) accepts the code and re-seals the secret.
    const rotated = 'rotated-secret-0123456789-abcdefghijklmnopqrst';
    const next = buildContainer(testConfig(app.db.url, { secret: rotated, previousSecret: TEST_SECRET }), { clock });
    try {
      clock.advance(30);
      expect(await next.mfa.verify(ivan.userId, { code: oathtool(enrolled.secret, clock.now()) })).to.equal('totp');
    } finally {
      await shutdown(next);
    }
    const resealed = await sealedOf();
    expect(resealed).not.to.equal(sealed);
    expect(new ServerSecrets(rotated).open(resealed, `mfa-totp:${enrolled.factorId}`)).to.equal(enrolled.secret);
    expect(() => new ServerSecrets(TEST_SECRET).open(resealed, `mfa-totp:${enrolled.factorId}`)).to.throw(/server secret/);
  });

  it('events and metrics: mfa.enrolled, mfa.verified, mfa.failed, mfa.recovery_code_used, mfa.removed, authctl_mfa_verifications_total; no secret, URI, QR or code in any log line', async () => {
    await logs.settle();
    for (const event of ['mfa.enrolled', 'mfa.verified', 'mfa.failed', 'mfa.recovery_code_used', 'mfa.removed']) {
      expect(logs.events(event), event).to.not.be.empty;
    }
    expect(logs.events('mfa.failed').map((e) => e.reason)).to.include.members(['wrong', 'replayed']);
    const metrics = await app.container.metrics.render();
    expect(metrics).to.match(/authctl_mfa_verifications_total\{factor="totp",result="success",region="[^"]+"\} [1-9]/);
    expect(metrics).to.match(/authctl_mfa_verifications_total\{factor="recovery_code",result="failure",region="[^"]+"\} [1-9]/);
    expect(logs.text).not.to.contain('data:image/png');
    expect(logs.text).not.to.contain('otpauth://');
    assertNoSecrets(logs.lines, secretsSeen);
  });
});

describe('identity.mfa "off": the factor routes do not exist', function () {
  this.timeout(60_000);
  let app: TestApp;

  before(async () => {
    app = await startTestApp('mfa_off', { overrides: { identity: { mfa: 'off' } } });
  });
  after(async () => {
    await app?.close();
  });

  it('answers 404 on every /v1/me/mfa route, and no user has factors to ask for', async () => {
    const account = await createAccount(app, 'off');
    const { accessToken: token } = await login(app, account.username, account.password);
    await expectProblem(await app.request('/v1/me/mfa/totp', { method: 'POST', token }), 404, 'not_found');
    await expectProblem(
      await app.request('/v1/me/mfa/totp/confirm', { method: 'POST', token, json: { factorId: '0192f0c4-7d1e-7c3a-9b1e-3f2a1c0d4e70', code: '123456' } }),
      404,
      'not_found',
    );
    await expectProblem(await app.request('/v1/me/mfa', { token }), 404, 'not_found');
    await expectProblem(await app.request('/v1/me/mfa/recovery-codes', { method: 'POST', token }), 404, 'not_found');
    await expectProblem(await app.request('/v1/me/mfa/totp/0192f0c4-7d1e-7c3a-9b1e-3f2a1c0d4e70', { method: 'DELETE', token }), 404, 'not_found');
    expect((await rejection(app.container.mfa.startTotp(account.user.id))).code).to.equal('not_found');
    expect(await app.container.mfa.activeTypes(account.user.id)).to.deep.equal([]);
  });
});
