/**
 * `introspect`: POST /oauth/introspect (RFC 7662) of a valid access token per connection, by one
 * service client with HTTP Basic — what a gateway that asks on every request it proxies costs.
 * Compare with `verify` (GET /v1/me): the same token check, plus a form, client authentication
 * and the per-client limit (lifted for the run by AUTHCTL_RATE_LIMIT_INTROSPECT_PER_CLIENT).
 */
import { buildContainer } from '../../src/container.js';
import { shutdown } from '../../src/runtime.js';
import { measure, warmUp, type LoadSpec } from '../lib/load.js';
import type { RunContext, Scenario } from '../lib/scenario.js';

/** A client with the introspect scope, created in the bench region's database (the server finds it within a second). */
async function seedClient(ctx: RunContext): Promise<string> {
  const container = buildContainer(ctx.env.config, { logStream: 'stderr' });
  try {
    const { client, secret } = await container.clients.create(`bench ${ctx.tag}`, ['introspect']);
    // RFC 6749 §2.3.1; the id and secret are URL-safe, so encoding leaves them as they are.
    return `Basic ${Buffer.from(`${encodeURIComponent(client.id)}:${encodeURIComponent(secret)}`).toString('base64')}`;
  } finally {
    await shutdown(container);
  }
}

export const introspect: Scenario = {
  name: 'introspect',
  summary: 'POST /oauth/introspect of a valid access token per connection, one service client (Basic)',
  async run(ctx) {
    const users = await ctx.seeded();
    const authorization = await seedClient(ctx);
    const headers = { authorization, 'content-type': 'application/x-www-form-urlencoded' };
    const spec: LoadSpec = {
      name: 'introspect',
      route: 'POST /oauth/introspect',
      expect: 200,
      durationS: ctx.durationS,
      connection: (i) => [
        {
          method: 'POST',
          path: '/oauth/introspect',
          headers,
          body: `token=${users[i]!.tokens.accessToken}`,
        },
      ],
    };
    // The server learns of the new client at its next snapshot reload (at most a second away).
    for (let tries = 0; ; tries++) {
      const res = await fetch(`${ctx.target.base}/oauth/introspect`, { method: 'POST', headers, body: `token=${users[0]!.tokens.accessToken}` });
      const body = (await res.json()) as { active?: boolean };
      if (res.ok && body.active === true) break;
      if (tries > 50) throw new Error(`introspection does not work: ${res.status} ${JSON.stringify(body)}`);
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    await warmUp(ctx.target, spec, ctx.warmupS);
    return [await measure(ctx.target, spec)];
  },
};
