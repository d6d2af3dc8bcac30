import { createServer } from 'node:net';
import type { AddressInfo } from 'node:net';
import { expect } from 'chai';
import { ManualClock } from '../../src/platform/clock.js';
import { startTestApp, type TestApp } from '../helpers/app.js';
import { LogCapture } from '../helpers/log-capture.js';
import { deliverCallback, loginAtProvider, pkcePair, providerConfig, signInThroughProvider, startProvider, type TestProvider } from './support.js';

const CLIENT = { clientId: 'authctl-web', clientSecret: 'web-client-secret-0123456789' };
const APP = 'https://app.example.com/auth/done';
const TIMEOUT_MS = 800;

/** A loopback port nothing listens on. */
async function closedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

describe('provider sign-in: every failure has a clear answer and creates no user', function () {
  this.timeout(60_000);
  let op: TestProvider;
  let other: TestProvider;
  let impostor: TestProvider;
  let app: TestApp;
  const clock = new ManualClock();
  const logs = new LogCapture();
  let n = 0;
  /** A provider account nobody has signed in with yet. */
  const newcomer = () => {
    const sub = `g-new-${++n}`;
    op.accounts.set(sub, { sub, email: `${sub}@example.com`, email_verified: true, name: sub });
    return sub;
  };

  before(async () => {
    op = await startProvider({ accounts: [{ sub: 'g-bob', email: 'bob@example.com', email_verified: true }] });
    other = await startProvider({ name: 'Other', accounts: [{ sub: 'o-bob', email: 'bob@example.org', email_verified: true }] });
    impostor = await startProvider({ claimedIssuer: () => 'https://accounts.google.com' });
    const down = `http://127.0.0.1:${await closedPort()}`;
    app = await startTestApp('oidc_failures', {
      clock,
      log: logs.logger(),
      overrides: (url) => {
        const base = providerConfig(op, url, CLIENT, ['https://mobile.example.com/cb', 'https://app.example.com/auth/*']);
        return {
          ...base,
          identity: {
            ...base.identity,
            providerTimeoutMs: TIMEOUT_MS,
            providers: [
              ...(base.identity?.providers ?? []),
              { id: 'other', issuer: other.url, ...CLIENT },
              { id: 'impostor', issuer: impostor.url, ...CLIENT },
              { id: 'down', issuer: down, ...CLIENT },
              { id: 'slow', issuer: other.url, ...CLIENT },
            ],
          },
        };
      },
    });
    logs.follow(app.container.requestContext);
    op.registerClient({ ...CLIENT, redirectUris: [`${app.url}/v1/auth/oidc/google/callback`] });
    other.registerClient({ ...CLIENT, redirectUris: [`${app.url}/v1/auth/oidc/other/callback`] });
  });

  after(async () => {
    await app?.close();
    await Promise.all([op?.close(), other?.close(), impostor?.close()]);
  });

  const users = async () => Number((await app.container.db.writer('users').count<[{ count: string }]>('* as count'))[0]!.count);

  async function expectProblem(res: Response, status: number, code: string): Promise<void> {
    const text = await res.text();
    expect(res.status, text).to.equal(status);
    expect(res.headers.get('location'), 'never a redirect').to.equal(null);
    expect((JSON.parse(text) as { code: string }).code).to.equal(code);
  }

  /** The provider's redirect back to authctl after `sub` logged in, not yet delivered. */
  async function callbackFor(sub: string, provider = 'google', at = op): Promise<URL> {
    const query = new URLSearchParams({ redirect_to: APP, code_challenge: pkcePair().challenge });
    const res = await app.request(`/v1/auth/oidc/${provider}/authorize?${query.toString()}`, { redirect: 'manual' });
    expect(res.status, await res.clone().text()).to.equal(302);
    return (await loginAtProvider(at, res.headers.get('location')!, { sub })).callbackUrl;
  }

  const callback = (url: URL, path = url.pathname) => app.request(path + url.search, { redirect: 'manual' });

  describe('the state', () => {
    it('missing, forged or tampered with: 400 invalid_oidc_state, no redirect', async () => {
      await expectProblem(await app.request('/v1/auth/oidc/google/callback?code=abc', { redirect: 'manual' }), 400, 'invalid_oidc_state');
      await expectProblem(
        await app.request(`/v1/auth/oidc/google/callback?code=abc&state=st_${'A'.repeat(200)}`, { redirect: 'manual' }),
        400,
        'invalid_oidc_state',
      );
      const url = await callbackFor('g-bob');
      const state = url.searchParams.get('state')!;
      const i = Math.floor(state.length / 2);
      url.searchParams.set('state', state.slice(0, i) + (state[i] === 'A' ? 'B' : 'A') + state.slice(i + 1));
      await expectProblem(await callback(url), 400, 'invalid_oidc_state');
    });

    it('replayed: the second delivery is refused', async () => {
      const url = await callbackFor('g-bob');
      expect((await deliverCallback(app.request, url)).code).to.match(/^oc_/);
      await expectProblem(await callback(url), 400, 'invalid_oidc_state');
    });

    it("of another provider: refused at this provider's callback", async () => {
      const url = await callbackFor('o-bob', 'other', other);
      await expectProblem(await callback(url, '/v1/auth/oidc/google/callback'), 400, 'invalid_oidc_state');
    });

    it('expired (identity.providerFlowTtl): refused', async () => {
      const url = await callbackFor('g-bob');
      clock.advance(app.container.config.identity.providerFlowTtl + 1);
      await expectProblem(await callback(url), 400, 'invalid_oidc_state');
    });
  });

  describe('the ID token (back to the app with error=invalid_id_token, no user)', () => {
    const cases: Array<[string, (p: TestProvider) => void]> = [
      ['a nonce that is not the one sent', (p) => (p.tamperIdToken = (c) => ({ ...c, nonce: 'another-nonce' }))],
      ['another audience', (p) => (p.tamperIdToken = (c) => ({ ...c, aud: 'someone-else' }))],
      ['another issuer', (p) => (p.tamperIdToken = (c) => ({ ...c, iss: 'https://evil.example.com' }))],
      ['an expiry in the past', (p) => (p.tamperIdToken = (c) => ({ ...c, iat: (c.iat ?? 0) - 7200, exp: (c.iat ?? 0) - 3600 }))],
      ['a signature by a key that is not the provider’s', (p) => (p.forgeSignatures = true)],
    ];
    for (const [what, misbehave] of cases) {
      it(what, async () => {
        const before = await users();
        misbehave(op);
        try {
          const outcome = await signInThroughProvider(app.request, op, { redirectTo: APP, sub: newcomer() });
          expect(outcome.code).to.equal(null);
          expect(outcome.error, outcome.errorDescription ?? '').to.equal('invalid_id_token');
          expect(outcome.location.origin + outcome.location.pathname).to.equal(APP);
        } finally {
          op.tamperIdToken = undefined;
          op.forgeSignatures = false;
        }
        expect(await users()).to.equal(before);
      });
    }
  });

  describe('the provider', () => {
    it('access_denied comes back to the app as error and error_description', async () => {
      const before = await users();
      const outcome = await signInThroughProvider(app.request, op, { redirectTo: APP, deny: true });
      expect(outcome).to.include({ error: 'access_denied', code: null });
      expect(outcome.errorDescription).to.be.a('string').and.not.equal('');
      expect(await users()).to.equal(before);
    });

    it('down: 503 provider_unavailable with Retry-After', async () => {
      const res = await app.request(`/v1/auth/oidc/down/authorize?redirect_to=${encodeURIComponent(APP)}&code_challenge=${pkcePair().challenge}`, {
        redirect: 'manual',
      });
      expect(res.headers.get('retry-after')).to.match(/^\d+$/);
      await expectProblem(res, 503, 'provider_unavailable');
    });

    it('slow to discover: 503 within identity.providerTimeoutMs', async () => {
      other.delay = { path: /well-known/, ms: 5_000 };
      try {
        const started = Date.now();
        const res = await app.request(`/v1/auth/oidc/slow/authorize?redirect_to=${encodeURIComponent(APP)}&code_challenge=${pkcePair().challenge}`, {
          redirect: 'manual',
        });
        await expectProblem(res, 503, 'provider_unavailable');
        expect(Date.now() - started).to.be.below(TIMEOUT_MS + 1_000);
      } finally {
        other.delay = undefined;
      }
    });

    it('slow to exchange the code: back to the app with error=provider_unavailable, within the timeout', async () => {
      const before = await users();
      const url = await callbackFor(newcomer());
      op.delay = { path: /^\/token/, ms: 5_000 };
      try {
        const started = Date.now();
        const outcome = await deliverCallback(app.request, url);
        expect(outcome.error).to.equal('provider_unavailable');
        expect(Date.now() - started).to.be.below(TIMEOUT_MS + 1_000);
      } finally {
        op.delay = undefined;
      }
      expect(await users()).to.equal(before);
    });

    it('a discovery document naming another issuer: 502 provider_error', async () => {
      await expectProblem(
        await app.request(`/v1/auth/oidc/impostor/authorize?redirect_to=${encodeURIComponent(APP)}&code_challenge=${pkcePair().challenge}`, {
          redirect: 'manual',
        }),
        502,
        'provider_error',
      );
    });

    it('an unknown provider: 404 at authorize and at the callback', async () => {
      await expectProblem(
        await app.request(`/v1/auth/oidc/nobody/authorize?redirect_to=${encodeURIComponent(APP)}&code_challenge=${pkcePair().challenge}`, {
          redirect: 'manual',
        }),
        404,
        'not_found',
      );
      await expectProblem(await app.request('/v1/auth/oidc/nobody/callback?state=x&code=y', { redirect: 'manual' }), 404, 'not_found');
    });
  });

  describe('redirect_to', () => {
    const authorize = (redirectTo: string, challenge = pkcePair().challenge) =>
      app.request(`/v1/auth/oidc/google/authorize?${new URLSearchParams({ redirect_to: redirectTo, code_challenge: challenge }).toString()}`, {
        redirect: 'manual',
      });

    it('allows the exact URLs and the prefixes of identity.redirectUrls', async () => {
      for (const ok of ['https://mobile.example.com/cb', 'https://app.example.com/auth/done?next=%2Fhome', 'https://app.example.com/auth/']) {
        const res = await authorize(ok);
        expect(res.status, ok).to.equal(302);
        expect(res.headers.get('location')).to.match(new RegExp(`^${op.url}/auth\\?`));
      }
    });

    it('refuses everything else with 400 redirect_not_allowed and never a Location (open-redirect attempts)', async () => {
      const attacks = [
        'https://evil.example.com/auth/done',
        'https://app.example.com.evil.com/auth/done',
        'https://app.example.com@evil.com/auth/done',
        'https://user:pass@app.example.com/auth/done',
        'https://app.example.com/auth/../evil',
        'https://app.example.com/auth/%2e%2e/evil',
        'https://app.example.com/auth/%2E%2E%2Fevil',
        'https://app.example.com/auth/%5c%5cevil.com',
        'https://app.example.com\\@evil.com/auth/',
        'https://app.example.com/auth\\..\\evil',
        'https://app.example.com/auth//evil.com',
        '//evil.com/auth/done',
        '/auth/done',
        'javascript:alert(1)//https://app.example.com/auth/',
        'data:text/html,https://app.example.com/auth/',
        'https://app.example.com/auth/done#access_token',
        'http://app.example.com/auth/done',
        'https://APP.example.com/auth/done',
        'https://app.example.com:443/auth/done',
        'https://app.example.com:8443/auth/done',
        'https://app.example.com/other',
        'https://app.example.com/authx',
        'https://mobile.example.com/cb/extra',
        'https://mobile.example.com/cb?x=1',
        ' https://app.example.com/auth/done',
        'https://app.example.com/auth/done\n',
        'https://app.example.com/auth/\tx',
        `https://app.example.com/auth/${'a'.repeat(1100)}`,
        '',
      ];
      for (const attack of attacks) await expectProblem(await authorize(attack), 400, 'redirect_not_allowed');
      await expectProblem(
        await app.request('/v1/auth/oidc/google/authorize?code_challenge=' + pkcePair().challenge, { redirect: 'manual' }),
        400,
        'redirect_not_allowed',
      );
    });

    it('needs an S256 challenge of 43 base64url characters', async () => {
      await expectProblem(await authorize(APP, 'short'), 400, 'invalid_request');
      await expectProblem(
        await app.request(`/v1/auth/oidc/google/authorize?redirect_to=${encodeURIComponent(APP)}`, { redirect: 'manual' }),
        400,
        'invalid_request',
      );
      await expectProblem(
        await app.request(
          `/v1/auth/oidc/google/authorize?redirect_to=${encodeURIComponent(APP)}&code_challenge=${pkcePair().challenge}&code_challenge_method=plain`,
          {
            redirect: 'manual',
          },
        ),
        400,
        'invalid_request',
      );
    });
  });

  describe('the logs', () => {
    it('logs oidc.failed with its reason and provider, and never a state, code or nonce', () => {
      const events = logs.lines.map((l) => JSON.parse(l) as Record<string, unknown>).filter((e) => e['event'] === 'oidc.failed');
      expect(events.map((e) => e['reason'])).to.include.members(['invalid_id_token', 'access_denied', 'provider_unavailable']);
      expect(events.every((e) => typeof e['provider'] === 'string')).to.equal(true);
      const text = logs.lines.join('\n');
      expect(text).to.not.match(/st_[A-Za-z0-9_-]{20}/);
      expect(text).to.not.match(/oc_[A-Za-z0-9_-]{20}/);
      expect(text).to.not.match(/nonce=/);
    });
  });
});
