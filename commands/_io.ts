import { password as promptPassword } from '@inquirer/prompts';
import { AppError } from '../src/errors.js';

/** Reads a password from standard input (one line; a single trailing newline is dropped). */
export async function readPasswordFromStdin(stream: NodeJS.ReadableStream = process.stdin): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk));
  const text = Buffer.concat(chunks).toString('utf8').replace(/\r?\n$/, '');
  if (text.length === 0) throw new AppError('invalid_request', 'no password on standard input');
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

/** Aligned text columns for human output. */
export function table(rows: Array<Record<string, unknown>>, columns: string[]): string {
  const cells = rows.map((row) => columns.map((c) => format(row[c])));
  const widths = columns.map((c, i) => Math.max(c.length, ...cells.map((r) => r[i]!.length)));
  const line = (values: string[]) => values.map((v, i) => v.padEnd(widths[i]!)).join('  ').trimEnd();
  return [line(columns.map((c) => c.toUpperCase())), ...cells.map(line)].join('\n');
}

function format(value: unknown): string {
  if (value === null || value === undefined) return '-';
  if (value instanceof Date) return value.toISOString();
  if (typeof value === 'string') return value;
  if (typeof value === 'number' || typeof value === 'boolean') return String(value);
  return JSON.stringify(value);
}
