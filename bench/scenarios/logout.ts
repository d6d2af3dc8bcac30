/**
 * `logout`: every request ends a different live session (Bearer access token, body `{}`), so
 * the sessions are made beforehand and consumed one per request.
 *
 * Why not alternate login → logout on each connection: login costs an argon2id verify (~10 ms of
 * CPU), so the pair would run at the login rate and the logout figure would mostly measure login.
 * Instead the setup logs in, over HTTP, as users whose stored hash uses very cheap argon2id
 * parameters (m = 256 KiB, t = 1; set directly in the bench database — the server verifies with
 * the parameters embedded in a PHC hash). That setup is itself reported, as `login-cheap`: the
 * cost of a login apart from password hashing. Then `logout` runs until the duration is over or
 * the pre-made sessions are used up, whichever comes first (the report says which).
 */
import argon2 from 'argon2';
import pg from 'pg';
import { inParallel, JSON_HEADERS, PASSWORD, register, type TokenResponse } from '../lib/api.js';
import { measure, type LoadSpec } from '../lib/load.js';
import type { Scenario } from '../lib/scenario.js';

const CHEAP = { type: argon2.argon2id, memoryCost: 256, timeCost: 1, parallelism: 1 } as const;
/** Sessions to pre-make per second of logout run: above what this 2-core box can revoke. */
const SESSIONS_PER_SECOND = 3_000;

export const logout: Scenario = {
  name: 'logout',
  summary: 'POST /v1/auth/logout, one pre-made session per request',
  async run(ctx) {
    const { connections } = ctx.target;
    const prefix = `lo-${ctx.tag}-`;
    const names = Array.from({ length: connections }, (_, i) => `${prefix}${i}`);
    await inParallel(names, connections, (u) => register(ctx.target.base, u));
    const db = new pg.Client({ connectionString: ctx.env.databaseUrl });
    await db.connect();
    try {
      const updated = await db.query('update users set password_hash = $1 where username like $2', [await argon2.hash(PASSWORD, CHEAP), `${prefix}%`]);
      if (updated.rowCount !== connections) throw new Error(`expected to re-hash ${connections} users, did ${updated.rowCount}`);
    } finally {
      await db.end();
    }

    const wanted = Math.ceil((SESSIONS_PER_SECOND * ctx.durationS) / connections);
    const tokens: string[] = [];
    const setup: LoadSpec = {
      name: 'login-cheap',
      route: 'POST /v1/auth/login (cheap hash)',
      expect: 200,
      durationS: Math.max(3, ctx.durationS),
      maxPerConnection: wanted,
      connection: (i) => [
        {
          method: 'POST',
          path: '/v1/auth/login',
          headers: { ...JSON_HEADERS },
          body: JSON.stringify({ username: names[i], password: PASSWORD }),
          onResponse: (status, body) => {
            if (status === 200) tokens.push((JSON.parse(body) as TokenResponse).accessToken);
          },
        },
      ],
    };
    const setupResult = await measure(ctx.target, setup);
    setupResult.notes.push(`setup of logout: ${tokens.length} sessions (argon2id m=${CHEAP.memoryCost} KiB, t=${CHEAP.timeCost})`);

    const perConnection = Math.floor(tokens.length / connections);
    if (perConnection < 1) throw new Error('logout: the setup made fewer sessions than connections');
    const spec: LoadSpec = {
      name: 'logout',
      route: 'POST /v1/auth/logout',
      expect: 204,
      durationS: ctx.durationS,
      maxPerConnection: perConnection,
      connection: () => [
        {
          method: 'POST',
          path: '/v1/auth/logout',
          headers: { ...JSON_HEADERS },
          body: '{}',
          setupRequest: (req) => {
            // Each connection takes exactly perConnection tokens, so the pool never runs dry.
            const token = tokens.pop();
            if (token === undefined) throw new Error('logout: out of sessions');
            return { ...req, headers: { ...req.headers, authorization: `Bearer ${token}` } };
          },
        },
      ],
    };
    const result = await measure(ctx.target, spec);
    const ranOut = result.elapsedS < ctx.durationS * 0.95;
    result.notes.push(
      ranOut
        ? `ran ${result.elapsedS} s of ${ctx.durationS}: the ${perConnection * connections} pre-made sessions were used up`
        : `${perConnection * connections} pre-made sessions, ${tokens.length} left over`,
    );
    return [setupResult, result];
  },
};
