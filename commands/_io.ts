import { password as promptPassword } from '@inquirer/prompts';
import { AppError } from '../src/platform/errors.js';

/** Reads a password (or another secret) from standard input (one line; a single trailing newline is dropped). */
export async function readPasswordFromStdin(stream: NodeJS.ReadableStream = process.stdin, what = 'password'): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk));
  const text = Buffer.concat(chunks)
    .toString('utf8')
    .replace(/\r?\n$/, '');
  if (text.length === 0) throw new AppError('invalid_request', `no ${what} on standard input`);
  return text;
}

/**
 * A password from `--password-stdin`, or asked twice at a prompt. Never a flag: flags end up in
 * shell history and `ps`.
 */
export async function obtainPassword(fromStdin: boolean): Promise<string> {
  if (fromStdin) return readPasswordFromStdin();
  if (!process.stdin.isTTY) {
    throw new AppError('invalid_request', 'no terminal to ask for the password: pass it on standard input with --password-stdin');
  }
  const first = await promptPassword({ message: 'Password', mask: '*' });
  const second = await promptPassword({ message: 'Repeat password', mask: '*' });
  if (first !== second) throw new AppError('invalid_request', 'the passwords do not match');
  return first;
}

export { table } from '../src/cli/table.js';
