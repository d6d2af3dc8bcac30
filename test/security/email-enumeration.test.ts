import { expect } from 'chai';
import { validate as isUuid } from 'uuid';
import { startEmailRegion, type EmailRegion } from '../email/support.js';
import { uniquePassword } from '../helpers/http-assert.js';
import { mannWhitneyU } from './mann-whitney.js';

// Per group, as in enumeration.test.ts (the login's test), with the same α.
// AUTHCTL_ENUM_SAMPLES raises it, to look for a smaller difference than 60 can show.
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

function comparableHeaders(res: Response): Record<string, string> {
  return Object.fromEntries([...res.headers.entries()].filter(([name]) => !VARYING.has(name)).sort(([a], [b]) => a.localeCompare(b)));
}

async function timed(region: EmailRegion, path: string, json: unknown): Promise<Timed> {
  const started = performance.now();
  const res = await region.app.request(path, { method: 'POST', json });
  const text = await res.text();
  return { status: res.status, text, headers: comparableHeaders(res), ms: performance.now() - started };
}

/**
 * Alternates the two kinds of request, so drift in machine load hits both groups alike. Each
 * request names an address of its own (`known(i)`, `unknown(i)`): the send limits are on, and a
 * second request for one address within `identity.sendInterval` would take the limit's shortcut.
 */
async function sample(
  send: (kind: 'known' | 'unknown', i: number) => Promise<Timed>,
  check: (r: Timed, kind: 'known' | 'unknown') => void,
): Promise<{ known: number[]; unknown: number[] }> {
  const out = { known: [] as number[], unknown: [] as number[] };
  for (let i = 0; i < SAMPLES; i++) {
    const order = i % 2 === 0 ? (['known', 'unknown'] as const) : (['unknown', 'known'] as const);
    for (const kind of order) {
      const r = await send(kind, i);
      check(r, kind);
      out[kind].push(r.ms);
    }
  }
  return out;
}

function report(label: string, s: { known: number[]; unknown: number[] }): number {
  const { u, z, p } = mannWhitneyU(s.known, s.unknown);
  console.log(
    `      ${label}: median known ${median(s.known).toFixed(2)} ms, unknown ${median(s.unknown).toFixed(2)} ms; U=${u} z=${z.toFixed(2)} p=${p.toFixed(4)}`,
  );
  return p;
}

describe('user enumeration by e-mail address (forgot, sign-up, verify/send; docs/api.md#e-mail-flows)', function () {
  this.timeout(300_000);
  let region: EmailRegion;
  /** Addresses with an account, one per sample and flow (the send limits count per address and kind). */
  const known: string[] = [];

  before(async function () {
    // The send limits stay on (in Redis, as in production, so each check costs what it costs
    // there), with limits high enough that distinct addresses never reach them.
    region = await startEmailRegion('sec_email_enumeration', {
      cache: { redisUrl: REDIS_URL, keyPrefix: `enum-${Date.now().toString(36)}` },
      identity: { email: 'optional', username: 'optional', requireVerifiedEmail: true, sendInterval: 1, sendsPerHour: 1_000, sendsPerIpPerHour: 100_000 },
      rateLimit: { enabled: true, registerPerIp: 100_000, ipFailures: 100_000 },
      log: { level: 'warn' },
    });
    for (let i = 0; i < SAMPLES + 3; i++) {
      const email = address('enum-known');
      const res = await region.app.request('/v1/auth/register', { method: 'POST', json: { email, password: uniquePassword() } });
      expect(res.status, await res.clone().text()).to.equal(201);
      known.push(email);
    }
    // Warm both paths of each flow (connections, the JIT, the dummy paths).
    for (const email of known.slice(SAMPLES)) {
      await timed(region, '/v1/auth/password/forgot', { email });
      await timed(region, '/v1/auth/password/forgot', { email: address('enum-warm') });
      await timed(region, '/v1/auth/register', { email, password: uniquePassword() });
      await timed(region, '/v1/auth/register', { email: address('enum-warm'), password: uniquePassword() });
    }
  });
  after(async () => region?.close());

  describe('POST /v1/auth/password/forgot', function () {
    it('by body and headers: a known and an unknown address answer 202 with identical bytes', async function () {
      const a = await timed(region, '/v1/auth/password/forgot', { email: known[0] });
      const b = await timed(region, '/v1/auth/password/forgot', { email: address('enum-ghost') });
      expect(a.status).to.equal(202);
      expect(b.status).to.equal(202);
      expect(b.text).to.equal(a.text);
      expect(b.headers).to.deep.equal(a.headers);
    });

    it(`by timing: ${SAMPLES}+${SAMPLES} interleaved requests, Mann–Whitney U finds no difference (p ≥ ${ALPHA})`, async function () {
      let body: string | undefined;
      const s = await sample(
        (kind, i) => timed(region, '/v1/auth/password/forgot', { email: kind === 'known' ? known[i] : address('enum-ghost') }),
        (r) => {
          expect(r.status).to.equal(202);
          body ??= r.text;
          expect(r.text).to.equal(body);
        },
      );
      expect(report('forgot timing', s), 'p-value').to.be.at.least(ALPHA);
    });
  });

  describe('POST /v1/auth/register with identity.requireVerifiedEmail', function () {
    const shape = (text: string) => {
      const body = JSON.parse(text) as { user: Record<string, unknown> };
      return { keys: Object.keys(body).sort(), userKeys: Object.keys(body.user).sort(), user: body.user };
    };

    it('by body: a taken and a fresh address answer 201 with the same shape (unverified, a valid uuid)', async function () {
      const taken = await timed(region, '/v1/auth/register', { email: known[1], password: uniquePassword() });
      const fresh = await timed(region, '/v1/auth/register', { email: address('enum-fresh'), password: uniquePassword() });
      expect(taken.status).to.equal(201);
      expect(fresh.status).to.equal(201);
      expect(taken.headers).to.deep.equal(fresh.headers);
      const t = shape(taken.text);
      const f = shape(fresh.text);
      expect(t.keys).to.deep.equal(f.keys);
      expect(t.userKeys).to.deep.equal(f.userKeys);
      for (const user of [t.user, f.user]) {
        expect(user.emailVerified).to.equal(false);
        expect(isUuid(user.id), String(user.id)).to.equal(true);
        expect(user.username).to.equal(null);
      }
    });

    it(`by timing: ${SAMPLES}+${SAMPLES} interleaved sign-ups, Mann–Whitney U finds no difference (p ≥ ${ALPHA})`, async function () {
      const s = await sample(
        (kind, i) => timed(region, '/v1/auth/register', { email: kind === 'known' ? known[i] : address('enum-fresh'), password: uniquePassword() }),
        (r) => expect(r.status, r.text).to.equal(201),
      );
      expect(report('sign-up timing', s), 'p-value').to.be.at.least(ALPHA);
    });
  });

  describe('POST /v1/auth/email/verify/send without a token', function () {
    it('by body and headers: a known and an unknown address answer 202 with identical bytes', async function () {
      const a = await timed(region, '/v1/auth/email/verify/send', { email: known[2] });
      const b = await timed(region, '/v1/auth/email/verify/send', { email: address('enum-ghost') });
      expect(a.status).to.equal(202);
      expect(b.status).to.equal(202);
      expect(b.text).to.equal(a.text);
      expect(b.headers).to.deep.equal(a.headers);
    });
  });
});
