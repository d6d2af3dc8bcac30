import bcrypt from '@node-rs/bcrypt';
import { expect } from 'chai';
import type { PasswordHasher } from '../../src/core/users/password-hasher.js';
import { startTestApp, type TestApp } from '../helpers/app.js';
import { createAccount, expectProblem, uniqueUsername, type Account } from '../helpers/http-assert.js';
import { storeHash } from './hash-fixtures.js';
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

/**
 * Wrong-password logins for each named username, interleaved and in rotating order, so drift in
 * machine load hits every group alike.
 */
async function sampleGroups<K extends string>(app: TestApp, usernames: Record<K, string>): Promise<Record<K, number[]>> {
  const kinds = Object.keys(usernames) as K[];
  const out = Object.fromEntries(kinds.map((k) => [k, [] as number[]])) as Record<K, number[]>;
  for (let i = 0; i < SAMPLES; i++) {
    for (let j = 0; j < kinds.length; j++) {
      const kind = kinds[(i + j) % kinds.length]!;
      const r = await timedLogin(app, usernames[kind], 'not the password');
      expect(r.status).to.equal(401);
      out[kind].push(r.ms);
    }
  }
  return out;
}

function sample(app: TestApp, known: Account, unknown: string): Promise<{ known: number[]; unknown: number[] }> {
  return sampleGroups(app, { known: known.username, unknown });
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

/** The Mann–Whitney comparison of two groups, logged like the tests above log theirs. */
function compare(label: string, a: number[], b: number[], names: [string, string]): number {
  const { u, z, p } = mannWhitneyU(a, b);
  console.log(
    `      ${label}: median ${names[0]} ${median(a).toFixed(1)} ms, ${names[1]} ${median(b).toFixed(1)} ms; U=${u} z=${z.toFixed(2)} p${p < 1e-7 ? '<1e-7' : `=${p.toFixed(4)}`}`,
  );
  return p;
}

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

describe('user enumeration with imported hashes: a bcrypt user’s wrong password is not told from an unknown user (README "Password hash formats")', function () {
  this.timeout(240_000);
  let app: TestApp;
  let hasher: PasswordHasher;
  let imported: Account;
  let native: Account;

  before(async function () {
    app = await startTestApp('sec_enumeration_imported', { overrides: { rateLimit: { enabled: false } } });
    hasher = (app.container.users as unknown as { opts: { hasher: PasswordHasher } }).opts.hasher;
    // What Supabase and Auth0 exports hold: bcrypt at cost 10, far slower than argon2id at OWASP's minimum.
    imported = await createAccount(app, 'enum-bcrypt');
    await storeHash(app, imported.username, await bcrypt.hash(imported.password, { cost: 10 }));
    native = await createAccount(app, 'enum-argon2');
    // What a server does at start (and every few minutes): measure the foreign hashes stored.
    await app.container.failureFloor.refresh();
    expect(hasher.failureFloor, 'a floor while a bcrypt hash is stored').to.be.above(0);
    for (let i = 0; i < 3; i++)
      for (const name of [imported.username, native.username, uniqueUsername('enum-warm')]) await timedLogin(app, name, 'not the password');
  });
  after(async () => app?.close());

  it(`by timing: bcrypt-imported user, argon2id user and unknown user, ${SAMPLES} each interleaved: Mann–Whitney U finds no difference (p ≥ ${ALPHA})`, async function () {
    const s = await sampleGroups(app, { bcrypt: imported.username, argon2id: native.username, unknown: uniqueUsername('enum-ghost') });
    console.log(`      failure floor ${hasher.failureFloor.toFixed(1)} ms`);
    expect(compare('bcrypt vs unknown', s.bcrypt, s.unknown, ['bcrypt', 'unknown']), 'p-value bcrypt vs unknown').to.be.at.least(ALPHA);
    expect(compare('argon2id vs unknown', s.argon2id, s.unknown, ['argon2id', 'unknown']), 'p-value argon2id vs unknown').to.be.at.least(ALPHA);
  });

  it('control: without the failure floor the same test tells a bcrypt user from an unknown one (p < α)', async function () {
    // Introduce the leak the floor closes: no floor, and none learnt from the verifications.
    const h = hasher as unknown as { floorMs: number; record?: unknown };
    const floor = h.floorMs;
    Object.defineProperty(hasher, 'record', { value: () => undefined, configurable: true });
    h.floorMs = 0;
    try {
      const s = await sampleGroups(app, { bcrypt: imported.username, unknown: uniqueUsername('enum-ghost') });
      expect(compare('control', s.bcrypt, s.unknown, ['bcrypt', 'unknown']), 'p-value without the floor').to.be.below(ALPHA);
    } finally {
      delete h.record;
      h.floorMs = floor;
    }
  });
});
