import { expect } from 'chai';
import { signRequest, verifyRequest, HEADER_SIGNATURE, HEADER_TIMESTAMP, SIGNATURE_WINDOW_MS } from '../../src/core/replication/signature.js';

const SECRET = 'a-peer-secret-that-is-long-enough-0123456789';

describe('replication request signatures', () => {
  const body = Buffer.from('{"origin":"eu","batchId":"1-2-2","changes":[]}');
  const now = 1_800_000_000_000;
  const signed = signRequest(SECRET, 'eu', body, now);
  const check = (overrides: { secret?: string; origin?: string; body?: Buffer; at?: number; ts?: string | undefined; sig?: string | undefined } = {}) =>
    verifyRequest(
      overrides.secret ?? SECRET,
      overrides.origin ?? 'eu',
      'ts' in overrides ? overrides.ts : signed[HEADER_TIMESTAMP],
      'sig' in overrides ? overrides.sig : signed[HEADER_SIGNATURE],
      overrides.body ?? body,
      overrides.at ?? now,
    );

  it('accepts the exact request within the window', () => {
    expect(check()).to.equal('ok');
    expect(check({ at: now + SIGNATURE_WINDOW_MS })).to.equal('ok');
  });

  it('refuses another secret, another origin, another body, a moved timestamp, and missing parts', () => {
    expect(check({ secret: `${SECRET}x` })).to.equal('forged');
    expect(check({ origin: 'us' })).to.equal('forged');
    expect(check({ body: Buffer.from(body.toString().replace('[]', '[{}]')) })).to.equal('forged');
    expect(check({ ts: String(now + 1) })).to.equal('forged');
    expect(check({ sig: 'v1=' })).to.equal('forged');
    expect(check({ ts: undefined })).to.equal('missing');
    expect(check({ sig: undefined })).to.equal('missing');
    expect(check({ sig: signed[HEADER_SIGNATURE]!.slice(3) })).to.equal('missing');
  });

  it('refuses an authentic request outside the 5-minute window (replay)', () => {
    expect(check({ at: now + SIGNATURE_WINDOW_MS + 1 })).to.equal('stale');
    expect(check({ at: now - SIGNATURE_WINDOW_MS - 1 })).to.equal('stale');
  });
});
