/**
 * `refresh`: every connection carries its own rotating chain — each request presents the refresh
 * token of the previous response. A failed refresh breaks that chain (its next request is a
 * reuse), so errors here are never noise.
 */
import { JSON_HEADERS, postJson, type TokenResponse } from '../lib/api.js';
import { measure, warmUp, type LoadSpec } from '../lib/load.js';
import type { Scenario } from '../lib/scenario.js';

export const refresh: Scenario = {
  name: 'refresh',
  summary: 'POST /v1/auth/refresh, one rotating chain per connection',
  async run(ctx) {
    const chains = (await ctx.seeded()).map((u) => ({ token: u.tokens.refreshToken, inFlight: false, broken: false }));
    const spec: LoadSpec = {
      name: 'refresh',
      route: 'POST /v1/auth/refresh',
      expect: 200,
      durationS: ctx.durationS,
      connection: (i) => {
        const chain = chains[i]!;
        return [
          {
            method: 'POST',
            path: '/v1/auth/refresh',
            headers: { ...JSON_HEADERS },
            setupRequest: (req) => {
              chain.inFlight = true;
              return { ...req, body: JSON.stringify({ refreshToken: chain.token }) };
            },
            onResponse: (status, body) => {
              chain.inFlight = false;
              if (status === 200) chain.token = (JSON.parse(body) as TokenResponse).refreshToken;
              else chain.broken = true;
            },
          },
        ];
      },
    };
    await warmUp(ctx.target, spec, ctx.warmupS);
    // autocannon drops the requests in flight when a run stops: the server rotated those chains
    // but nobody read the answer. Present the same token once more (a grace retry, which returns
    // the token the lost answer had) so the measured run starts on the happy path.
    for (const chain of chains.filter((c) => c.inFlight)) {
      const res = await postJson(`${ctx.target.base}/v1/auth/refresh`, { refreshToken: chain.token });
      if (res.ok) chain.token = ((await res.json()) as TokenResponse).refreshToken;
      else chain.broken = true;
      chain.inFlight = false;
    }
    const result = await measure(ctx.target, spec);
    const broken = chains.filter((c) => c.broken).length;
    if (broken) result.notes.push(`${broken} of ${chains.length} chains broke`);
    return [result];
  },
};
