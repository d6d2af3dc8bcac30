import { styleText } from 'node:util';

type Style = Parameters<typeof styleText>[0];

/** Colour only for a person at a terminal: never in pipes, files or with NO_COLOR set. */
export function useColour(stream: NodeJS.WriteStream = process.stdout, env: NodeJS.ProcessEnv = process.env): boolean {
  return Boolean(stream.isTTY) && env.NO_COLOR === undefined && env.TERM !== 'dumb';
}

/** Styles `text` when colour is on; plain text otherwise. */
export function paint(style: Style, text: string, colour = useColour()): string {
  return colour ? styleText(style, text, { validateStream: false }) : text;
}

/** Colours for values that carry a state (user status, key state, session state). */
const VALUE_STYLES: Record<string, Style> = {
  active: 'green',
  live: 'green',
  ok: 'green',
  pending: 'yellow',
  retiring: 'yellow',
  disabled: 'red',
  retired: 'gray',
  revoked: 'red',
  expired: 'gray',
  FAILED: 'red',
};

export interface TableOptions {
  /** Force colour on or off (default: only when stdout is a terminal). */
  colour?: boolean;
  /** Columns whose values are states to colour (see VALUE_STYLES). */
  stateColumns?: string[];
}

/** Aligned text columns for human output: upper-case headers, `-` for missing values. */
export function table(rows: Array<Record<string, unknown>>, columns: string[], options: TableOptions = {}): string {
  const colour = options.colour ?? useColour();
  const cells = rows.map((row) => columns.map((c) => formatCell(row[c])));
  const widths = columns.map((c, i) => Math.max(c.length, ...cells.map((r) => r[i]!.length)));
  // Pad before styling: escape codes have no width on screen.
  const line = (values: string[], styleOf: (value: string, i: number) => Style | undefined) =>
    values
      .map((v, i) => {
        const padded = v.padEnd(widths[i]!);
        const style = styleOf(v, i);
        return style ? paint(style, padded, colour) : padded;
      })
      .join('  ')
      .trimEnd();
  const states = new Set(options.stateColumns ?? []);
  return [
    line(
      columns.map((c) => c.toUpperCase()),
      () => 'bold',
    ),
    ...cells.map((r) => line(r, (v, i) => (states.has(columns[i]!) ? VALUE_STYLES[v] : undefined))),
  ].join('\n');
}

/** `key   value` lines for one record (e.g. `user show`). */
export function details(record: object, colour = useColour()): string {
  const width = Math.max(...Object.keys(record).map((k) => k.length));
  return Object.entries(record)
    .map(([k, v]) => `${paint('bold', k.padEnd(width), colour)}  ${formatCell(v)}`)
    .join('\n');
}

export function formatCell(value: unknown): string {
  if (value === null || value === undefined) return '-';
  if (value instanceof Date) return value.toISOString();
  if (typeof value === 'string') return value;
  if (typeof value === 'number' || typeof value === 'boolean') return String(value);
  return JSON.stringify(value);
}
