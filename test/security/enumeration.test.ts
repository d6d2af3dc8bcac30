import { expect } from 'chai';
import { startTestApp, type TestApp } from '../helpers/app.js';
import { createAccount, expectProblem, uniqueUsername, type Account } from '../helpers/http-assert.js';
import { mannWhitneyU } from './mann-whitney.js';

// Per group. Each login costs one argon2 verification (tens of ms), so 2 × 60 take a few seconds.
const SAMPLES = 60;
// The real server must not be told apart at this level; the control must be. A false alarm on a
// server without a leak happens with probability 0.001 per run.
const ALPHA = 0.001;

interface Timed {
  status: number;
  body: Record<string, unknown>;
  ms: number;
}

async function timedLogin(app: TestApp, username: string, password: string): Promise<Timed> {
  const started = performance.now();
  const res = await app.request('/v1/auth/login', { method: 'POST', json: { username, password } });
  const body = (await res.json()) as Record<string, unknown>;
  return { status: res.status, body, ms: performance.now() - started };
}

/** Alternates the two kinds of attempt, so drift in machine load hits both groups alike. */
async function sample(app: TestApp, known: Account, unknown: string): Promise<{ known: number[]; unknown: number[] }> {
  const out = { known: [] as number[], unknown: [] as number[] };
  for (let i = 0; i < SAMPLES; i++) {
    const order = i % 2 === 0 ? (['known', 'unknown'] as const) : (['unknown', 'known'] as const);
    for (const kind of order) {
      const r = await timedLogin(app, kind === 'known' ? known.username : unknown, 'not the password');
      expect(r.status).to.equal(401);
      out[kind].push(r.ms);
    }
  }
  return out;
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

describe('user enumeration (docs/api.md#error-catalog, ASVS V2.2 / V3)', function () {
  this.timeout(180_000);
  let app: TestApp;
  let known: Account;

  before(async function () {
    // The throttle is off here: these tests measure the password check itself, over many failures.
    app = await startTestApp('sec_enumeration', { overrides: { rateLimit: { enabled: false } } });
    known = await createAccount(app, 'enum-known');
    // Warm both paths (the dummy hash is computed on first use; connections get opened).
    for (let i = 0; i < 3; i++) {
      await timedLogin(app, known.username, 'not the password');
      await timedLogin(app, uniqueUsername('enum-warm'), 'not the password');
    }
  });
  after(async () => app?.close());

  it('by body: unknown user, unnormalizable name and wrong password answer the identical problem', async function () {
    const bodies = [];
    for (const username of [known.username, uniqueUsername('enum-ghost'), 'x', 'a\u202Eb\u0000c', known.username.toUpperCase()]) {
      const res = await app.request('/v1/auth/login', { method: 'POST', json: { username, password: 'not the password' } });
      const problem = await expectProblem(res, 401, 'invalid_credentials');
      expect(res.headers.get('www-authenticate')).to.equal(null);
      bodies.push({ ...problem, requestId: undefined });
    }
    for (const body of bodies.slice(1)) expect(body).to.deep.equal(bodies[0]);
  });

  it(`by timing: ${SAMPLES}+${SAMPLES} interleaved logins, Mann–Whitney U finds no difference (p ≥ ${ALPHA})`, async function () {
    const s = await sample(app, known, uniqueUsername('enum-ghost'));
    const { u, z, p } = mannWhitneyU(s.known, s.unknown);
    console.log(
      `      timing: median known ${median(s.known).toFixed(1)} ms, unknown ${median(s.unknown).toFixed(1)} ms; U=${u} z=${z.toFixed(2)} p=${p.toFixed(4)}`,
    );
    expect(p, 'p-value').to.be.at.least(ALPHA);
  });

  it('control: the same test detects an early return for unknown users (p < α)', async function () {
    // Introduce the bug the test guards against: skip the dummy argon2 run for unknown users.
    const hasher = (app.container.users as unknown as { opts: { hasher: object } }).opts.hasher;
    // An own property shadows the class method; deleting it restores the method.
    Object.defineProperty(hasher, 'dummyVerify', { value: () => Promise.resolve(), configurable: true });
    try {
      const s = await sample(app, known, uniqueUsername('enum-ghost'));
      const { u, z, p } = mannWhitneyU(s.known, s.unknown);
      console.log(
        `      control: median known ${median(s.known).toFixed(1)} ms, unknown ${median(s.unknown).toFixed(1)} ms; U=${u} z=${z.toFixed(2)} p${p < 1e-7 ? '<1e-7' : `=${p.toExponential(2)}`}`,
      );
      expect(p, 'p-value with the early return').to.be.below(ALPHA);
    } finally {
      delete (hasher as { dummyVerify?: unknown }).dummyVerify;
    }
  });

  it('the statistic itself: identical samples give p = 1, disjoint ones p ≈ 0', function () {
    const a = Array.from({ length: 20 }, (_, i) => i);
    expect(mannWhitneyU(a, a).p).to.be.closeTo(1, 1e-9);
    expect(
      mannWhitneyU(
        a,
        a.map((x) => x + 100),
      ).p,
    ).to.be.below(1e-6);
  });
});
