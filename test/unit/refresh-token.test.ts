import { expect } from 'chai';
import { ServerSecrets } from '../../src/core/keys/secrets.js';
import { homeRegionOf, RefreshTokenCodec, type RefreshTokenClaims } from '../../src/core/tokens/refresh-token.js';

const CURRENT = 'current-secret-0123456789-abcdefghijklmnopqrstuvwxyz';
const PREVIOUS = 'previous-secret-0123456789-abcdefghijklmnopqrstuvwxyz';
const OTHER = 'some-other-secret-0123456789-abcdefghijklmnopqrstuvwxyz';

const BASE64URL = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';
const CLAIMS: RefreshTokenClaims = { region: 'eu-west', sessionId: '0190f3c2-7a1b-7c3d-8e4f-a1b2c3d4e5f6', counter: 42 };

function codecFor(...secrets: [string, string?]): RefreshTokenCodec {
  return new RefreshTokenCodec(new ServerSecrets(secrets[0], secrets[1]).refreshMacKeys());
}

/** Splits `rt_<region>_<sessionId>_<counter>_<mac>` into the offsets of each segment. */
function segments(token: string): { region: [number, number]; sessionId: [number, number]; counter: [number, number]; mac: [number, number] } {
  const parts = /^rt_([^_]+)_([^_]+)_([^_]+)_(.+)$/.exec(token);
  if (!parts) throw new Error(`unexpected token shape: ${token}`);
  const regionStart = 3;
  const sessionStart = regionStart + parts[1]!.length + 1;
  const counterStart = sessionStart + parts[2]!.length + 1;
  const macStart = counterStart + parts[3]!.length + 1;
  return {
    region: [regionStart, sessionStart - 1],
    sessionId: [sessionStart, counterStart - 1],
    counter: [counterStart, macStart - 1],
    mac: [macStart, token.length],
  };
}

function replaceAt(token: string, index: number, ch: string): string {
  return token.slice(0, index) + ch + token.slice(index + 1);
}

