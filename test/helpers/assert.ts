import { expect } from 'chai';
import type { Container } from '../../src/container.js';
import type { AuthService, TokenResponse } from '../../src/core/auth/auth-service.js';
import type { ClientMeta, IssuedSession } from '../../src/core/sessions/session-service.js';
import type { SessionOwner } from '../../src/model/session.js';
import { AppError } from '../../src/platform/errors.js';

/** Awaits `promise` and asserts it rejects with an AppError of `code`; returns that error. */
export async function rejectsWith(promise: Promise<unknown>, code: string): Promise<AppError> {
  try {
    await promise;
  } catch (err) {
    expect(err, String(err)).to.be.instanceOf(AppError);
    expect((err as AppError).code, (err as AppError).detail).to.equal(code);
    return err as AppError;
  }
  expect.fail(`expected the promise to reject with ${code}`);
}

/** A stored session for `owner`, made the way a password login makes one (open, then save). */
export async function startSession(c: Container, owner: SessionOwner, meta: ClientMeta): Promise<IssuedSession> {
  const issued = c.sessions.open(owner, meta, { authTime: c.clock.now(), amr: ['pwd'] });
  await c.sessions.save(issued);
  return issued;
}

/** Logs in through the core and returns the tokens; fails the test when a second factor is asked for instead. */
export async function loginTokens(auth: Pick<AuthService, 'login'>, ...args: Parameters<AuthService['login']>): Promise<TokenResponse> {
  const result = await auth.login(...args);
  if ('mfaRequired' in result) expect.fail('the login asked for a second factor');
  return result;
}
