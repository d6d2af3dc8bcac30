import { expect } from 'chai';
import { decodeJwt } from 'jose';
import { ManualClock } from '../../src/platform/clock.js';
import { startTestApp, type TestApp } from '../helpers/app.js';
import { LogCapture } from '../helpers/log-capture.js';
import { enrol, oathtool } from '../mfa/support.js';
import { providerConfig, signInThroughProvider, startProvider, type TestProvider } from './support.js';

const CLIENT = { clientId: 'authctl-web', clientSecret: 'web-client-secret-0123456789' };
const APP = 'https://app.example.com/auth/done';

interface Tokens {
  accessToken: string;
  refreshToken: string;
  user: { id: string; email: string | null };
}

describe('provider sign-in: the web flow', function () {
  this.timeout(60_000);
  let op: TestProvider;
  let app: TestApp;
  const clock = new ManualClock();
  const logs = new LogCapture();

  before(async () => {
    op = await startProvider({
      accounts: [
        { sub: 'g-alice', email: 'Alice@Example.com', email_verified: true, name: 'Alice' },
        { sub: 'g-mfa', email: 'mfa@example.com', email_verified: true, name: 'Mia' },
      ],
    });
    app = await startTestApp('oidc_web_flow', {
      clock,
      log: logs.logger(),
      overrides: (url) => providerConfig(op, url, CLIENT, [APP]),
    });
    logs.follow(app.container.requestContext);
    op.registerClient({ ...CLIENT, redirectUris: [`${app.url}/v1/auth/oidc/google/callback`] });
  });

  after(async () => {
    await app?.close();
    await op?.close();
  });

  async function redeem(code: string | null, verifier: string): Promise<Response> {
    return app.request('/v1/auth/oidc/token', { method: 'POST', json: { code, codeVerifier: verifier } });
  }

  let first: Tokens;

  it('creates the user on a first sign-in and answers tokens that name the provider (idp, amr fed)', async () => {
    const outcome = await signInThroughProvider(app.request, op, { redirectTo: APP, sub: 'g-alice' });
    expect(outcome.error, outcome.errorDescription ?? '').to.equal(null);
    expect(outcome.location.origin + outcome.location.pathname).to.equal(APP);
    expect(outcome.code).to.match(/^oc_/);
    const res = await redeem(outcome.code, outcome.verifier);
    expect(res.status, await res.clone().text()).to.equal(200);
    first = (await res.json()) as Tokens;
    expect(first.user.email).to.equal('Alice@example.com');
    const claims = decodeJwt(first.accessToken);
    expect(claims).to.include({ idp: 'google', acr: 'aal1', email: 'Alice@example.com', email_verified: true });
    expect(claims.amr).to.deep.equal(['fed']);
    const me = await app.request('/v1/me', { token: first.accessToken });
    expect(me.status).to.equal(200);
    expect(((await me.json()) as { user: { id: string } }).user.id).to.equal(first.user.id);
    const row = await app.container.db.writer('sessions').where({ user_id: first.user.id }).first<{ idp: string }>();
    expect(row.idp).to.equal('google');
  });

  it('keeps idp across a refresh', async () => {
    const res = await app.request('/v1/auth/refresh', { method: 'POST', json: { refreshToken: first.refreshToken } });
    expect(res.status).to.equal(200);
    const claims = decodeJwt(((await res.json()) as Tokens).accessToken);
    expect(claims).to.include({ idp: 'google' });
    expect(claims.amr).to.deep.equal(['fed']);
  });

  it('finds the same user on a second sign-in', async () => {
    const outcome = await signInThroughProvider(app.request, op, { redirectTo: APP, sub: 'g-alice' });
    const res = await redeem(outcome.code, outcome.verifier);
    expect(res.status).to.equal(200);
    expect(((await res.json()) as Tokens).user.id).to.equal(first.user.id);
    const users = await app.container.db.writer('users').whereRaw('lower(email) = ?', ['alice@example.com']).count<[{ count: string }]>('* as count');
    expect(Number(users[0]!.count)).to.equal(1);
  });

  it('refuses a replayed code, a wrong verifier, and a code past its 60 s', async () => {
    const outcome = await signInThroughProvider(app.request, op, { redirectTo: APP, sub: 'g-alice' });
    const wrong = await redeem(outcome.code, 'x'.repeat(43));
    expect(wrong.status).to.equal(400);
    expect(((await wrong.json()) as { code: string }).code).to.equal('invalid_oidc_code');
    expect((await redeem(outcome.code, outcome.verifier)).status, 'a wrong verifier does not spend the code').to.equal(200);
    const replay = await redeem(outcome.code, outcome.verifier);
    expect(replay.status).to.equal(400);
    expect(((await replay.json()) as { code: string }).code).to.equal('invalid_oidc_code');

    const late = await signInThroughProvider(app.request, op, { redirectTo: APP, sub: 'g-alice' });
    clock.advance(61);
    const expired = await redeem(late.code, late.verifier);
    expect(expired.status).to.equal(400);
    expect(((await expired.json()) as { code: string }).code).to.equal('invalid_oidc_code');
  });

  it('asks a user with a second factor for it, and the session keeps the provider: amr fed, otp, mfa', async () => {
    const outcome = await signInThroughProvider(app.request, op, { redirectTo: APP, sub: 'g-mfa' });
    const tokens = (await (await redeem(outcome.code, outcome.verifier)).json()) as Tokens;
    const { secret } = await enrol(app, tokens.accessToken, clock.now());
    clock.advance(60);

    const again = await signInThroughProvider(app.request, op, { redirectTo: APP, sub: 'g-mfa' });
    const res = await redeem(again.code, again.verifier);
    expect(res.status).to.equal(200);
    const challenge = (await res.json()) as { mfaRequired: boolean; mfaToken: string };
    expect(challenge.mfaRequired).to.equal(true);
    expect((await redeem(again.code, again.verifier)).status, 'the code was spent before the mfaToken was issued').to.equal(400);

    const verify = await app.request('/v1/auth/mfa/verify', { method: 'POST', json: { mfaToken: challenge.mfaToken, code: oathtool(secret, clock.now()) } });
    expect(verify.status, await verify.clone().text()).to.equal(200);
    const claims = decodeJwt(((await verify.json()) as Tokens).accessToken);
    expect(claims).to.include({ idp: 'google', acr: 'aal2' });
    expect(claims.amr).to.deep.equal(['fed', 'otp', 'mfa']);
  });

  it('logs login.succeeded with method and provider, and never a code, state or token', () => {
    const events = logs.lines.map((l) => JSON.parse(l) as Record<string, unknown>);
    const succeeded = events.filter((e) => e['event'] === 'login.succeeded');
    expect(succeeded.length).to.be.greaterThan(0);
    expect(succeeded[0]).to.include({ method: 'oidc', provider: 'google' });
    const text = logs.lines.join('\n');
    expect(text).to.not.match(/oc_[A-Za-z0-9_-]{20}/);
    expect(text).to.not.match(/st_[A-Za-z0-9_-]{20}/);
    expect(text).to.not.include(first.accessToken);
    expect(text).to.not.include(first.refreshToken);
  });
});