describe('RefreshTokenCodec', function () {
  const codec = codecFor(CURRENT);

  it('round-trips claims through encode and decode', function () {
    const token = codec.encode(CLAIMS);
    expect(token.startsWith('rt_eu-west_0190f3c2-7a1b-7c3d-8e4f-a1b2c3d4e5f6_42_')).to.equal(true);
    expect(codec.decode(token)).to.deep.equal(CLAIMS);
  });

  it('round-trips counter 1 and a large counter', function () {
    for (const counter of [1, 999_999_999_999_999]) {
      const claims = { ...CLAIMS, counter };
      expect(codec.decode(codec.encode(claims))).to.deep.equal(claims);
    }
  });

  it('has a MAC of at least 128 bits (22 base64url characters)', function () {
    const token = codec.encode(CLAIMS);
    const mac = token.slice(segments(token).mac[0]);
    expect(mac).to.match(/^[A-Za-z0-9_-]{22,}$/);
    expect(Buffer.from(mac, 'base64url').length * 8).to.be.at.least(128);
  });

  it('rejects every single-character change of the MAC', function () {
    const token = codec.encode(CLAIMS);
    const [start, end] = segments(token).mac;
    const accepted: string[] = [];
    for (let i = start; i < end; i++) {
      for (const ch of BASE64URL) {
        if (ch === token[i]) continue;
        const altered = replaceAt(token, i, ch);
        if (codec.decode(altered) !== undefined) accepted.push(altered);
      }
    }
    // Each token must have exactly one accepted spelling; otherwise tokens are malleable.
    expect(accepted, `altered MACs accepted, e.g. ${accepted[0]}`).to.have.length(0);
  });

  it('rejects every single-character change of the counter', function () {
    const token = codec.encode(CLAIMS);
    const [start, end] = segments(token).counter;
    for (let i = start; i < end; i++) {
      for (const ch of '0123456789a_-') {
        if (ch === token[i]) continue;
        expect(codec.decode(replaceAt(token, i, ch)), `counter position ${i - start} → ${ch}`).to.equal(undefined);
      }
    }
  });

  it('rejects every single-character change of the session id', function () {
    const token = codec.encode(CLAIMS);
    const [start, end] = segments(token).sessionId;
    for (let i = start; i < end; i++) {
      for (const ch of '0123456789abcdefA-_') {
        if (ch === token[i]) continue;
        expect(codec.decode(replaceAt(token, i, ch)), `session id position ${i - start} → ${ch}`).to.equal(undefined);
      }
    }
  });

  it('rejects every single-character change of the region', function () {
    const token = codec.encode(CLAIMS);
    const [start, end] = segments(token).region;
    for (let i = start; i < end; i++) {
      for (const ch of 'abcdefghijklmnopqrstuvwxyz0123456789-_A') {
        if (ch === token[i]) continue;
        expect(codec.decode(replaceAt(token, i, ch)), `region position ${i - start} → ${ch}`).to.equal(undefined);
      }
    }
  });

  it('rejects a token whose claims were swapped but MAC kept', function () {
    const token = codec.encode(CLAIMS);
    const mac = token.slice(segments(token).mac[0]);
    expect(codec.decode(`rt_${CLAIMS.region}_${CLAIMS.sessionId}_${CLAIMS.counter + 1}_${mac}`)).to.equal(undefined);
    expect(codec.decode(`rt_us-east_${CLAIMS.sessionId}_${CLAIMS.counter}_${mac}`)).to.equal(undefined);
  });

  it('rejects a non-canonical counter (leading zero) even with a valid MAC', function () {
    const token = codec.encode(CLAIMS);
    const mac = token.slice(segments(token).mac[0]);
    expect(codec.decode(`rt_${CLAIMS.region}_${CLAIMS.sessionId}_0${CLAIMS.counter}_${mac}`)).to.equal(undefined);
  });

  it('rejects a token made with another secret', function () {
    const foreign = codecFor(OTHER).encode(CLAIMS);
    expect(foreign).not.to.equal(codec.encode(CLAIMS));
    expect(codec.decode(foreign)).to.equal(undefined);
  });

  it('accepts tokens of the previous secret during a rotation and issues with the current one', function () {
    const old = codecFor(PREVIOUS);
    const rotating = codecFor(CURRENT, PREVIOUS);
    const oldToken = old.encode(CLAIMS);
    expect(rotating.decode(oldToken)).to.deep.equal(CLAIMS);

    const newToken = rotating.encode(CLAIMS);
    expect(newToken).to.equal(codecFor(CURRENT).encode(CLAIMS));
    expect(newToken).not.to.equal(oldToken);
    // A server that only knows the old secret cannot read the new tokens.
    expect(old.decode(newToken)).to.equal(undefined);
    // And once the previous secret is dropped, its tokens are refused.
    expect(codecFor(CURRENT).decode(oldToken)).to.equal(undefined);
  });

  it('rejects malformed input', function () {
    const token = codec.encode(CLAIMS);
    const upperUuid = token.replace(CLAIMS.sessionId, CLAIMS.sessionId.toUpperCase());
    const inputs: unknown[] = [
      undefined,
      null,
      42,
      {},
      [token],
      Buffer.from(token),
      '',
      'rt_',
      token + 'x'.repeat(200),
      'x'.repeat(161),
      token.replace(/^rt_/, 'at_'),
      token.replace(/^rt_/, 'RT_'),
      token.replace(/^rt_/, ''),
      upperUuid,
      `${token}_extra`,
      `rt_${CLAIMS.region}_${CLAIMS.sessionId}_${CLAIMS.sessionId}_${CLAIMS.counter}_${token.slice(segments(token).mac[0])}`,
      ` ${token}`,
      `${token} `,
      `${token}\n`,
      token.slice(0, -1),
      `${token}A`,
      `rt_${CLAIMS.region}_${CLAIMS.sessionId}_-1_${token.slice(segments(token).mac[0])}`,
    ];
    for (const input of inputs) {
      expect(codec.decode(input), `input ${JSON.stringify(String(input)).slice(0, 80)}`).to.equal(undefined);
    }
    // Sanity: the untouched token is accepted, so the rejections above are the checks at work.
    expect(codec.decode(token)).to.deep.equal(CLAIMS);
  });

  it('gives different tokens for consecutive counters', function () {
    const seen = new Set<string>();
    for (let counter = 1; counter <= 50; counter++) seen.add(codec.encode({ ...CLAIMS, counter }));
    expect(seen.size).to.equal(50);
    const macs = new Set([...seen].map((t) => t.slice(segments(t).mac[0])));
    expect(macs.size).to.equal(50);
  });

  it('is deterministic: the same claims always give the same token, across instances', function () {
    const a = codec.encode(CLAIMS);
    expect(codec.encode({ ...CLAIMS })).to.equal(a);
    expect(codecFor(CURRENT).encode(CLAIMS)).to.equal(a);
  });

  it('refuses to be built without a key', function () {
    expect(() => new RefreshTokenCodec([])).to.throw();
  });
});

describe('homeRegionOf', function () {
  const codec = codecFor(CURRENT);

  it('reads the region the codec wrote, from the prefix alone (a forged MAC does not matter for routing)', function () {
    const token = codec.encode(CLAIMS);
    expect(homeRegionOf(token)).to.equal(codec.decode(token)!.region);
    expect(homeRegionOf(`rt_us_${'x'.repeat(10)}`)).to.equal('us');
  });

  it('names no region for what is not shaped like a refresh token', function () {
    for (const token of [undefined, null, 42, {}, '', 'rt__x', 'rt_EU_x', 'rt_9eu_x', `rt_${'a'.repeat(33)}_x`, 'at_eu_x', 'rt_eu']) {
      expect(homeRegionOf(token), JSON.stringify(token) ?? 'undefined').to.equal(undefined);
    }
  });
});
