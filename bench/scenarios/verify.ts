/**
 * `verify`: GET /v1/me with a valid access token per connection, and in the same run
 * GET /bench/baseline, the same JSON without authentication or I/O. Their ratio is what
 * authentication (and the profile lookup) costs on top of the HTTP stack.
 */
import { measure, warmUp, type LoadSpec } from '../lib/load.js';
import type { Scenario } from '../lib/scenario.js';

export const verify: Scenario = {
  name: 'verify',
  summary: 'GET /v1/me with a valid Bearer token per connection, against GET /bench/baseline (no auth)',
  async run(ctx) {
    const users = await ctx.seeded();
    const baseline: LoadSpec = {
      name: 'baseline',
      route: 'GET /bench/baseline',
      expect: 200,
      durationS: ctx.durationS,
      connection: () => [{ method: 'GET', path: '/bench/baseline' }],
    };
    const me: LoadSpec = {
      name: 'verify',
      route: 'GET /v1/me',
      expect: 200,
      durationS: ctx.durationS,
      // Distinct users and tokens per connection; a token is reused for the connection's lifetime,
      // as a client does until it expires.
      connection: (i) => [{ method: 'GET', path: '/v1/me', headers: { authorization: `Bearer ${users[i]!.tokens.accessToken}` } }],
    };
    await warmUp(ctx.target, baseline, ctx.warmupS);
    const baselineResult = await measure(ctx.target, baseline);
    await warmUp(ctx.target, me, ctx.warmupS);
    const meResult = await measure(ctx.target, me);
    return [baselineResult, meResult];
  },
};
