/** `login`: each connection logs its own user in, over and over (argon2id verify at the configured cost). */
import { JSON_HEADERS, PASSWORD } from '../lib/api.js';
import { measure, warmUp, type LoadSpec } from '../lib/load.js';
import type { Scenario } from '../lib/scenario.js';

export const login: Scenario = {
  name: 'login',
  summary: 'POST /v1/auth/login, one user per connection',
  async run(ctx) {
    const users = await ctx.seeded();
    const spec: LoadSpec = {
      name: 'login',
      route: 'POST /v1/auth/login',
      expect: 200,
      durationS: ctx.durationS,
      connection: (i) => [
        { method: 'POST', path: '/v1/auth/login', headers: { ...JSON_HEADERS }, body: JSON.stringify({ username: users[i]!.username, password: PASSWORD }) },
      ],
    };
    await warmUp(ctx.target, spec, ctx.warmupS);
    return [await measure(ctx.target, spec)];
  },
};
