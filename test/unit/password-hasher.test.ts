import { expect } from 'chai';
import { OWASP_ARGON2_MINIMUM, PasswordHasher } from '../../src/core/users/password-hasher.js';

function phcParams(hash: string): Record<string, string> {
  const match = /^\$argon2id\$v=19\$([^$]+)\$[^$]+\$[^$]+$/.exec(hash);
  expect(match, hash).not.to.equal(null);
  return Object.fromEntries((match?.[1] ?? '').split(',').map((kv) => kv.split('=') as [string, string]));
}

describe('PasswordHasher', function () {
  this.timeout(30_000);

  const hasher = new PasswordHasher(OWASP_ARGON2_MINIMUM);
  const weak = new PasswordHasher({ memoryCost: 8192, timeCost: 1, parallelism: 1 });

  it('exports the OWASP minimum parameters', () => {
    expect(OWASP_ARGON2_MINIMUM).to.deep.equal({ memoryCost: 19456, timeCost: 2, parallelism: 1 });
    expect(new PasswordHasher().params).to.deep.equal(OWASP_ARGON2_MINIMUM);
  });

  it('hashes with argon2id v=19 and the given parameters', async () => {
    const hash = await hasher.hash('correct horse battery staple');
    expect(hash.startsWith('$argon2id$v=19$')).to.equal(true);
    expect(phcParams(hash)).to.deep.equal({ m: '19456', t: '2', p: '1' });
    expect(phcParams(await weak.hash('x'))).to.deep.equal({ m: '8192', t: '1', p: '1' });
  });

  it('salts every hash', async () => {
    expect(await hasher.hash('same password')).not.to.equal(await hasher.hash('same password'));
  });

  it('verifies the right password and refuses a wrong one', async () => {
    const hash = await hasher.hash('correct horse battery staple');
    expect(await hasher.verify(hash, 'correct horse battery staple')).to.equal(true);
    expect(await hasher.verify(hash, 'correct horse battery stapl')).to.equal(false);
    expect(await hasher.verify(hash, 'Correct horse battery staple')).to.equal(false);
  });

  it('verifies hashes made with other parameters', async () => {
    const hash = await weak.hash('older password');
    expect(await hasher.verify(hash, 'older password')).to.equal(true);
  });

  it('returns false instead of throwing on a malformed hash', async () => {
    const good = await hasher.hash('pw');
    for (const bad of ['', 'garbage', '$argon2id$', '$argon2id$v=19$m=19456,t=2,p=1$', good.slice(0, -10), '$2b$10$abcdefghijklmnopqrstuv']) {
      expect(await hasher.verify(bad, 'pw'), bad).to.equal(false);
    }
  });

  it('needsRehash is false for current parameters and true for weaker ones', async () => {
    expect(hasher.needsRehash(await hasher.hash('pw'))).to.equal(false);
    expect(hasher.needsRehash(await weak.hash('pw'))).to.equal(true);
    expect(weak.needsRehash(await hasher.hash('pw'))).to.equal(true);
  });

  it('needsRehash is true for non-argon2id or unparsable hashes', () => {
    expect(hasher.needsRehash('$argon2i$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA')).to.equal(true);
    expect(hasher.needsRehash('garbage')).to.equal(true);
  });

  it('no hash (an account made by an e-mailed code) matches no password, after one real verification', async () => {
    const ops: string[] = [];
    const h = new PasswordHasher(OWASP_ARGON2_MINIMUM, (op) => ops.push(op));
    for (const password of ['', 'null', 'anything']) expect(await h.verify(null, password), password).to.equal(false);
    // The dummy hash is made once; every call costs one argon2id verification, as a wrong password does.
    expect(ops.filter((op) => op === 'verify')).to.have.length(3);
    expect(ops.filter((op) => op === 'hash')).to.have.length(1);
  });

  it('dummyVerify runs a real verification against one lazily computed hash', async () => {
    const h = new PasswordHasher(OWASP_ARGON2_MINIMUM);
    const seen: string[] = [];
    const results: boolean[] = [];
    const realVerify = h.verify.bind(h);
    h.verify = async (hash: string, password: string) => {
      seen.push(hash);
      const ok = await realVerify(hash, password);
      results.push(ok);
      return ok;
    };
    expect(await h.dummyVerify('anything')).to.equal(undefined);
    expect(await h.dummyVerify('something else')).to.equal(undefined);
    expect(seen).to.have.length(2);
    expect(seen[0]).to.equal(seen[1]);
    expect(phcParams(seen[0] ?? '')).to.deep.equal({ m: '19456', t: '2', p: '1' });
    expect(results).to.deep.equal([false, false]);
  });
});
