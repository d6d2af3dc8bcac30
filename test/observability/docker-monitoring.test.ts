import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { expect } from 'chai';
import { Registry } from 'prom-client';
import { buildContainer } from '../../src/container.js';
import { testConfig } from '../helpers/app.js';
import { repoRoot } from '../cli/run-cli.js';
import { shutdown } from '../../src/runtime.js';

/**
 * The metrics the servers export (src/platform/metrics.ts) that the dashboard may use.
 * Renaming one there means renaming it here and in docker/grafana-dashboard.json.
 */
const COUNTERS = [
  'authctl_logins_total',
  'authctl_registrations_total',
  'authctl_tokens_issued_total',
  'authctl_refreshes_total',
  'authctl_sessions_revoked_total',
  'authctl_cache_lookups_total',
  'authctl_process_cpu_seconds_total',
];
const GAUGES = [
  'authctl_active_sessions',
  'authctl_cache_hit_ratio',
  'authctl_cache_up',
  'authctl_db_pool_connections',
  'authctl_job_queue_depth',
  'authctl_nodejs_eventloop_lag_p99_seconds',
];
const HISTOGRAMS = ['authctl_http_request_duration_seconds', 'authctl_db_query_duration_seconds', 'authctl_password_hash_duration_seconds'];
const KNOWN = new Set([...COUNTERS, ...GAUGES, ...HISTOGRAMS]);

/** The metric a series name belongs to (`x_bucket` / `x_sum` / `x_count` of histogram x is x). */
function metricOf(series: string): string {
  const base = series.replace(/_(bucket|sum|count)$/, '');
  return base !== series && HISTOGRAMS.includes(base) ? base : series;
}

/** Every `authctl_…` series an expression names. */
function seriesIn(expr: string): string[] {
  return [...expr.matchAll(/\b(authctl_[a-zA-Z0-9_]+)/g)].map((m) => m[1]!);
}

// --- a YAML subset: block maps, block lists (of scalars or maps), scalars, comments ---------------

type Yaml = string | Yaml[] | { [key: string]: Yaml };

interface Line {
  indent: number;
  text: string;
  number: number;
}

