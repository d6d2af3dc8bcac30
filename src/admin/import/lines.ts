import { AppError } from '../../platform/errors.js';

/** One line of an input file, decoded, or why it cannot be read. Lines count from 1. */
export type Line = { line: number; text: string; error?: undefined } | { line: number; error: string; text?: undefined };

/** The unusable-file error of an import: the file is not in the format at all (exit 65). */
export function unusableFile(detail: string): AppError {
  return new AppError('invalid_import_file', detail);
}

/** How much of the start of a file decides whether it is binary (as `git` and `grep` do: a NUL byte in it). */
const SNIFF_BYTES = 8_000;

/**
 * The chunks of `input`, refused up front when they cannot be a text export at all: nothing in
 * them (an empty file), or a NUL byte near the start (a binary file, a compressed export that was
 * not unpacked). What comes after is read lazily, as it arrives.
 */
export async function* textChunks(input: AsyncIterable<Buffer | string>): AsyncGenerator<Buffer> {
  let sniffed = 0;
  let nonBlank = false;
  for await (const raw of input) {
    const chunk = typeof raw === 'string' ? Buffer.from(raw) : raw;
    if (sniffed < SNIFF_BYTES) {
      const head = chunk.subarray(0, SNIFF_BYTES - sniffed);
      if (head.includes(0)) {
        const gzip = sniffed === 0 && chunk[0] === 0x1f && chunk[1] === 0x8b;
        throw unusableFile(gzip ? 'the file is gzip-compressed: unpack it first (gunzip)' : 'the file is binary (it holds NUL bytes), not a text export');
      }
      sniffed += head.length;
    }
    if (!nonBlank && /\S/.test(chunk.toString('latin1'))) nonBlank = true;
    yield chunk;
  }
  if (!nonBlank) throw unusableFile('the file is empty');
}

const NEWLINE = 0x0a;

/**
 * Splits a byte stream into lines of at most `maxBytes` bytes each, with constant memory: a
 * longer line is skipped to its end without being kept, and reported as too long. Each line is
 * decoded as strict UTF-8 on its own, so one line of another encoding is refused with its number
 * while the others are read. A trailing CR (CRLF files) and a BOM on the first line are dropped.
 */
export async function* boundedLines(input: AsyncIterable<Buffer>, maxBytes: number): AsyncGenerator<Line> {
  const decoder = new TextDecoder('utf-8', { fatal: true, ignoreBOM: false });
  let parts: Buffer[] = [];
  let size = 0;
  let tooLong = false;
  let line = 0;
  const finish = (): Line => {
    line += 1;
    if (tooLong) return { line, error: `the line is longer than ${maxBytes} bytes` };
    let bytes = parts.length === 1 ? parts[0]! : Buffer.concat(parts, size);
    if (bytes.length > 0 && bytes[bytes.length - 1] === 0x0d) bytes = bytes.subarray(0, bytes.length - 1);
    try {
      // ignoreBOM false: the decoder drops a leading BOM (only the first line can carry one in a well-formed file).
      return { line, text: decoder.decode(bytes) };
    } catch {
      return { line, error: 'the line is not valid UTF-8' };
    }
  };
  for await (const chunk of input) {
    let start = 0;
    while (start < chunk.length) {
      const end = chunk.indexOf(NEWLINE, start);
      const stop = end === -1 ? chunk.length : end;
      if (!tooLong) {
        if (size + (stop - start) > maxBytes) {
          tooLong = true;
          parts = [];
          size = 0;
        } else if (stop > start) {
          parts.push(chunk.subarray(start, stop));
          size += stop - start;
        }
      }
      if (end === -1) break;
      yield finish();
      parts = [];
      size = 0;
      tooLong = false;
      start = end + 1;
    }
  }
  if (size > 0 || tooLong) yield finish();
}
