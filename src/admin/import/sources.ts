import { parse as parseCsvRecord } from 'csv-parse/sync';
import { portableUserSchema } from '../portable-user.js';
import { boundedLines, textChunks, unusableFile, type Line } from './lines.js';

export const IMPORT_FORMATS = ['ndjson', 'csv', 'keycloak', 'supabase', 'auth0'] as const;
export type ImportFormat = (typeof IMPORT_FORMATS)[number];

/**
 * One record of a source file as its reader understood it: a candidate in the shape of
 * authctl's portable record (validated by the importer, the same way for every format), a
 * refusal the reader could tell already (an unreadable line, a Keycloak credential of an
 * algorithm authctl does not verify), or the end of what can be read (`fatal`: the rest of a
 * truncated JSON document). `at` is the line (or, for a JSON document, the record) it came from.
 */
export type SourceItem =
  | { at: number; candidate: unknown; sourceId?: string | undefined; refused?: undefined; fatal?: undefined }
  | { at: number; refused: string; candidate?: undefined; fatal?: undefined }
  | { at: number; fatal: string; candidate?: undefined; refused?: undefined };

export interface SourceOptions {
  /** The longest line (or JSON record) read, in bytes; longer ones are refused without being held. */
  maxRecordBytes: number;
}

/** Reads `--format ndjson`: one portable record per line; blank lines are skipped. */
export async function* ndjsonSource(input: AsyncIterable<Buffer>, options: SourceOptions): AsyncGenerator<SourceItem> {
  for await (const item of jsonLines(input, options)) {
    if (item.candidate === undefined) yield item;
    else yield { at: item.at, candidate: item.candidate, sourceId: sourceIdOf(item.candidate) };
  }
}

function sourceIdOf(value: unknown): string | undefined {
  const id = (value as { id?: unknown } | null)?.id;
  return typeof id === 'string' ? id : undefined;
}

/** Lines of JSON values: each parsed on its own, a line that is not JSON refused with its number. */
export async function* jsonLines(input: AsyncIterable<Buffer>, options: SourceOptions): AsyncGenerator<SourceItem> {
  for await (const line of boundedLines(textChunks(input), options.maxRecordBytes)) {
    if (line.error !== undefined) {
      yield { at: line.line, refused: line.error };
      continue;
    }
    if (line.text.trim() === '') continue;
    let value: unknown;
    try {
      value = JSON.parse(line.text);
    } catch {
      yield { at: line.line, refused: 'the line is not JSON (cut short, or not this format)' };
      continue;
    }
    if (typeof value !== 'object' || value === null || Array.isArray(value)) {
      yield { at: line.line, refused: 'the line is not a JSON object' };
      continue;
    }
    yield { at: line.line, candidate: value };
  }
}

/** One CSV record: its cells by (lower-cased for `caseless`) column name. */
export type CsvItem = { at: number; cells: Map<string, string>; refused?: undefined } | { at: number; refused: string; cells?: undefined };

export interface CsvColumns {
  /** Every column this format knows; others are an error (`strict`) or ignored. */
  known: readonly string[];
  /** Columns that must be there: each an alternative list (one of them is enough). */
  required: ReadonlyArray<readonly string[]>;
  strict: boolean;
  caseless?: boolean;
}

const quoteCount = (text: string) => {
  let n = 0;
  for (let i = text.indexOf('"'); i !== -1; i = text.indexOf('"', i + 1)) n += 1;
  return n;
};

/**
 * CSV records with a header row, read line by line with bounded memory. A quoted cell may span
 * lines (an odd number of quotes leaves the record open; RFC 4180 doubles quotes inside cells,
 * so the parity is exact), up to the same bound as a line. A bad header (unknown, missing or
 * repeated columns) makes the file unusable, naming the columns.
 */
