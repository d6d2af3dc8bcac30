/**
 * bench/results/chart.svg: req/s per scenario across the last ≤ 10 result files, one polyline
 * per scenario, on a log scale (login runs at tens of req/s, verify at thousands). Hand-written
 * SVG, no library.
 */
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

interface RunPoint {
  at: string;
  connections: number;
  cacheTarget: string;
  rps: Map<string, number>;
}

const COLORS = ['#1f77b4', '#d62728', '#2ca02c', '#ff7f0e', '#9467bd', '#8c564b', '#e377c2', '#17becf', '#7f7f7f', '#bcbd22'];
const W = 960;
const H = 500;
const M = { left: 72, right: 190, top: 48, bottom: 78 };

function escape(text: string): string {
  return text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
}

/** The last `max` result files written by this bench (older formats are skipped). */
export function loadRuns(dir: string, max = 10): RunPoint[] {
  const runs: RunPoint[] = [];
  // Only run.ts's files, named by their ISO start time (bench/scale.ts writes scale-*.json here too).
  for (const file of readdirSync(dir)
    .filter((f) => /^\d{4}-\d\d-\d\dT[\d-]+Z\.json$/.test(f))
    .sort()) {
    try {
      const data = JSON.parse(readFileSync(join(dir, file), 'utf8')) as {
        at?: string;
        connections?: number;
        cacheTarget?: string;
        scenarios?: Array<{ scenario: string; rps: number }>;
      };
      if (!Array.isArray(data.scenarios) || typeof data.at !== 'string') continue;
      runs.push({
        at: data.at,
        connections: data.connections ?? 0,
        cacheTarget: data.cacheTarget ?? '?',
        rps: new Map(data.scenarios.map((s) => [s.scenario, s.rps])),
      });
    } catch {
      // not ours, or half-written
    }
  }
  return runs.slice(-max);
}

/** Throws unless every tag is closed in order: enough to catch a broken hand-written SVG. */
export function assertWellFormed(xml: string): void {
  const stack: string[] = [];
  for (const m of xml.matchAll(/<(\/?)([A-Za-z][\w:.-]*)(?:\s[^<>]*?)?(\/?)>/g)) {
    const [, closing, name, selfClosing] = m;
    if (selfClosing) continue;
    if (!closing) stack.push(name!);
    else if (stack.pop() !== name) throw new Error(`chart.svg: </${name}> does not close the open element`);
  }
  if (stack.length) throw new Error(`chart.svg: <${stack.join('>, <')}> never closed`);
  if (/<(?![A-Za-z/?])/.test(xml)) throw new Error('chart.svg: a stray "<"');
}

