/**
 * `login-mfa`: the two-step login — `POST /v1/auth/login` (the password: an mfaToken, no
 * tokens), then `POST /v1/auth/mfa/verify` with a TOTP code — measured as one operation beside a
 * plain `login` run of the same build, in the same run: its req/s are completed two-step logins a
 * second, its latencies those of the pair.
 *
 * A factor accepts each 30-s step once (and ±1 step of drift), so a user can answer about once
 * per step: the scenario seeds enough users, enrolled through the core (startTotp, confirmTotp),
 * that none is asked twice for one step at the rate the plain login reached — and each request
 * takes the next user whose next step is acceptable now. Codes are computed with otpauth (the
 * library the server uses; the tests use an independent implementation instead).
 */
import { Secret, TOTP } from 'otpauth';
import { buildContainer } from '../../src/container.js';
import { shutdown } from '../../src/runtime.js';
import { inParallel, JSON_HEADERS, PASSWORD, postJson } from '../lib/api.js';
import { asPairs, measure, warmUp, type LoadSpec } from '../lib/load.js';
import type { RunContext, Scenario } from '../lib/scenario.js';
import { Latencies } from '../lib/stats.js';
import { login } from './login.js';

const PERIOD_S = 30;
const stepNow = () => Math.floor(Date.now() / 1000 / PERIOD_S);

interface EnrolledUser {
  username: string;
  totp: TOTP;
  /** The newest step the server accepted for this user's factor. */
  lastStep: number;
}

/** Registers `count` users over HTTP and enrols a TOTP factor for each through the core. */
async function seedEnrolled(ctx: RunContext, count: number): Promise<EnrolledUser[]> {
  const prefix = `mfa-${ctx.tag}-`;
  const names = Array.from({ length: count }, (_, i) => `${prefix}${i}`);
  const ids = await inParallel(names, ctx.target.connections, async (username) => {
    const res = await postJson(`${ctx.target.base}/v1/auth/register`, { username, password: PASSWORD });
    const text = await res.text();
    if (res.status !== 201) throw new Error(`register ${username}: HTTP ${res.status} ${text.slice(0, 300)}`);
    return (JSON.parse(text) as { user: { id: string } }).user.id;
  });
  const container = buildContainer(ctx.env.config, { logStream: 'stderr' });
  try {
    // Confirming hashes ten recovery codes: a few at a time, as the threadpool allows.
    return await inParallel(names, 4, async (username, i) => {
      const { factorId, secret } = await container.mfa.startTotp(ids[i]!);
      const totp = new TOTP({ secret: Secret.fromBase32(secret), period: PERIOD_S });
      const step = stepNow();
      await container.mfa.confirmTotp(ids[i]!, factorId, totp.generate({ timestamp: step * PERIOD_S * 1000 }));
      return { username, totp, lastStep: step };
    });
  } finally {
    await shutdown(container);
  }
}

/**
 * Hands out users round-robin, each with the code of the next step its factor accepts: one newer
 * than its last, no older than the previous step and no newer than the next (the server's ±1).
 * When every user has answered for the next step already, the request goes out with a stale code
 * (and counts as an error): the seed was too small for the rate.
 */
class UserPool {
  private next = 0;

  constructor(private readonly users: EnrolledUser[]) {}

  take(): { username: string; code: string } {
    const now = stepNow();
    for (let tried = 0; tried < this.users.length; tried++) {
      const user = this.users[this.next++ % this.users.length]!;
      const step = Math.max(user.lastStep + 1, now - 1);
      if (step > now + 1) continue;
      user.lastStep = step;
      return { username: user.username, code: user.totp.generate({ timestamp: step * PERIOD_S * 1000 }) };
    }
    const user = this.users[this.next++ % this.users.length]!;
    return { username: user.username, code: user.totp.generate({ timestamp: user.lastStep * PERIOD_S * 1000 }) };
  }
}

export const loginMfa: Scenario = {
  name: 'login-mfa',
  summary: 'POST /v1/auth/login then POST /v1/auth/mfa/verify (TOTP), beside a plain login run',
  async run(ctx) {
    const plain = await login.run(ctx);
    const loginRps = plain[0]!.rps;
    // Each user answers about once per 30-s step: enough of them for the whole run at the plain
    // login's rate (the two-step login cannot be faster), with a margin.
    const count = Math.ceil(loginRps * (ctx.warmupS + ctx.durationS) * 1.3) + ctx.target.connections;
    ctx.log(`  seeding ${count} users with a TOTP factor`);
    const pool = new UserPool(await seedEnrolled(ctx, count));

    const pairs = new Latencies();
    let measuring = false;
    const spec: LoadSpec = {
      name: 'login-mfa',
      route: 'POST /v1/auth/login → POST /v1/auth/mfa/verify',
      expect: 200,
      durationS: ctx.durationS,
      connection: () => {
        let started = 0;
        let mfaToken = '';
        let code = '';
        return [
          {
            method: 'POST',
            path: '/v1/auth/login',
            headers: { ...JSON_HEADERS },
            setupRequest: (req) => {
              const user = pool.take();
              code = user.code;
              started = performance.now();
              return { ...req, body: JSON.stringify({ username: user.username, password: PASSWORD }) };
            },
            onResponse: (status, body) => {
              mfaToken = status === 200 ? ((JSON.parse(body) as { mfaToken?: string }).mfaToken ?? '') : '';
            },
          },
          {
            method: 'POST',
            path: '/v1/auth/mfa/verify',
            headers: { ...JSON_HEADERS },
            setupRequest: (req) => ({ ...req, body: JSON.stringify({ mfaToken, code }) }),
            onResponse: (status) => {
              if (measuring && status === 200) pairs.add(performance.now() - started);
            },
          },
        ];
      },
    };
    await warmUp(ctx.target, spec, ctx.warmupS);
    measuring = true;
    const http = await measure(ctx.target, spec);
    return [...plain, asPairs(http, pairs, 'a login and its second step')];
  },
};