export async function* csvRecords(input: AsyncIterable<Buffer>, columns: CsvColumns, options: SourceOptions): AsyncGenerator<CsvItem> {
  let header: string[] | undefined;
  let open: { at: number; text: string } | undefined;
  const lines = boundedLines(textChunks(input), options.maxRecordBytes);
  const complete = function* (at: number, text: string): Generator<CsvItem> {
    if (header === undefined) {
      if (text.trim() === '') return;
      header = readHeader(text, columns);
      return;
    }
    if (text.trim() === '') return;
    let fields: string[];
    try {
      fields = csvFields(text, false);
    } catch (err) {
      yield { at, refused: `the record is not valid CSV (${(err as Error).message.split(':')[0]})` };
      return;
    }
    if (fields.length !== header.length) {
      yield { at, refused: `the record has ${fields.length} fields, the header ${header.length}` };
      return;
    }
    yield { at, cells: new Map(header.map((name, i) => [name, fields[i]!])) };
  };
  for await (const line of lines as AsyncIterable<Line>) {
    if (line.error !== undefined) {
      if (header === undefined) throw unusableFile(`the header row (line ${line.line}) cannot be read: ${line.error.replace(/^the line/, 'it')}`);
      yield { at: open?.at ?? line.line, refused: line.error };
      open = undefined;
      continue;
    }
    const text = open ? `${open.text}\n${line.text}` : line.text;
    const at = open?.at ?? line.line;
    if (quoteCount(text) % 2 === 1) {
      if (text.length > options.maxRecordBytes) {
        yield { at, refused: `the record is longer than ${options.maxRecordBytes} bytes` };
        open = undefined;
      } else open = { at, text };
      continue;
    }
    open = undefined;
    yield* complete(at, text);
  }
  if (open) yield { at: open.at, refused: 'the file ends inside a quoted cell (cut short?)' };
  if (header === undefined) throw unusableFile('the file has no header row');
}

/** The fields of one CSV record (csv-parse's own quoting rules). */
function csvFields(text: string, bom: boolean): string[] {
  const rows: string[][] = parseCsvRecord(text, { relax_column_count: true, bom });
  return rows[0] ?? [];
}

function readHeader(text: string, columns: CsvColumns): string[] {
  let names: string[];
  try {
    names = csvFields(text, true).map((n) => n.trim());
  } catch {
    throw unusableFile('the header row is not valid CSV');
  }
  if (columns.caseless) names = names.map((n) => n.toLowerCase());
  const known = new Set(columns.known);
  const unknown = names.filter((n) => !known.has(n));
  const repeated = names.filter((n, i) => names.indexOf(n) !== i);
  const missing = columns.required.filter((alternatives) => !alternatives.some((n) => names.includes(n))).map((alts) => alts.join(' or '));
  const problems: string[] = [];
  if (columns.strict && unknown.length > 0) problems.push(`unknown column${unknown.length > 1 ? 's' : ''} ${unknown.map((n) => `"${n}"`).join(', ')}`);
  if (missing.length > 0) problems.push(`missing column${missing.length > 1 ? 's' : ''} ${missing.join(', ')}`);
  if (repeated.length > 0) problems.push(`repeated column${repeated.length > 1 ? 's' : ''} ${[...new Set(repeated)].join(', ')}`);
  if (problems.length > 0) throw unusableFile(`the header row has ${problems.join('; ')} (the columns are: ${columns.known.join(', ')})`);
  return names;
}

/** The columns of `--format csv`: the portable record's fields. */
export const PORTABLE_COLUMNS = Object.keys(portableUserSchema.shape);
const BOOLEAN_COLUMNS = new Set(['emailVerified', 'disabled']);

/** Reads `--format csv`: the portable record's fields as columns, `identities` as a JSON cell, booleans `true`/`false`, an empty cell absent. */
export async function* csvSource(input: AsyncIterable<Buffer>, options: SourceOptions): AsyncGenerator<SourceItem> {
  const columns: CsvColumns = { known: PORTABLE_COLUMNS, required: [['username', 'email'], ['passwordHash']], strict: true };
  for await (const record of csvRecords(input, columns, options)) {
    if (record.refused !== undefined) {
      yield record;
      continue;
    }
    const candidate: Record<string, unknown> = {};
    let problem: string | undefined;
    for (const [name, cell] of record.cells) {
      if (cell === '') continue;
      if (BOOLEAN_COLUMNS.has(name)) {
        if (cell !== 'true' && cell !== 'false') problem ??= `${name} must be true or false`;
        candidate[name] = cell === 'true';
      } else if (name === 'identities') {
        try {
          candidate[name] = JSON.parse(cell);
        } catch {
          problem ??= 'identities must be a JSON array';
        }
      } else candidate[name] = cell;
    }
    if (problem !== undefined) yield { at: record.at, refused: problem };
    else yield { at: record.at, candidate, sourceId: sourceIdOf(candidate) };
  }
}
