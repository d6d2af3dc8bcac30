import { randomBytes } from 'node:crypto';
import { createWriteStream, existsSync, rmSync, type WriteStream } from 'node:fs';
import { link, rename, rm } from 'node:fs/promises';
import { once } from 'node:events';
import { basename, dirname, join, resolve } from 'node:path';
import { AppError } from '../platform/errors.js';
import { displayPath } from './config-file.js';

export interface OutputFileOptions {
  /** Replace an existing file (otherwise `conflict`, exit 4, before anything is written). */
  force: boolean;
  /** Permissions of the new file; default 0600 (an export holds password hashes). */
  mode?: number;
}

/**
 * Writes `file` through a temporary file beside it (`.<name>.<random>.tmp`, same directory so the
 * final rename is atomic), flushed to disk and given the file's name only once `write` has
 * finished: a failed or interrupted write never leaves a partial file that looks complete under
 * that name, and a reader of the name sees the old file or the whole new one. The temporary file
 * is removed on failure. Without `force` an existing file is refused before anything is read
 * or written, and again at the end (a hard link, which does not replace: a file that appeared
 * meanwhile is not overwritten either).
 */
export async function writeOutputFile<T>(file: string, options: OutputFileOptions, write: (out: WriteStream) => Promise<T>): Promise<T> {
  const target = resolve(file);
  if (!options.force && existsSync(target)) throw exists(target);
  const temp = join(dirname(target), `.${basename(target)}.${randomBytes(6).toString('hex')}.tmp`);
  // `flush`: fsync before close, so the rename publishes data that is on disk.
  const out = createWriteStream(temp, { flags: 'wx', mode: options.mode ?? 0o600, flush: true });
  // Ctrl-C or a TERM while writing: the temporary file goes too, then the signal takes its course
  // (the process ends as it would have, exit 130 or 143).
  const interrupted = (signal: NodeJS.Signals) => {
    stopListening();
    out.destroy();
    rmSync(temp, { force: true });
    process.kill(process.pid, signal);
  };
  const onInt = () => interrupted('SIGINT');
  const onTerm = () => interrupted('SIGTERM');
  const stopListening = () => {
    process.off('SIGINT', onInt);
    process.off('SIGTERM', onTerm);
  };
  process.once('SIGINT', onInt);
  process.once('SIGTERM', onTerm);
  try {
    await once(out, 'open');
    const result = await write(out);
    if (!out.closed) await once(out, 'close');
    await publish(temp, target, options.force);
    return result;
  } catch (err) {
    out.destroy();
    await rm(temp, { force: true });
    if ((err as NodeJS.ErrnoException).code === 'ENOENT' && !existsSync(dirname(target))) {
      throw new AppError('invalid_request', `${displayPath(dirname(target))}: no such directory`, { cause: err });
    }
    throw err;
  } finally {
    stopListening();
  }
}

async function publish(temp: string, target: string, force: boolean): Promise<void> {
  if (force) return rename(temp, target);
  try {
    await link(temp, target);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'EEXIST') throw exists(target);
    // A file system without hard links: the check before the export is the one there is.
    if (code !== 'EPERM' && code !== 'ENOTSUP' && code !== 'EOPNOTSUPP') throw err;
    if (existsSync(target)) throw exists(target);
    return rename(temp, target);
  }
  await rm(temp);
}

function exists(target: string): AppError {
  return new AppError('conflict', `${displayPath(target)} already exists: pass --force to replace it`);
}
