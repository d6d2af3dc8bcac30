import { Flags } from '@oclif/core';
import type { ExportSummary } from '../../src/admin/export.js';
import { displayPath } from '../../src/cli/config-file.js';
import { writeOutputFile } from '../../src/cli/output-file.js';
import { ProgressLine } from '../../src/cli/progress.js';
import { AppError } from '../../src/platform/errors.js';
import { BaseCommand } from '../_base.js';

export interface ExportResult extends ExportSummary {
  /** The file written; absent when the export went to standard output. */
  file?: string;
  seconds: number;
}

export default class UserExport extends BaseCommand<typeof UserExport> {
  static override summary = "Export every user of the region as NDJSON, what `user import --format ndjson` reads (another region's seed or restore).";
  static override description =
    'One JSON object a line: id, username, email, emailVerified, emailVerifiedAt, passwordHash (a standard PHC string; an imported foreign hash as stored), ' +
    'disabled, createdAt, homeRegion and the live provider identities. Never second factors, recovery codes or sessions. ' +
    'Every user as of one moment (one read-only snapshot), read from the read replica when one is configured (--writer: from the writer). ' +
    'To standard output, or to --out: written under a temporary name and renamed when complete (mode 600), never over an existing file without --force (exit 4).';
  static override examples = [
    '<%= config.bin %> user export --out users.ndjson',
    '<%= config.bin %> user export | gzip > users.ndjson.gz',
    '<%= config.bin %> user export --out users.ndjson --force --json',
  ];
  // Rows in or out: the database and its repositories, none of the server's services.
  static override services = 'data' as const;
  static override flags = {
    format: Flags.string({ summary: 'Output format.', options: ['ndjson'], default: 'ndjson' }),
    out: Flags.string({ char: 'o', summary: 'File to write (default: standard output).' }),
    force: Flags.boolean({ summary: 'Replace an existing --out file.' }),
    writer: Flags.boolean({ summary: 'Read from the writer even when a read replica is configured.' }),
  };

  async run(): Promise<ExportResult> {
    const { out, force, writer } = this.flags;
    if (out === undefined && this.jsonEnabled()) {
      throw new AppError('invalid_request', '--json needs --out: without it the export itself is what goes to standard output');
    }
    const exporter = this.data.exporter;
    const progress = new ProgressLine('Exporting users', process.stderr.isTTY ? await exporter.estimate() : undefined);
    const started = performance.now();
    const options = { writer, onProgress: (users: number) => progress.update(users) };
    let summary: ExportSummary;
    try {
      summary =
        out === undefined
          ? await exporter.writeNdjson(process.stdout, { ...options, end: false })
          : await writeOutputFile(out, { force }, (stream) => exporter.writeNdjson(stream, options));
    } finally {
      progress.end();
    }
    const seconds = Math.round((performance.now() - started) / 10) / 100;
    const result: ExportResult = { ...summary, ...(out === undefined ? {} : { file: out }), seconds };
    const what = `${summary.users.toLocaleString('en-US')} users (${summary.identities.toLocaleString('en-US')} provider identities) in ${seconds} s`;
    // Standard output is the export itself: the summary goes to standard error.
    if (out === undefined) this.logToStderr(`Exported ${what}.`);
    else this.say(`Exported ${what} to ${displayPath(out)}.`);
    return result;
  }
}
