import { expect } from 'chai';
import { AppError } from '../../src/errors.js';

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
