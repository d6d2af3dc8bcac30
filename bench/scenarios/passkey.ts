/**
 * `passkey`: a passkey sign-in — `POST /v1/auth/passkey/options {username}` (the user's
 * credentials and a sealed challenge), then `POST /v1/auth/passkey/verify` with the assertion —
 * measured as one operation: its req/s are completed sign-ins a second, its latencies those of
 * the pair. Each connection's user registers a passkey first, through the API (its access token
 * is fresh, so the step-up passes). The assertions come from {@link SoftPasskey}; the server
 * checks each with @simplewebauthn/server (an ES256 signature), spends the challenge and moves
 * the counter in the session's transaction. No argon2: the figure to set beside `login`'s.
 */
import { JSON_HEADERS, inParallel, postJson } from '../lib/api.js';
import { BENCH_WEBAUTHN } from '../lib/env.js';
import { asPairs, measure, warmUp, type LoadSpec } from '../lib/load.js';
import type { Scenario } from '../lib/scenario.js';
import { SoftPasskey } from '../lib/soft-passkey.js';
import { Latencies } from '../lib/stats.js';

async function json(res: Response, what: string): Promise<Record<string, unknown>> {
  const text = await res.text();
  if (!res.ok) throw new Error(`${what}: HTTP ${res.status} ${text.slice(0, 300)}`);
  return JSON.parse(text) as Record<string, unknown>;
}

export const passkey: Scenario = {
  name: 'passkey',
  summary: 'POST /v1/auth/passkey/options then /v1/auth/passkey/verify (ES256 assertion), one user per connection',
  async run(ctx) {
    const users = await ctx.seeded();
    const base = ctx.target.base;
    const keys = await inParallel(users, ctx.target.connections, async (user) => {
      const key = new SoftPasskey(BENCH_WEBAUTHN.rpId, BENCH_WEBAUTHN.origin);
      const options = await json(await postJson(`${base}/v1/me/passkeys/options`, {}, user.tokens.accessToken), 'passkey options');
      await json(
        await postJson(`${base}/v1/me/passkeys`, { response: key.register(options.challenge as string) }, user.tokens.accessToken),
        'passkey registration',
      );
      return key;
    });

    const pairs = new Latencies();
    let measuring = false;
    const spec: LoadSpec = {
      name: 'passkey',
      route: 'POST /v1/auth/passkey/options → POST /v1/auth/passkey/verify',
      expect: 200,
      durationS: ctx.durationS,
      connection: (i) => {
        let started = 0;
        let challenge = '';
        return [
          {
            method: 'POST',
            path: '/v1/auth/passkey/options',
            headers: { ...JSON_HEADERS },
            body: JSON.stringify({ username: users[i]!.username }),
            setupRequest: (req) => {
              started = performance.now();
              return req;
            },
            onResponse: (status, body) => {
              challenge = status === 200 ? ((JSON.parse(body) as { challenge?: string }).challenge ?? '') : '';
            },
          },
          {
            method: 'POST',
            path: '/v1/auth/passkey/verify',
            headers: { ...JSON_HEADERS },
            setupRequest: (req) => ({ ...req, body: JSON.stringify({ response: keys[i]!.authenticate(challenge) }) }),
            onResponse: (status) => {
              if (measuring && status === 200) pairs.add(performance.now() - started);
            },
          },
        ];
      },
    };
    await warmUp(ctx.target, spec, ctx.warmupS);
    measuring = true;
    return [asPairs(await measure(ctx.target, spec), pairs, 'the options and the assertion')];
  },
};
