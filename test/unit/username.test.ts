import { expect } from 'chai';
import { AppError } from '../../src/platform/errors.js';
import { foldUsername, normalizeUsername, USERNAME_RULES } from '../../src/core/users/username.js';

function rejection(raw: string): AppError {
  try {
    normalizeUsername(raw);
  } catch (err) {
    expect(err).to.be.instanceOf(AppError);
    return err as AppError;
  }
  expect.fail(`expected ${JSON.stringify(raw)} to be rejected`);
}

describe('normalizeUsername', () => {
  describe('normalization and case folding', () => {
    it('maps fullwidth compatibility forms to ASCII', () => {
      expect(normalizeUsername('Ａｌｉｃｅ')).to.equal('alice');
    });

    it('folds case so that ALICE and alice are the same user', () => {
      expect(normalizeUsername('ALICE')).to.equal(normalizeUsername('alice'));
      expect(normalizeUsername('ALICE')).to.equal('alice');
    });

    it('decomposes the ﬁ ligature', () => {
      expect(normalizeUsername('ﬁnn')).to.equal('finn');
      expect(normalizeUsername('FINN')).to.equal(normalizeUsername('ﬁnn'));
    });

    it('maps mathematical alphanumerics to plain letters', () => {
      expect(normalizeUsername('𝐁𝐨𝐛')).to.equal('bob');
    });

    it('is idempotent, including where lowercasing adds a combining mark (İ)', () => {
      const once = normalizeUsername('İstanbul');
      expect(once).to.equal('i\u0307stanbul');
      expect(normalizeUsername(once)).to.equal(once);
      expect(foldUsername(once)).to.equal(once);
    });

    it('keeps letters of other scripts, including combining marks (Devanagari)', () => {
      expect(normalizeUsername('नमस्ते')).to.equal('नमस्ते');
      expect(normalizeUsername('Ωμέγα')).to.equal('ωμέγα');
    });

    it('accepts the allowed punctuation and digits', () => {
      expect(normalizeUsername('a.b_c-d@e.example')).to.equal('a.b_c-d@e.example');
      expect(normalizeUsername('user_2024')).to.equal('user_2024');
    });
  });

  describe('length in code points', () => {
    it('accepts 3 and 64 characters', () => {
      expect(normalizeUsername('abc')).to.equal('abc');
      expect(normalizeUsername('a'.repeat(64))).to.equal('a'.repeat(64));
    });

    it('rejects 2 and 65 characters', () => {
      expect(rejection('ab').detail).to.equal('username must be 3–64 characters');
      expect(rejection('a'.repeat(65)).detail).to.equal('username must be 3–64 characters');
      expect(rejection('').code).to.equal('invalid_request');
    });

    it('counts astral letters as one character each', () => {
      const gothic = '𐌰'; // U+10330 GOTHIC LETTER AHSA: a letter outside the BMP, .length 2
      expect(gothic.length).to.equal(2);
      expect(normalizeUsername(gothic.repeat(64))).to.equal(gothic.repeat(64));
      expect(rejection(gothic.repeat(65)).detail).to.equal('username must be 3–64 characters');
      expect(rejection('𐌰').detail).to.equal('username must be 3–64 characters');
    });

    it('measures the length after normalization', () => {
      // "ﬁ" is one code point but becomes two ("fi"), so 63 + 1 ligature = 65 after NFKC.
      expect(rejection('a'.repeat(63) + 'ﬁ').detail).to.equal('username must be 3–64 characters');
    });
  });

  describe('disallowed characters', () => {
    const bad: Array<[string, string]> = [
      ['space', 'ali ce'],
      ['no-break space (NFKC → space)', 'ali\u00a0ce'],
      ['tab', 'ali\tce'],
      ['newline', 'alice\n'],
      ['NUL', 'ali\u0000ce'],
      ['zero-width joiner', 'ali\u200dce'],
      ['zero-width space', 'ali\u200bce'],
      ['right-to-left override', 'ali\u202ece'],
      ['HTML', '<script>'],
      ['emoji', 'alice😀'],
      ['slash', 'ali/ce'],
      ['plus', 'alice+x'],
      ['lone surrogate', 'ali\ud800ce'],
    ];
    for (const [name, raw] of bad) {
      it(`rejects ${name}`, () => {
        const err = rejection(raw);
        expect(err.code).to.equal('invalid_request');
        expect(err.detail).to.equal('username may contain only letters, digits and . _ - @');
        expect(err.errors).to.deep.equal([{ path: 'username', message: err.detail }]);
      });
    }
  });

  it('exports a rules summary for help text', () => {
    expect(USERNAME_RULES).to.include('3–64');
  });
});
