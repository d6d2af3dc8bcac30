import { execFile } from 'node:child_process';
import { promisify } from 'node:util';

const run = promisify(execFile);
const PYTHON = '/usr/bin/python3';

// argon2-cffi (Debian python3-argon2) binds libargon2, the reference implementation, whose
// decoder wants the PHC string's parameters in the order m, t, p.
const VERIFY_PY = `
import sys, argon2
hasher = argon2.PasswordHasher()
try:
    hasher.verify(sys.argv[1], sys.argv[2])
    print("match")
except argon2.exceptions.VerifyMismatchError:
    print("mismatch")
except argon2.exceptions.VerificationError as e:
    print("refused: " + str(e))
`;

/** What libargon2 says of `password` against `hash`: "match", "mismatch" or "refused: <why>". */
export async function libargon2(hash: string, password: string): Promise<string> {
  const { stdout } = await run(PYTHON, ['-c', VERIFY_PY, hash, password]);
  return stdout.trim();
}

/** Whether argon2-cffi is installed (it must be in CI). */
export async function haveArgon2Cffi(): Promise<boolean> {
  try {
    await run(PYTHON, ['-c', 'import argon2']);
    return true;
  } catch {
    if (process.env.CI) throw new Error(`${PYTHON} has no argon2 module; .ci/run installs python3-argon2`);
    return false;
  }
}
