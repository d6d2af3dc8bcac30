import { expect } from 'chai';
import { AppError } from '../../src/platform/errors.js';
import { COMMON_PASSWORDS } from '../../src/core/users/common-passwords.js';
import { checkPasswordPolicy, type PasswordPolicyContext } from '../../src/core/users/password-policy.js';

function rejection(password: string, context?: PasswordPolicyContext): AppError {
  try {
    checkPasswordPolicy(password, context);
  } catch (err) {
    expect(err).to.be.instanceOf(AppError);
    return err as AppError;
  }
  expect.fail('expected the password to be rejected');
}

const UNCOMMON8 = 'zq7#Lm2!';

describe('COMMON_PASSWORDS', () => {
  it('holds at least 10,000 entries', () => {
    expect(COMMON_PASSWORDS.size).to.be.at.least(10_000);
  });

  it('holds only lowercased entries of at least 8 code points, without blanks', () => {
    for (const entry of COMMON_PASSWORDS) {
      expect([...entry].length, entry).to.be.at.least(8);
      expect(entry.toLowerCase(), entry).to.equal(entry);
    }
    expect(COMMON_PASSWORDS.has('')).to.equal(false);
  });

  it('contains well-known passwords', () => {
    expect(COMMON_PASSWORDS.has('password')).to.equal(true);
    expect(COMMON_PASSWORDS.has('password123')).to.equal(true);
    expect(COMMON_PASSWORDS.has('iloveyou')).to.equal(true);
  });
});

describe('checkPasswordPolicy', () => {
  describe('length in code points', () => {
    it('rejects 7 characters and accepts 8', () => {
      expect(COMMON_PASSWORDS.has(UNCOMMON8.toLowerCase())).to.equal(false);
      expect(rejection(UNCOMMON8.slice(0, 7)).detail).to.equal('password must be at least 8 characters');
      expect(() => checkPasswordPolicy(UNCOMMON8)).not.to.throw();
    });

    it('counts astral characters as one code point each', () => {
      const smile = '😀'; // .length 2
      // 4 code points but 8 UTF-16 units: too short.
      expect(rejection(smile.repeat(4)).detail).to.equal('password must be at least 8 characters');
      // 256 code points but 512 UTF-16 units: allowed.
      expect(() => checkPasswordPolicy(smile.repeat(256))).not.to.throw();
      expect(rejection(smile.repeat(257)).detail).to.equal('password must be at most 256 characters');
    });

    it('accepts 256 and rejects 257 multi-byte characters', () => {
      expect(() => checkPasswordPolicy('é'.repeat(256))).not.to.throw();
      expect(rejection('é'.repeat(257)).detail).to.equal('password must be at most 256 characters');
    });

    it('has no composition rules', () => {
      expect(() => checkPasswordPolicy('correct horse battery staple')).not.to.throw();
      expect(() => checkPasswordPolicy('qzvmxkwplrtj')).not.to.throw();
    });
  });

  describe('common passwords', () => {
    for (const pw of ['password123', 'Password123', 'PASSWORD123', 'iloveyou', 'ILoveYou']) {
      it(`rejects ${pw} case-insensitively`, () => {
        const err = rejection(pw);
        expect(err.code).to.equal('weak_password');
        expect(err.detail).to.equal('password is too common; choose a less common one');
      });
    }

    it('rejects fullwidth spellings of common passwords', () => {
      expect(rejection('ｐａｓｓｗｏｒｄ１２３').code).to.equal('weak_password');
    });
  });

  describe('username', () => {
    it('rejects a password equal to the username, case-insensitively', () => {
      expect(rejection('alice.smith', { username: 'alice.smith' }).detail).to.equal('password must not be the same as the username');
      expect(rejection('Alice.Smith', { username: 'alice.smith' }).code).to.equal('weak_password');
      expect(rejection('alice.smith', { username: 'ALICE.SMITH' }).code).to.equal('weak_password');
      expect(rejection('Ａｌｉｃｅ.smith', { username: 'alice.smith' }).code).to.equal('weak_password');
    });

    it('accepts a password that merely contains the username', () => {
      expect(() => checkPasswordPolicy('alice.smith-zq7#', { username: 'alice.smith' })).not.to.throw();
    });
  });

  describe('error shape', () => {
    it('uses weak_password, the default path and never echoes the password', () => {
      const cases: Array<[string, PasswordPolicyContext | undefined]> = [
        ['Sh0rt!x', undefined],
        ['x'.repeat(300), undefined],
        ['Password123', undefined],
        ['Bob.Example.Org', { username: 'bob.example.org' }],
      ];
      for (const [pw, context] of cases) {
        const err = rejection(pw, context);
        expect(err.code).to.equal('weak_password');
        expect(err.status).to.equal(400);
        expect(err.errors).to.have.length(1);
        expect(err.errors?.[0]?.path).to.equal('password');
        expect(err.errors?.[0]?.message).to.equal(err.detail);
        for (const text of [err.detail, err.message, err.errors?.[0]?.message ?? '']) {
          expect(text.toLowerCase()).not.to.include(pw.toLowerCase());
        }
      }
    });

    it('reports a configurable field path', () => {
      const err = rejection('short', { path: 'newPassword' });
      expect(err.errors).to.deep.equal([{ path: 'newPassword', message: err.detail }]);
    });
  });
});