function parseYaml(source: string): Yaml {
  const lines: Line[] = [];
  source.split('\n').forEach((raw, i) => {
    if (/\t/.test(raw)) throw new Error(`line ${i + 1}: tab (YAML indents with spaces only)`);
    const text = raw.replace(/(^|\s)#.*$/, '').trimEnd();
    if (text.trim() === '') return;
    lines.push({ indent: text.length - text.trimStart().length, text: text.trim(), number: i + 1 });
  });
  let pos = 0;
  const scalar = (value: string): string => value.replace(/^(['"])(.*)\1$/, '$2');

  function block(indent: number): Yaml {
    const first = lines[pos];
    if (!first || first.indent !== indent) throw new Error(`line ${first?.number ?? 'EOF'}: expected indentation ${indent}`);
    if (first.text.startsWith('- ') || first.text === '-') {
      const list: Yaml[] = [];
      while (pos < lines.length && lines[pos]!.indent === indent && lines[pos]!.text.startsWith('-')) {
        const line = lines[pos]!;
        const rest = line.text.slice(1).trimStart();
        if (/^[A-Za-z_][\w.-]*:(\s|$)/.test(rest)) {
          // A map as a list item: its first key sits after "- ", the others align with it.
          const itemIndent = indent + (line.text.length - rest.length);
          lines[pos] = { ...line, indent: itemIndent, text: rest };
          list.push(block(itemIndent));
        } else {
          pos++;
          list.push(scalar(rest));
        }
      }
      return list;
    }
    const map: { [key: string]: Yaml } = {};
    while (pos < lines.length && lines[pos]!.indent === indent && !lines[pos]!.text.startsWith('-')) {
      const line = lines[pos]!;
      const match = /^([A-Za-z_][\w.-]*):(?:\s+(.*))?$/.exec(line.text);
      if (!match) throw new Error(`line ${line.number}: not "key: value": ${line.text}`);
      const key = match[1]!;
      if (key in map) throw new Error(`line ${line.number}: duplicate key ${key}`);
      pos++;
      if (match[2] !== undefined && match[2] !== '') {
        map[key] = scalar(match[2]);
      } else {
        const next = lines[pos];
        if (!next || next.indent < indent || (next.indent === indent && !next.text.startsWith('-')))
          throw new Error(`line ${line.number}: ${key} has no value`);
        map[key] = block(next.indent);
      }
    }
    return map;
  }

  const root = block(0);
  if (pos !== lines.length) throw new Error(`line ${lines[pos]!.number}: unexpected indentation`);
  return root;
}

function asMap(value: Yaml | undefined, what: string): { [key: string]: Yaml } {
  expect(value, what).to.be.an('object').and.not.be.an('array');
  return value as { [key: string]: Yaml };
}

function asList(value: Yaml | undefined, what: string): Yaml[] {
  expect(value, what).to.be.an('array');
  return value as Yaml[];
}

// --- Grafana dashboard ------------------------------------------------------------------------

interface Target {
  refId?: string;
  expr?: string;
  datasource?: { type?: string; uid?: string };
}

interface Panel {
  id?: number;
  type?: string;
  title?: string;
  datasource?: { type?: string; uid?: string };
  gridPos?: { h: number; w: number; x: number; y: number };
  targets?: Target[];
  panels?: Panel[];
}

interface Dashboard {
  title?: string;
  uid?: string;
  schemaVersion?: number;
  panels?: Panel[];
  templating?: { list?: Array<{ name?: string; type?: string; query?: unknown; definition?: string; datasource?: { uid?: string } }> };
}

function allPanels(panels: Panel[]): Panel[] {
  return panels.flatMap((p) => [p, ...allPanels(p.panels ?? [])]);
}

function balanced(expr: string): boolean {
  const pairs: Record<string, string> = { ')': '(', ']': '[', '}': '{' };
  const stack: string[] = [];
  let quoted = false;
  for (const ch of expr) {
    if (ch === '"') quoted = !quoted;
    if (quoted) continue;
    if ('([{'.includes(ch)) stack.push(ch);
    else if (ch in pairs && stack.pop() !== pairs[ch]) return false;
  }
  return stack.length === 0 && !quoted;
}

describe('docker/: Prometheus scrape config and Grafana dashboard', function () {
  const prometheusText = readFileSync(join(repoRoot, 'docker/prometheus.yml'), 'utf8');
  const dashboard = JSON.parse(readFileSync(join(repoRoot, 'docker/grafana-dashboard.json'), 'utf8')) as Dashboard;
  const panels = allPanels(dashboard.panels ?? []);
  const queries = panels.filter((p) => p.type !== 'row');
  const exprs = queries.flatMap((p) => (p.targets ?? []).map((t) => ({ panel: p.title ?? '?', expr: t.expr ?? '' })));
  const variableQueries = (dashboard.templating?.list ?? [])
    .filter((v) => v.type === 'query')
    .map((v) => ({ panel: `variable ${v.name}`, expr: typeof v.query === 'string' ? v.query : ((v.query as { query?: string } | undefined)?.query ?? '') }));

  describe('prometheus.yml', function () {
    const config = asMap(parseYaml(prometheusText), 'prometheus.yml');

    it('scrapes every 15 s by default', function () {
      expect(asMap(config.global, 'global').scrape_interval).to.equal('15s');
    });

    it('scrapes the authctl servers on /metrics every 15 s', function () {
      const jobs = asList(config.scrape_configs, 'scrape_configs').map((j, i) => asMap(j, `scrape_configs[${i}]`));
      const names = jobs.map((j) => j.job_name);
      expect(new Set(names).size, 'job names are unique').to.equal(names.length);
      const job = jobs.find((j) => j.job_name === 'authctl');
      expect(job, 'job_name: authctl').to.not.equal(undefined);
      expect(job!.metrics_path).to.equal('/metrics');
      expect(job!.scrape_interval ?? asMap(config.global, 'global').scrape_interval).to.equal('15s');
      const targets = asList(job!.static_configs, 'static_configs').flatMap((c, i) => asList(asMap(c, `static_configs[${i}]`).targets, 'targets'));
      expect(targets).to.include.members(['authctl-1:8080', 'authctl-2:8080']);
      for (const target of targets)
        expect(target)
          .to.be.a('string')
          .and.match(/^[a-z0-9.-]+:\d{1,5}$/);
    });

    it('the mini YAML reader rejects what it does not understand (so the checks above mean something)', function () {
      expect(() => parseYaml('a:\n\tb: 1')).to.throw(/tab/);
      expect(() => parseYaml('a: 1\na: 2')).to.throw(/duplicate/);
      expect(() => parseYaml('a:\n  - x\n    y: 2')).to.throw();
      expect(parseYaml('a:\n  - b: 1\n    c: [x]\n  - d # note\n')).to.deep.equal({ a: [{ b: '1', c: '[x]' }, 'd'] });
    });
  });

  describe('grafana-dashboard.json', function () {
    it('is a dashboard Grafana imports: title, uid, schemaVersion, a Prometheus data source variable', function () {
      expect(dashboard.title).to.be.a('string').and.not.be.empty;
      expect(dashboard.uid)
        .to.be.a('string')
        .and.match(/^[A-Za-z0-9_-]{1,40}$/);
      expect(dashboard.schemaVersion).to.be.a('number').and.within(36, 41);
      const variable = dashboard.templating?.list?.find((v) => v.type === 'datasource');
      expect(variable, 'a datasource variable').to.deep.include({ query: 'prometheus' });
      for (const v of dashboard.templating?.list ?? []) {
        if (v.type === 'query') expect(v.datasource?.uid, `variable ${v.name}`).to.equal(`\${${variable!.name}}`);
      }
    });

    it('every panel has a unique id and a place on the 24-column grid; no two overlap', function () {
      const ids = panels.map((p) => p.id);
      expect(ids.every((id) => Number.isInteger(id))).to.equal(true);
      expect(new Set(ids).size).to.equal(ids.length);
      const cells = new Map<string, string>();
      for (const p of panels) {
        const g = p.gridPos;
        expect(g, p.title).to.be.an('object');
        expect(g!.x + g!.w, `${p.title} fits in 24 columns`).to.be.at.most(24);
        for (let y = g!.y; y < g!.y + g!.h; y++) {
          for (let x = g!.x; x < g!.x + g!.w; x++) {
            const key = `${x},${y}`;
            expect(cells.get(key), `${p.title} overlaps ${cells.get(key)}`).to.equal(undefined);
            cells.set(key, p.title ?? '?');
          }
        }
      }
    });

    it('every query panel asks the data source variable, with unique refIds and balanced PromQL', function () {
      expect(queries.length).to.be.above(10);
      for (const p of queries) {
        expect(p.datasource?.uid, p.title).to.equal('${datasource}');
        expect(p.targets, p.title).to.be.an('array').that.is.not.empty;
        const refIds = p.targets!.map((t) => t.refId);
        expect(new Set(refIds).size, `${p.title} refIds`).to.equal(refIds.length);
        for (const t of p.targets!) {
          expect(t.expr, p.title)
            .to.be.a('string')
            .and.match(/authctl_/);
          expect(balanced(t.expr!), `${p.title}: ${t.expr}`).to.equal(true);
          if (t.datasource) expect(t.datasource.uid, p.title).to.equal('${datasource}');
        }
      }
    });

    it('uses only the metrics the servers export (a renamed metric fails here)', function () {
      const unknown = [...exprs, ...variableQueries].flatMap(({ panel, expr }) =>
        seriesIn(expr)
          .filter((s) => !KNOWN.has(metricOf(s)))
          .map((s) => `${panel}: ${s}`),
      );
      expect(unknown).to.deep.equal([]);
      // Histogram series only through their _bucket/_sum/_count; counters and gauges by their own name.
      for (const { panel, expr } of exprs) {
        for (const s of seriesIn(expr)) if (HISTOGRAMS.includes(s)) expect.fail(`${panel}: histogram ${s} used without _bucket/_sum/_count`);
        for (const q of expr.matchAll(/histogram_quantile\(([^,]+),(.*)$/g)) {
          expect(q[2], `${panel}: histogram_quantile over buckets by le`)
            .to.match(/_bucket\b/)
            .and.match(/by \((le|[^)]*\ble)\b/);
        }
      }
    });

    it('shows every one of those metrics somewhere', function () {
      const used = new Set(exprs.flatMap(({ expr }) => seriesIn(expr).map(metricOf)));
      expect([...KNOWN].filter((m) => !used.has(m))).to.deep.equal([]);
      // The panels the README promises.
      const titles = queries.map((p) => p.title);
      expect(titles).to.include.members(['Requests / s by route', 'p50 latency by route', 'p99 latency by route', 'Refreshes / s by result']);
    });

    it('every metric the dashboard uses is registered by a server container', async function () {
      const container = buildContainer(testConfig('postgres://postgres@127.0.0.1:1/authctl_never_connected'));
      try {
        const metrics: unknown = container.metrics;
        const registry = metrics instanceof Registry ? metrics : (metrics as { registry: Registry }).registry;
        const registered = new Set(registry.getMetricsAsArray().map((m) => m.name));
        const used = [...new Set([...exprs, ...variableQueries].flatMap(({ expr }) => seriesIn(expr).map(metricOf)))];
        expect(used.filter((m) => !registered.has(m)).sort()).to.deep.equal([]);
      } finally {
        await shutdown(container);
      }
    });
  });
});
