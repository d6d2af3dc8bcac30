import { expect } from 'chai';
import { v7 as uuidv7 } from 'uuid';
import { expectProblem, uniquePassword } from '../helpers/http-assert.js';
import { startEmailRegion, tag, type EmailRegion } from '../email/support.js';
import { mannWhitneyU } from '../security/mann-whitney.js';

// Per group and α as in test/security/email-enumeration.test.ts; AUTHCTL_ENUM_SAMPLES raises it.
const SAMPLES = Number(process.env.AUTHCTL_ENUM_SAMPLES ?? 60);
const ALPHA = 0.001;
const REDIS_URL = process.env.AUTHCTL_TEST_REDIS_URL ?? 'redis://127.0.0.1:6379';

interface Timed {
  status: number;
  text: string;
  headers: Record<string, string>;
  ms: number;
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
let serial = 0;
const address = (label: string) => `${label}-${Date.now().toString(36)}-${serial++}@example.test`;

/** The headers that may differ between two answers: they name the request or the moment. */
const VARYING = new Set(['x-request-id', 'date', 'content-length']);

async function timed(region: EmailRegion, path: string, json: unknown): Promise<Timed> {
  const started = performance.now();
  const res = await region.app.request(path, { method: 'POST', json });
  const text = await res.text();
  const headers = Object.fromEntries([...res.headers.entries()].filter(([name]) => !VARYING.has(name)).sort(([a], [b]) => a.localeCompare(b)));
  return { status: res.status, text, headers, ms: performance.now() - started };
}

/** Alternates the two kinds, so drift in machine load hits both groups alike. */
async function sample<K extends string>(kinds: readonly [K, K], send: (kind: K, i: number) => Promise<Timed>, check: (r: Timed) => void) {
  const out = { [kinds[0]]: [] as number[], [kinds[1]]: [] as number[] } as Record<K, number[]>;
  for (let i = 0; i < SAMPLES; i++) {
    for (const kind of i % 2 === 0 ? kinds : ([kinds[1], kinds[0]] as const)) {
      const r = await send(kind, i);
      check(r);
      out[kind].push(r.ms);
    }
  }
  return out;
}

function report(label: string, a: number[], b: number[]): number {
  const { u, z, p } = mannWhitneyU(a, b);
  console.log(`      ${label}: medians ${median(a).toFixed(2)} ms / ${median(b).toFixed(2)} ms; U=${u} z=${z.toFixed(2)} p=${p.toFixed(4)}`);
  return p;
}

describe('user enumeration by e-mailed sign-in codes (docs/api.md#e-mailed-sign-in-codes)', function () {
  this.timeout(300_000);
  let region: EmailRegion;
  /** Addresses with an account, one per sample (the send limits count per address). */
  const known: string[] = [];
  /** Accounts without a password (made by a code), one per sample. */
  const passwordless: string[] = [];
  /** Accounts with a password, one per sample. */
  const withPassword: string[] = [];

  before(async function () {
    // The send limits stay on, in Redis as in production, high enough that distinct addresses never reach them.
    region = await startEmailRegion('otp_enumeration', {
      cache: { redisUrl: REDIS_URL, keyPrefix: `otp-enum-${tag()}` },
      identity: { username: 'optional', sendInterval: 1, sendsPerHour: 1_000, sendsPerIpPerHour: 100_000 },
      rateLimit: { enabled: true, ipFailures: 100_000 },
      log: { level: 'warn' },
    });
    const users = region.app.container.repos.users;
    const now = new Date();
    const row = (email: string, passwordHash: string | null) => ({
      id: uuidv7(),
      username: null,
      email,
      emailVerifiedAt: now,
      passwordHash,
      status: 'active' as const,
      homeRegion: region.app.container.config.region,
      createdAt: now,
      updatedAt: now,
      passwordChangedAt: now,
    });
    const hash = await region.app.container.users.register({ email: address('otp-enum-hash'), password: uniquePassword() });
    for (let i = 0; i < SAMPLES + 3; i++) {
      for (const [list, h] of [
        [known, hash.passwordHash],
        [passwordless, null],
        [withPassword, hash.passwordHash],
      ] as const) {
        const email = address('otp-enum');
        await users.insert(row(email, h));
        list.push(email);
      }
    }
    // Warm both paths (connections, the JIT, the dummy hash).
    for (let i = SAMPLES; i < SAMPLES + 3; i++) {
      await timed(region, '/v1/auth/otp/send', { email: known[i] });
      await timed(region, '/v1/auth/otp/send', { email: address('otp-enum-warm') });
      await timed(region, '/v1/auth/login', { email: passwordless[i], password: uniquePassword() });
      await timed(region, '/v1/auth/login', { email: withPassword[i], password: uniquePassword() });
    }
  });
  after(async () => region?.close());

  it('otp/send by body and headers: a known and an unknown address answer 202 with identical bytes', async function () {
    const a = await timed(region, '/v1/auth/otp/send', { email: known[0] });
    const b = await timed(region, '/v1/auth/otp/send', { email: address('otp-enum-ghost') });
    expect([a.status, b.status]).to.deep.equal([202, 202]);
    expect(b.text).to.equal(a.text);
    expect(b.headers).to.deep.equal(a.headers);
  });

  it(`otp/send by timing: ${SAMPLES}+${SAMPLES} interleaved requests, Mann–Whitney U finds no difference (p ≥ ${ALPHA})`, async function () {
    let body: string | undefined;
    const s = await sample(
      ['known', 'unknown'],
      (kind, i) => timed(region, '/v1/auth/otp/send', { email: kind === 'known' ? known[i] : address('otp-enum-ghost') }),
      (r) => {
        expect(r.status).to.equal(202);
        body ??= r.text;
        expect(r.text).to.equal(body);
      },
    );
    expect(report('otp/send timing', s.known, s.unknown), 'p-value').to.be.at.least(ALPHA);
  });

  it(`a password login to an account without a password: the problem of a wrong password, in its time (p ≥ ${ALPHA})`, async function () {
    const a = await expectProblem(
      await region.app.request('/v1/auth/login', { method: 'POST', json: { email: passwordless[0], password: uniquePassword() } }),
      401,
      'invalid_credentials',
    );
    const b = await expectProblem(
      await region.app.request('/v1/auth/login', { method: 'POST', json: { email: withPassword[0], password: uniquePassword() } }),
      401,
      'invalid_credentials',
    );
    expect(a.detail).to.equal(b.detail);
    const s = await sample(
      ['none', 'wrong'],
      (kind, i) => timed(region, '/v1/auth/login', { email: kind === 'none' ? passwordless[i] : withPassword[i], password: uniquePassword() }),
      (r) => expect(r.status, r.text).to.equal(401),
    );
    expect(report('password-less login timing', s.none, s.wrong), 'p-value').to.be.at.least(ALPHA);
  });
});
