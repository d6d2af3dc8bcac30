import { expect } from 'chai';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, posix } from 'node:path';
import { fileURLToPath } from 'node:url';

/**
 * The layer order of docs/architecture.md, lowest first. A module may import its own layer and
 * the layers below it, never one above; and no chain of imports may lead back to where it started.
 * The same list stands in docs/architecture.md between the `layers:start`/`layers:end` markers, and
 * the last test holds the two together.
 */
const LAYERS: ReadonlyArray<{ name: string; paths: readonly string[] }> = [
  { name: 'platform', paths: ['src/platform/'] },
  { name: 'model', paths: ['src/model/'] },
  { name: 'config', paths: ['src/config/'] },
  { name: 'store', paths: ['src/store/', 'src/mail/'] },
  { name: 'domain', paths: ['src/core/', 'src/security/'] },
  { name: 'jobs', paths: ['src/jobs/'] },
  { name: 'admin', paths: ['src/admin/'] },
  { name: 'composition', paths: ['src/data-container.ts', 'src/container.ts', 'src/runtime.ts'] },
  { name: 'interfaces', paths: ['src/http/', 'src/cli/', 'src/dev/', 'src/server.ts', 'src/cluster.ts'] },
  { name: 'commands', paths: ['commands/'] },
  { name: 'scripts', paths: ['scripts/'] },
];

// Compiled to dist/test/unit: the sources sit three folders up.
const repoRoot = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');

function sourcesUnder(dir: string, out: string[] = []): string[] {
  const abs = join(repoRoot, dir);
  if (!existsSync(abs)) return out;
  for (const entry of readdirSync(abs)) {
    const rel = posix.join(dir, entry);
    if (statSync(join(repoRoot, rel)).isDirectory()) sourcesUnder(rel, out);
    else if (rel.endsWith('.ts')) out.push(rel);
  }
  return out;
}

const IMPORT_RE = /(?:^|\n)\s*(?:import|export)\s(?:[^'";]*?\sfrom\s)?\s*'(\.{1,2}\/[^']+)'|import\(\s*'(\.{1,2}\/[^']+)'\s*\)/g;

/** Relative imports of one file, resolved to repository paths of .ts sources. */
function importsOf(file: string, text: string): string[] {
  const found: string[] = [];
  for (const m of text.matchAll(IMPORT_RE)) {
    const spec = (m[1] ?? m[2])!;
    found.push(posix.normalize(posix.join(posix.dirname(file), spec)).replace(/\.js$/, '.ts'));
  }
  return found;
}

function layerOf(file: string): number {
  return LAYERS.findIndex((layer) => layer.paths.some((p) => (p.endsWith('/') ? file.startsWith(p) : file === p)));
}

/** Every strongly connected component of more than one module (or a module importing itself). */
function cycles(graph: Map<string, string[]>): string[][] {
  let index = 0;
  const indexOf = new Map<string, number>();
  const low = new Map<string, number>();
  const stack: string[] = [];
  const onStack = new Set<string>();
  const found: string[][] = [];
  const visit = (v: string): void => {
    indexOf.set(v, index);
    low.set(v, index);
    index += 1;
    stack.push(v);
    onStack.add(v);
    for (const w of graph.get(v) ?? []) {
      if (!graph.has(w)) continue;
      if (!indexOf.has(w)) {
        visit(w);
        low.set(v, Math.min(low.get(v)!, low.get(w)!));
      } else if (onStack.has(w)) {
        low.set(v, Math.min(low.get(v)!, indexOf.get(w)!));
      }
    }
    if (low.get(v) === indexOf.get(v)) {
      const component: string[] = [];
      let w: string;
      do {
        w = stack.pop()!;
        onStack.delete(w);
        component.push(w);
      } while (w !== v);
      if (component.length > 1 || (graph.get(v) ?? []).includes(v)) found.push(component.sort());
    }
  };
  for (const v of graph.keys()) if (!indexOf.has(v)) visit(v);
  return found;
}

describe('module layers (docs/architecture.md)', function () {
  const files = ['src', 'commands', 'scripts'].flatMap((dir) => sourcesUnder(dir));
  const graph = new Map(files.map((f) => [f, importsOf(f, readFileSync(join(repoRoot, f), 'utf8'))]));

  it('reads the sources and their imports (the checks below are not vacuous)', function () {
    expect(files.length).to.be.greaterThan(100);
    expect([...graph.values()].flat().length).to.be.greaterThan(300);
  });

  it('places every source file in exactly one layer', function () {
    const unplaced = files.filter((f) => layerOf(f) < 0);
    expect(unplaced, 'files outside every layer: add them to a layer here and in docs/architecture.md').to.deep.equal([]);
  });

  it('has no import from a lower layer into a higher one', function () {
    const upward: string[] = [];
    for (const [file, targets] of graph) {
      for (const target of targets) {
        const from = layerOf(file);
        const to = layerOf(target);
        if (to > from) upward.push(`${file} (${LAYERS[from]!.name}) imports ${target} (${LAYERS[to]!.name})`);
      }
    }
    expect(upward).to.deep.equal([]);
  });

  it('has no import cycle', function () {
    expect(cycles(graph)).to.deep.equal([]);
  });

  it('finds an upward import and a cycle when there is one (the checks can fail)', function () {
    const bad = new Map([
      ['src/platform/clock.ts', ['src/core/telemetry.ts']],
      ['src/core/telemetry.ts', ['src/platform/clock.ts']],
    ]);
    expect(layerOf('src/core/telemetry.ts')).to.be.greaterThan(layerOf('src/platform/clock.ts'));
    expect(cycles(bad)).to.deep.equal([['src/core/telemetry.ts', 'src/platform/clock.ts']]);
    expect(importsOf('src/a/b.ts', "import type { X } from '../c/d.js';\nexport { y } from './e.js';\nawait import('../f.js');")).to.deep.equal([
      'src/c/d.ts',
      'src/a/e.ts',
      'src/f.ts',
    ]);
  });

  it('is the order docs/architecture.md writes down', function () {
    const doc = readFileSync(join(repoRoot, 'docs', 'architecture.md'), 'utf8');
    const start = doc.indexOf('<!-- layers:start -->');
    const end = doc.indexOf('<!-- layers:end -->');
    expect(start, 'docs/architecture.md has the layers:start marker').to.be.greaterThan(-1);
    const rows = doc
      .slice(start, end)
      .split('\n')
      .filter((line) => /^\|\s*\d+\s*\|/.test(line))
      .map((line) => line.split('|').map((cell) => cell.trim()));
    const documented = rows.map((cells) => ({ name: cells[2]!.replace(/\*/g, ''), paths: [...cells[3]!.matchAll(/`([^`]+)`/g)].map((m) => m[1]!) }));
    expect(documented).to.deep.equal(LAYERS.map((l) => ({ name: l.name, paths: [...l.paths] })));
  });
});
