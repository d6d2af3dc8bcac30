/** `register`: a new, unique username on every request (argon2id hash at the configured cost). */
import { JSON_HEADERS, PASSWORD } from '../lib/api.js';
import { measure, warmUp, type LoadSpec } from '../lib/load.js';
import type { Scenario } from '../lib/scenario.js';

export const register: Scenario = {
  name: 'register',
  summary: 'POST /v1/auth/register, a fresh username per request',
  async run(ctx) {
    let next = 0;
    const spec: LoadSpec = {
      name: 'register',
      route: 'POST /v1/auth/register',
      expect: 201,
      durationS: ctx.durationS,
      connection: () => [
        {
          method: 'POST',
          path: '/v1/auth/register',
          headers: { ...JSON_HEADERS },
          setupRequest: (req) => ({ ...req, body: JSON.stringify({ username: `reg-${ctx.tag}-${next++}`, password: PASSWORD }) }),
        },
      ],
    };
    await warmUp(ctx.target, spec, ctx.warmupS);
    return [await measure(ctx.target, spec)];
  },
};
