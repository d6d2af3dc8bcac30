import { expect } from 'chai';
import { ServerSecrets } from '../../src/core/keys/secrets.js';
import { AppError } from '../../src/platform/errors.js';

const CURRENT = 'current-secret-0123456789-abcdefghijklmnopqrstuvwxyz';
const PREVIOUS = 'previous-secret-0123456789-abcdefghijklmnopqrstuvwxyz';
const OTHER = 'some-other-secret-0123456789-abcdefghijklmnopqrstuvwxyz';

const PLAINTEXT = JSON.stringify({ kty: 'OKP', crv: 'Ed25519', x: 'public-part-xyz', d: 'private-part-0123456789abcdef' });
const CONTEXT = 'kid-123';

function expectBadConfig(fn: () => unknown): AppError {
  try {
    fn();
  } catch (err) {
    expect(err).to.be.instanceOf(AppError);
    expect((err as AppError).code).to.equal('bad_config');
    return err as AppError;
  }
  expect.fail('expected a bad_config AppError');
}

describe('ServerSecrets', function () {
  it('seal/open round-trips', function () {
    const secrets = new ServerSecrets(CURRENT);
    const sealed = secrets.seal(PLAINTEXT, CONTEXT);
    expect(secrets.open(sealed, CONTEXT)).to.equal(PLAINTEXT);
    // A fresh instance with the same secret opens it too (nothing depends on instance state).
    expect(new ServerSecrets(CURRENT).open(sealed, CONTEXT)).to.equal(PLAINTEXT);
  });

  it('round-trips non-ASCII and long plaintexts', function () {
    const secrets = new ServerSecrets(CURRENT);
    for (const text of ['ünïcødé ✓ 鍵', 'x'.repeat(10_000)]) {
      expect(secrets.open(secrets.seal(text, CONTEXT), CONTEXT)).to.equal(text);
    }
  });

  it('round-trips the empty plaintext (whatever seal produces, open accepts)', function () {
    const secrets = new ServerSecrets(CURRENT);
    expect(secrets.open(secrets.seal('', CONTEXT), CONTEXT)).to.equal('');
  });

  it('does not reveal the plaintext (raw or base64) and never repeats a ciphertext', function () {
    const secrets = new ServerSecrets(CURRENT);
    const sealed = secrets.seal(PLAINTEXT, CONTEXT);
    expect(sealed).not.to.include(PLAINTEXT);
    expect(sealed).not.to.include('private-part-0123456789abcdef');
    expect(sealed).not.to.include('"d"');
    expect(sealed).not.to.include(Buffer.from(PLAINTEXT).toString('base64url').slice(0, 16));
    expect(sealed).not.to.include(Buffer.from(PLAINTEXT).toString('base64').slice(0, 16));
    expect(sealed).not.to.include(CURRENT);
    // Random IV: sealing twice gives two different values.
    expect(secrets.seal(PLAINTEXT, CONTEXT)).not.to.equal(sealed);
    expect(() => {
      JSON.parse(sealed);
    }).to.throw(SyntaxError);
  });

  it('fails to open with a different context', function () {
    const secrets = new ServerSecrets(CURRENT);
    const sealed = secrets.seal(PLAINTEXT, CONTEXT);
    expectBadConfig(() => secrets.open(sealed, 'kid-456'));
    expectBadConfig(() => secrets.open(sealed, ''));
  });

  it('fails with bad_config when opened by a ServerSecrets lacking the sealing secret', function () {
    const sealed = new ServerSecrets(CURRENT).seal(PLAINTEXT, CONTEXT);
    const err = expectBadConfig(() => new ServerSecrets(OTHER).open(sealed, CONTEXT));
    expect(err.exitCode).to.equal(78);
    expect(err.detail).not.to.include(CURRENT);
    expectBadConfig(() => new ServerSecrets(OTHER, PREVIOUS).open(sealed, CONTEXT));
  });

  it('fails with bad_config on tampered or malformed input', function () {
    const secrets = new ServerSecrets(CURRENT);
    const sealed = secrets.seal(PLAINTEXT, CONTEXT);
    const parts = sealed.split('.');
    expect(parts).to.have.length(5);
    const flip = (s: string) => (s[0] === 'A' ? 'B' : 'A') + s.slice(1);
    for (const index of [2, 3, 4]) {
      const tampered = parts.map((p, i) => (i === index ? flip(p) : p)).join('.');
      expectBadConfig(() => secrets.open(tampered, CONTEXT));
    }
    expectBadConfig(() => secrets.open('', CONTEXT));
    expectBadConfig(() => secrets.open('garbage', CONTEXT));
    expectBadConfig(() => secrets.open(['v2', ...parts.slice(1)].join('.'), CONTEXT));
  });

  it('opens a value sealed under the old current secret once it is configured as previous', function () {
    const oldSealed = new ServerSecrets(PREVIOUS).seal(PLAINTEXT, CONTEXT);
    const rotating = new ServerSecrets(CURRENT, PREVIOUS);
    expect(rotating.open(oldSealed, CONTEXT)).to.equal(PLAINTEXT);
    // New seals use the current secret: a server with only the current secret opens them,
    // a server with only the old one does not.
    const newSealed = rotating.seal(PLAINTEXT, CONTEXT);
    expect(new ServerSecrets(CURRENT).open(newSealed, CONTEXT)).to.equal(PLAINTEXT);
    expectBadConfig(() => new ServerSecrets(PREVIOUS).open(newSealed, CONTEXT));
    // Without the previous secret, the old value can no longer be opened.
    expectBadConfig(() => new ServerSecrets(CURRENT).open(oldSealed, CONTEXT));
  });

  it('derives refresh MAC keys per secret, current first', function () {
    const single = new ServerSecrets(CURRENT).refreshMacKeys();
    const rotating = new ServerSecrets(CURRENT, PREVIOUS).refreshMacKeys();
    const old = new ServerSecrets(PREVIOUS).refreshMacKeys();
    expect(single).to.have.length(1);
    expect(rotating).to.have.length(2);
    expect(rotating[0]!.equals(single[0]!)).to.equal(true);
    expect(rotating[1]!.equals(old[0]!)).to.equal(true);
    expect(single[0]!.equals(old[0]!)).to.equal(false);
    // The MAC key is derived, never the secret itself.
    expect(single[0]!.equals(Buffer.from(CURRENT))).to.equal(false);
    expect(single[0]!.length).to.be.at.least(32);
  });
});