export function renderChart(runs: RunPoint[]): string {
  const names: string[] = [];
  for (const run of runs) for (const name of run.rps.keys()) if (!names.includes(name)) names.push(name);
  const values = runs.flatMap((r) => [...r.rps.values()]).filter((v) => v > 0);
  // Axis bounds and ticks on the 1-2-5 series around the data.
  const series = (from: number, to: number) => {
    const out: number[] = [];
    for (let e = Math.floor(Math.log10(from)) - 1; e <= Math.ceil(Math.log10(to)); e++) for (const m of [1, 2, 5]) out.push(m * 10 ** e);
    return out;
  };
  const min = values.length ? Math.min(...values) : 1;
  const max = values.length ? Math.max(...values) : 10;
  const candidates = series(min, max);
  const lo = candidates.filter((t) => t <= min).at(-1) ?? 1;
  const hi = candidates.find((t) => t >= max * 1.05) ?? max;
  const ticks = candidates.filter((t) => t >= lo && t <= hi);
  const plotW = W - M.left - M.right;
  const plotH = H - M.top - M.bottom;
  const x = (i: number) => M.left + (runs.length === 1 ? plotW / 2 : (i / (runs.length - 1)) * plotW);
  const y = (v: number) => M.top + plotH - ((Math.log10(v) - Math.log10(lo)) / (Math.log10(hi) - Math.log10(lo))) * plotH;
  const f = (v: number) => v.toFixed(1);

  const parts: string[] = [];
  parts.push(`<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="sans-serif" font-size="12">`);
  parts.push(`<rect x="0" y="0" width="${W}" height="${H}" fill="#ffffff"/>`);
  parts.push(
    `<text x="${M.left}" y="24" font-size="16" font-weight="bold">authctl bench: req/s per scenario, last ${runs.length} run${runs.length === 1 ? '' : 's'}</text>`,
  );
  // y axis: 1-2-5 gridlines, decades solid, labelled
  parts.push('<g stroke="#dddddd">');
  for (const t of ticks)
    parts.push(
      `<line x1="${M.left}" y1="${f(y(t))}" x2="${M.left + plotW}" y2="${f(y(t))}"${t === 10 ** Math.round(Math.log10(t)) ? '' : ' stroke-dasharray="2,3"'}/>`,
    );
  parts.push('</g>');
  parts.push('<g text-anchor="end" fill="#333333">');
  for (const t of ticks) parts.push(`<text x="${M.left - 6}" y="${f(y(t) + 4)}">${t.toLocaleString('en-US')}</text>`);
  parts.push('</g>');
  parts.push(`<text transform="translate(18 ${M.top + plotH / 2}) rotate(-90)" text-anchor="middle">req/s (log scale)</text>`);
  // x axis: one tick per run
  parts.push(`<line x1="${M.left}" y1="${M.top + plotH}" x2="${M.left + plotW}" y2="${M.top + plotH}" stroke="#333333"/>`);
  parts.push(`<line x1="${M.left}" y1="${M.top}" x2="${M.left}" y2="${M.top + plotH}" stroke="#333333"/>`);
  parts.push('<g text-anchor="middle" fill="#333333">');
  runs.forEach((run, i) => {
    const when = run.at.slice(5, 16).replace('T', ' ');
    parts.push(`<line x1="${f(x(i))}" y1="${M.top + plotH}" x2="${f(x(i))}" y2="${M.top + plotH + 5}" stroke="#333333"/>`);
    parts.push(`<text x="${f(x(i))}" y="${M.top + plotH + 20}">${escape(when)}</text>`);
    parts.push(`<text x="${f(x(i))}" y="${M.top + plotH + 35}">${run.connections} conn${run.cacheTarget === 'memory' ? ', no Redis' : ''}</text>`);
  });
  parts.push('</g>');
  parts.push(`<text x="${M.left + plotW / 2}" y="${H - 12}" text-anchor="middle">run (UTC start time, connections)</text>`);
  // one polyline (and dots) per scenario
  names.forEach((name, k) => {
    const color = COLORS[k % COLORS.length]!;
    const points = runs.map((run, i) => [i, run.rps.get(name)] as const).filter((p): p is readonly [number, number] => p[1] !== undefined && p[1] > 0);
    parts.push(`<g stroke="${color}" fill="${color}">`);
    if (points.length > 1) parts.push(`<polyline fill="none" stroke-width="2" points="${points.map(([i, v]) => `${f(x(i))},${f(y(v))}`).join(' ')}"/>`);
    for (const [i, v] of points) parts.push(`<circle cx="${f(x(i))}" cy="${f(y(v))}" r="3.5"><title>${escape(`${name}: ${v} req/s`)}</title></circle>`);
    parts.push('</g>');
    const ly = M.top + 10 + k * 20;
    parts.push(`<line x1="${W - M.right + 16}" y1="${ly}" x2="${W - M.right + 40}" y2="${ly}" stroke="${color}" stroke-width="2"/>`);
    const last = points.at(-1);
    parts.push(`<text x="${W - M.right + 46}" y="${ly + 4}">${escape(name)}${last ? ` (${last[1].toLocaleString('en-US')})` : ''}</text>`);
  });
  parts.push('</svg>');
  return `${parts.join('\n')}\n`;
}

/** Writes `<dir>/chart.svg` from the last runs in `dir`; returns its path, or undefined if no runs. */
export function writeChart(dir: string): string | undefined {
  const runs = loadRuns(dir);
  if (!runs.length) return undefined;
  const svg = renderChart(runs);
  assertWellFormed(svg);
  const file = join(dir, 'chart.svg');
  writeFileSync(file, svg);
  return file;
}
