import { createReadStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import { Args, Flags } from '@oclif/core';
import type { ImportProgress, ImportRefusal, ImportReport } from '../../src/admin/import/importer.js';
import { IMPORT_FORMATS, type ImportFormat } from '../../src/admin/import/sources.js';
import { AppError } from '../../src/platform/errors.js';
import { BaseCommand } from '../_base.js';

/** Exit code of an import that refused some records (the others are imported): README "### Import". */
export const REFUSED_EXIT_CODE = 1;

/** How often a progress line is written when standard error is not a terminal. */
const PLAIN_PROGRESS_MS = 10_000;

export default class UserImport extends BaseCommand<typeof UserImport> {
  static override summary = 'Import users from a file, with their password hashes.';
  static override description =
    "Reads authctl's own export (ndjson, csv), a Keycloak realm export, a Supabase auth.users CSV or an Auth0 user export " +
    '(with --passwords, the password-hash export Auth0 support provides). Each record is validated like a sign-up and imported ' +
    'whole, skipped (imported by an earlier run), or refused with its line and the reason. Exit 0: nothing refused; 1: some ' +
    'records refused, the others imported; 65: the file is not in the format (nothing, or only the records before a break, imported). ' +
    'See README "Import".';
  static override examples = [
    '<%= config.bin %> user import users.ndjson --format ndjson',
    '<%= config.bin %> user import realm-export.json --format keycloak --dry-run',
    '<%= config.bin %> user import users.csv --format supabase --json',
    '<%= config.bin %> user import tenant.json --format auth0 --passwords password-hashes.json',
  ];
  static override args = {
    file: Args.string({ required: true, description: 'The file to import ("-" for standard input).' }),
  };
  // Rows in or out: the database and its repositories, none of the server's services.
  static override services = 'data' as const;
  static override flags = {
    format: Flags.string({ summary: 'What the file is.', options: [...IMPORT_FORMATS], required: true }),
    'dry-run': Flags.boolean({ summary: 'Validate everything, the database checks too, and write nothing.' }),
    passwords: Flags.string({ summary: 'Auth0: the password-hash export (NDJSON), joined to the user export by user_id.' }),
    'batch-size': Flags.integer({ summary: 'Users per transaction.', default: 1_000, min: 1, max: 10_000 }),
  };

  async run(): Promise<ImportReport> {
    const format = this.flags.format as ImportFormat;
    if (this.flags.passwords !== undefined && format !== 'auth0') {
      throw new AppError('invalid_request', '--passwords goes with --format auth0 only');
    }
    const input = await openInput(this.args.file);
    const passwords = this.flags.passwords === undefined ? undefined : await openInput(this.flags.passwords);
    const progress = new ProgressLine(process.stderr);
    const report = await this.data.importer.run({
      format,
      input,
      ...(passwords ? { passwords } : {}),
      dryRun: this.flags['dry-run'],
      batchSize: this.flags['batch-size'],
      onProgress: (p) => progress.update(p),
    });
    progress.end();
    if (report.aborted) process.exitCode = 65;
    else if (report.refused > 0) process.exitCode = REFUSED_EXIT_CODE;
    this.say(summary(report, this.args.file));
    return report;
  }
}

/** The file as a byte stream; a missing or unreadable file is refused before anything is read. */
async function openInput(path: string): Promise<AsyncIterable<Buffer>> {
  if (path === '-') return process.stdin as AsyncIterable<Buffer>;
  try {
    const info = await stat(path);
    if (!info.isFile()) throw new AppError('invalid_request', `${path} is not a file`);
  } catch (err) {
    if (err instanceof AppError) throw err;
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') throw new AppError('not_found', `no such file: ${path}`);
    throw new AppError('invalid_request', `cannot read ${path} (${code ?? 'error'})`);
  }
  return createReadStream(path, { highWaterMark: 64 * 1024 });
}

function plural(n: number, one: string, many = `${one}s`): string {
  return `${n.toLocaleString('en-US')} ${n === 1 ? one : many}`;
}

function refusalLine(unit: string, r: ImportRefusal): string {
  return `  ${unit} ${r.at}: ${r.reason}`;
}

/** The human report: what was imported, skipped and refused, then each refusal. */
export function summary(report: ImportReport, file: string): string {
  const verb = report.dryRun ? 'Would import' : 'Imported';
  const identities = report.identities > 0 ? ` (${plural(report.identities, 'identity', 'identities')})` : '';
  const lines = [
    `${verb} ${plural(report.imported, 'user')}${identities}, skipped ${report.skipped} already there, refused ${report.refused} ` +
      `(${plural(report.read, 'record')} of ${file === '-' ? 'standard input' : file}, ${report.seconds} s)${report.dryRun ? ': nothing was written' : ''}.`,
    ...report.refusals.map((r) => refusalLine(report.unit, r)),
  ];
  if (report.refusalsNotListed > 0)
    lines.push(`  … and ${plural(report.refusalsNotListed, 'more refusal')} (--json lists the first ${report.refusals.length})`);
  if (report.aborted) lines.push(`Stopped at ${report.unit} ${report.aborted.at}: ${report.aborted.reason}.`);
  return lines.join('\n');
}

/**
 * Progress on standard error: one line rewritten in place on a terminal (records/s and the
 * counts), a plain line every 10 s otherwise (a log keeps every one), nothing for a short import.
 */
class ProgressLine {
  private lastAt = 0;
  private drawn = false;
  constructor(private readonly out: NodeJS.WriteStream) {}

  update(p: ImportProgress): void {
    const now = performance.now();
    const tty = this.out.isTTY === true;
    if (now - this.lastAt < (tty ? 200 : PLAIN_PROGRESS_MS)) return;
    if (this.lastAt === 0) {
      // The first call starts the clock: an import done within the first interval prints nothing.
      this.lastAt = now;
      return;
    }
    this.lastAt = now;
    const rate = p.seconds > 0 ? Math.round(p.read / p.seconds) : 0;
    const text = `${p.read.toLocaleString('en-US')} records (${rate.toLocaleString('en-US')}/s): ${p.imported.toLocaleString('en-US')} imported, ${p.skipped} skipped, ${p.refused} refused`;
    if (tty) {
      this.out.write(`\r\x1b[2K${text}`);
      this.drawn = true;
    } else this.out.write(`${text}\n`);
  }

  end(): void {
    if (this.drawn) this.out.write('\r\x1b[2K');
  }
}
