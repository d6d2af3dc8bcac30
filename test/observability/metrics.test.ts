import { randomBytes, randomUUID } from 'node:crypto';
import { expect } from 'chai';
import { buildContainer, type Container } from '../../src/container.js';
import { startServer, type RunningServer } from '../../src/server.js';
import { startTestApp, testConfig, type TestApp } from '../helpers/app.js';
import { expectProblem, expectTokenResponse, login, register, uniquePassword, uniqueUsername, type TokenResponse } from '../helpers/http-assert.js';
import { shutdown } from '../../src/runtime.js';

// ---------------------------------------------------------------------------------------------
// A small parser for the Prometheus text exposition format (0.0.4).

interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

interface Family {
  name: string;
  type: string;
  help: string | undefined;
  samples: Sample[];
}

const SUFFIXES: Record<string, string[]> = { histogram: ['_bucket', '_sum', '_count'], summary: ['_sum', '_count', ''] };

function parseLabels(text: string, line: string): Record<string, string> {
  const labels: Record<string, string> = {};
  const re = /\s*([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"\s*(,|$)/y;
  let at = 0;
  while (at < text.length) {
    re.lastIndex = at;
    const m = re.exec(text);
    if (!m) throw new Error(`bad labels at ${at} in: ${line}`);
    const name = m[1]!;
    if (name in labels) throw new Error(`label ${name} twice in: ${line}`);
    labels[name] = m[2]!.replace(/\\(.)/g, (_, c: string) => (c === 'n' ? '\n' : c));
    at = re.lastIndex;
  }
  return labels;
}

function parseValue(text: string): number {
  if (text === '+Inf') return Infinity;
  if (text === '-Inf') return -Infinity;
  if (/^nan$/i.test(text)) return NaN; // prom-client writes "Nan"; Prometheus parses any case
  const n = Number(text);
  if (text === '' || Number.isNaN(n)) throw new Error(`bad sample value "${text}"`);
  return n;
}

/** Families by name; every sample must belong to a family declared by a `# TYPE` line. */
function parsePrometheus(text: string): Map<string, Family> {
  const families = new Map<string, Family>();
  const helps = new Map<string, string>();
  const owner = (sample: string): Family | undefined => {
    for (const f of families.values()) {
      const suffixes = SUFFIXES[f.type] ?? [''];
      if (suffixes.some((s) => f.name + s === sample) || (f.type !== 'histogram' && f.name === sample)) return f;
    }
    return undefined;
  };
  for (const line of text.split('\n')) {
    if (line.trim() === '') continue;
    if (line.startsWith('# HELP ')) {
      const rest = line.slice('# HELP '.length);
      const space = rest.indexOf(' ');
      helps.set(space < 0 ? rest : rest.slice(0, space), space < 0 ? '' : rest.slice(space + 1));
      continue;
    }
    if (line.startsWith('# TYPE ')) {
      const [name, type, ...rest] = line.slice('# TYPE '.length).split(' ');
      if (!name || !type || rest.length) throw new Error(`bad TYPE line: ${line}`);
      if (families.has(name)) throw new Error(`TYPE of ${name} declared twice`);
      families.set(name, { name, type, help: helps.get(name), samples: [] });
      continue;
    }
    if (line.startsWith('#')) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)(?:\s+(-?\d+))?$/.exec(line);
    if (!m) throw new Error(`bad sample line: ${line}`);
    const family = owner(m[1]!);
    if (!family) throw new Error(`sample without a TYPE: ${line}`);
    family.samples.push({ name: m[1]!, labels: parseLabels(m[2] ?? '', line), value: parseValue(m[3]!) });
  }
  return families;
}

function family(families: Map<string, Family>, name: string, type: string): Family {
  const f = families.get(name);
  expect(f, `metric family ${name}`).to.not.equal(undefined);
  expect(f!.type, `type of ${name}`).to.equal(type);
  return f!;
}

const matches = (labels: Record<string, string>, want: Record<string, string>) => Object.entries(want).every(([k, v]) => labels[k] === v);

/** The value of the one sample of `name` with these labels (at least), or undefined. */
function value(f: Family, want: Record<string, string> = {}, name = f.name): number | undefined {
  const found = f.samples.filter((s) => s.name === name && matches(s.labels, want));
  expect(found.length, `samples of ${name}${JSON.stringify(want)}`).to.be.at.most(1);
  return found[0]?.value;
}

/** Observations of a histogram series (its `_count`). */
const count = (f: Family, want: Record<string, string>) => value(f, want, `${f.name}_count`) ?? 0;

const labelValues = (f: Family, label: string) => new Set(f.samples.map((s) => s.labels[label]).filter((v): v is string => v !== undefined));

// ---------------------------------------------------------------------------------------------

describe('Prometheus metrics (/metrics)', function () {
  const REGION = 'obs-metrics';
  let app: TestApp;
  let families: Map<string, Family>;
  let scrape: Response;
  const live = new Set<string>();
  const randomPaths: string[] = [];
  const randomIds: string[] = [];

  async function loginOk(username: string, password: string): Promise<TokenResponse> {
    const tokens = await login(app, username, password);
    live.add(tokens.sessionId);
    return tokens;
  }

  before(async function () {
    app = await startTestApp('obs_metrics', { overrides: { region: REGION } });

    // 3 registrations (+1 refused), logins: 5 successes, 2 invalid_credentials, 1 account_disabled.
    const a = { username: uniqueUsername('a'), password: uniquePassword() };
    const b = { username: uniqueUsername('b'), password: uniquePassword() };
    const d = { username: uniqueUsername('d'), password: uniquePassword() };
    await register(app, a.username, a.password);
    await register(app, b.username, b.password);
    const dave = await register(app, d.username, d.password);
    await expectProblem(
      await app.request('/v1/auth/register', { method: 'POST', json: { username: uniqueUsername('w'), password: 'short' } }),
      400,
      'weak_password',
    );
    await app.container.users.setStatus(dave.id, 'disabled');

    const s1 = await loginOk(a.username, a.password);
    const s2 = await loginOk(a.username, a.password);
    const s3 = await loginOk(b.username, b.password);
    await expectProblem(
      await app.request('/v1/auth/login', { method: 'POST', json: { username: a.username, password: uniquePassword() } }),
      401,
      'invalid_credentials',
    );
    await expectProblem(
      await app.request('/v1/auth/login', { method: 'POST', json: { username: uniqueUsername('nobody'), password: uniquePassword() } }),
      401,
      'invalid_credentials',
    );
    await expectProblem(await app.request('/v1/auth/login', { method: 'POST', json: d }), 403, 'account_disabled');

    // Refreshes: rotated ×2, grace ×1, reused ×1 (revokes s1), invalid ×1.
    const refresh = (refreshToken: string) => app.request('/v1/auth/refresh', { method: 'POST', json: { refreshToken } });
    const rt1 = (await expectTokenResponse(await refresh(s1.refreshToken))).refreshToken;
    await expectTokenResponse(await refresh(s1.refreshToken));
    await expectTokenResponse(await refresh(rt1));
    await expectProblem(await refresh(s1.refreshToken), 401, 'refresh_token_reused');
    live.delete(s1.sessionId);
    await expectProblem(await refresh(`rt_${REGION}_${randomUUID()}_0_${randomBytes(16).toString('base64url')}`), 401, 'invalid_refresh_token');

    // Revocations: logout (s2), DELETE /v1/sessions/:id (s5) → reason logout ×2, reuse ×1.
    expect((await app.request('/v1/auth/logout', { method: 'POST', token: s2.accessToken, json: {} })).status).to.equal(204);
    live.delete(s2.sessionId);
    const s4 = await loginOk(a.username, a.password);
    const s5 = await loginOk(a.username, a.password);
    expect((await app.request(`/v1/sessions/${s5.sessionId}`, { method: 'DELETE', token: s4.accessToken })).status).to.equal(204);
    live.delete(s5.sessionId);

    // Cache: one miss, then one hit, for kind user.
    expect((await app.request('/v1/me', { token: s3.accessToken })).status).to.equal(200);
    expect((await app.request('/v1/me', { token: s3.accessToken })).status).to.equal(200);

    // Cardinality probes: 20 random unknown paths, 20 random (unknown) session ids.
    for (let i = 0; i < 20; i++) {
      const path = `/probe-${randomBytes(6).toString('hex')}/${randomUUID()}`;
      randomPaths.push(path);
      expect((await app.request(path)).status).to.equal(404);
      const id = randomUUID();
      randomIds.push(id);
      expect((await app.request(`/v1/sessions/${id}`, { method: 'DELETE', token: s4.accessToken })).status).to.equal(404);
    }

    scrape = await app.request('/metrics');
    families = parsePrometheus(await scrape.text());
  });

  after(async function () {
    await app?.close();
  });

  it('answers in the Prometheus text format; every name and label follows the conventions', function () {
    expect(scrape.status).to.equal(200);
    expect(scrape.headers.get('content-type')).to.match(/^text\/plain; version=0\.0\.4/);
    expect(families.size).to.be.above(20);
    for (const f of families.values()) {
      expect(f.name, 'every family has the authctl_ prefix').to.match(/^authctl_[a-z0-9_]+$/);
      expect(['counter', 'gauge', 'histogram', 'summary'], `type of ${f.name}`).to.include(f.type);
      expect(f.help, `HELP of ${f.name}`).to.be.a('string').with.length.above(0);
      if (f.type === 'counter') expect(f.name, 'counters end in _total').to.match(/_total$/);
      if (f.type === 'histogram') expect(f.name, 'histograms are in base units').to.match(/_(seconds|bytes)$/);
      for (const s of f.samples) {
        expect(s.labels.region, `region label on ${s.name}`).to.equal(REGION);
        for (const label of Object.keys(s.labels)) expect(label).to.match(/^[a-z_][a-z0-9_]*$/);
      }
    }
  });

  it('authctl_http_request_duration_seconds: histogram by method, route template and status', function () {
    const f = family(families, 'authctl_http_request_duration_seconds', 'histogram');
    expect(count(f, { method: 'POST', route: '/v1/auth/login', status: '200' })).to.equal(5);
    expect(count(f, { method: 'POST', route: '/v1/auth/login', status: '401' })).to.equal(2);
    expect(count(f, { method: 'POST', route: '/v1/auth/login', status: '403' })).to.equal(1);
    expect(count(f, { method: 'POST', route: '/v1/auth/register', status: '201' })).to.equal(3);
    expect(count(f, { method: 'DELETE', route: '/v1/sessions/:id', status: '204' })).to.equal(1);
    expect(count(f, { method: 'DELETE', route: '/v1/sessions/:id', status: '404' })).to.equal(20);
    expect(count(f, { method: 'GET', route: 'unmatched', status: '404' })).to.equal(20);
    const inf = f.samples.filter((s) => s.name.endsWith('_bucket') && s.labels.le === '+Inf');
    expect(inf.length).to.be.above(0);
    for (const s of f.samples) {
      if (s.name.endsWith('_count') || s.name.endsWith('_sum')) continue;
      expect(s.labels, `labels of ${s.name}`).to.have.all.keys('le', 'method', 'route', 'status', 'region');
      expect(s.labels.status).to.match(/^[1-5]\d\d$/);
    }
  });

  it('label cardinality stays bounded: unknown paths → "unmatched", ids → the template', function () {
    const f = family(families, 'authctl_http_request_duration_seconds', 'histogram');
    const routes = labelValues(f, 'route');
    expect([...routes].sort()).to.deep.equal(
      ['/v1/auth/login', '/v1/auth/logout', '/v1/auth/refresh', '/v1/auth/register', '/v1/me', '/v1/sessions/:id', 'unmatched'].sort(),
    );
    const text = f.samples.map((s) => JSON.stringify(s.labels)).join('\n');
    for (const raw of [...randomPaths, ...randomIds]) expect(text, 'no raw path or id in a label').not.to.include(raw.split('/').pop()!);
    const series = new Set(f.samples.filter((s) => s.name.endsWith('_count')).map((s) => JSON.stringify(s.labels)));
    expect(series.size, 'series of the request histogram after 40 distinct URLs').to.be.at.most(15);
  });

  it('authctl_logins_total by result; authctl_registrations_total', function () {
    const logins = family(families, 'authctl_logins_total', 'counter');
    expect(value(logins, { result: 'success' })).to.equal(5);
    expect(value(logins, { result: 'invalid_credentials' })).to.equal(2);
    expect(value(logins, { result: 'account_disabled' })).to.equal(1);
    expect(labelValues(logins, 'result')).to.deep.equal(new Set(['success', 'invalid_credentials', 'account_disabled']));
    const registrations = family(families, 'authctl_registrations_total', 'counter');
    expect(value(registrations, { result: 'success' })).to.equal(3);
    expect(value(registrations, { result: 'weak_password' })).to.equal(1);
  });

  it('authctl_tokens_issued_total by type; authctl_refreshes_total by result; authctl_sessions_revoked_total by reason', function () {
    const issued = family(families, 'authctl_tokens_issued_total', 'counter');
    // 5 logins (1 + 1 each), 2 rotations (1 + 1 each), 1 grace retry (access only).
    expect(value(issued, { type: 'access' })).to.equal(8);
    expect(value(issued, { type: 'refresh' })).to.equal(7);
    const refreshes = family(families, 'authctl_refreshes_total', 'counter');
    expect(value(refreshes, { result: 'rotated' })).to.equal(2);
    expect(value(refreshes, { result: 'grace' })).to.equal(1);
    expect(value(refreshes, { result: 'reused' })).to.equal(1);
    expect(value(refreshes, { result: 'invalid' })).to.equal(1);
    const revoked = family(families, 'authctl_sessions_revoked_total', 'counter');
    expect(value(revoked, { reason: 'logout' })).to.equal(2);
    expect(value(revoked, { reason: 'reuse' })).to.equal(1);
  });

  it('authctl_active_sessions equals the live sessions created', async function () {
    const f = family(families, 'authctl_active_sessions', 'gauge');
    expect(live.size).to.equal(2);
    expect(value(f)).to.equal(live.size);
    const { rows } = await app.container.db.writer.raw<{ rows: Array<{ n: number }> }>(
      'select count(*)::int as n from sessions where revoked_at is null and expires_at > now()',
    );
    expect(rows[0]!.n, 'the database agrees').to.equal(live.size);
  });

  it('cache: authctl_cache_lookups_total, authctl_cache_hit_ratio{kind="user"}, authctl_cache_up', function () {
    const lookups = family(families, 'authctl_cache_lookups_total', 'counter');
    expect(value(lookups, { kind: 'user', result: 'miss' })).to.equal(1);
    expect(value(lookups, { kind: 'user', result: 'hit' })).to.equal(1);
    for (const s of lookups.samples) {
      expect(['session', 'user']).to.include(s.labels.kind);
      expect(['hit', 'miss', 'error']).to.include(s.labels.result);
    }
    expect(value(family(families, 'authctl_cache_hit_ratio', 'gauge'), { kind: 'user' })).to.equal(0.5);
    expect(value(family(families, 'authctl_cache_up', 'gauge')), 'the memory cache is up').to.equal(1);
  });

  it('database: authctl_db_query_duration_seconds{pool="writer"} and authctl_db_pool_connections{pool,state}', function () {
    const queries = family(families, 'authctl_db_query_duration_seconds', 'histogram');
    expect(count(queries, { pool: 'writer', outcome: 'ok' })).to.be.above(10);
    expect(labelValues(queries, 'pool')).to.deep.equal(new Set(['writer']));
    const pool = family(families, 'authctl_db_pool_connections', 'gauge');
    for (const state of ['used', 'free', 'pending']) {
      const v = value(pool, { pool: 'writer', state });
      expect(v, `pool writer ${state}`).to.be.a('number').and.at.least(0);
    }
    expect(value(pool, { pool: 'writer', state: 'used' })! + value(pool, { pool: 'writer', state: 'free' })!, 'an open pool').to.be.above(0);
  });

  it('authctl_password_hash_duration_seconds by op (hash, verify)', function () {
    const f = family(families, 'authctl_password_hash_duration_seconds', 'histogram');
    expect(count(f, { op: 'hash' }), '3 registrations (and the dummy hash)').to.be.within(3, 4);
    expect(count(f, { op: 'verify' }), 'every login attempt verifies once').to.be.at.least(8);
    expect(labelValues(f, 'op')).to.deep.equal(new Set(['hash', 'verify']));
  });

  it('authctl_job_queue_depth per queue and state (the queue is installed)', function () {
    const f = family(families, 'authctl_job_queue_depth', 'gauge');
    const queues = labelValues(f, 'queue');
    expect(queues.size).to.be.above(0);
    for (const queue of queues) {
      for (const state of ['queued', 'active', 'failed']) expect(value(f, { queue, state }), `${queue} ${state}`).to.be.a('number').and.at.least(0);
    }
    expect(labelValues(f, 'state')).to.deep.equal(new Set(['queued', 'active', 'failed']));
  });

  it('default process metrics carry the authctl_ prefix', function () {
    expect(value(family(families, 'authctl_process_cpu_user_seconds_total', 'counter'))).to.be.above(0);
    expect(value(family(families, 'authctl_process_resident_memory_bytes', 'gauge'))).to.be.above(0);
    expect(family(families, 'authctl_nodejs_heap_size_used_bytes', 'gauge').samples).to.have.length(1);
    expect(family(families, 'authctl_nodejs_eventloop_lag_seconds', 'gauge').samples).to.have.length(1);
  });

  describe('on the admin port (http.metricsPort)', function () {
    let container: Container;
    let server: RunningServer;

    before(async function () {
      container = buildContainer(testConfig(app.db.url, { region: REGION, http: { metricsPort: 0 } }));
      server = await startServer(container, { host: '127.0.0.1', port: 0 });
    });

    after(async function () {
      await server?.close();
      await shutdown(container);
    });

    it('serves /metrics on the admin listener only; the main listener answers 404', async function () {
      expect(server.metricsUrl).to.be.a('string');
      expect(new URL(server.metricsUrl!).port).to.not.equal(new URL(server.url).port);
      expect((await fetch(`${server.url}/healthz`)).status).to.equal(200);

      await expectProblem(await fetch(`${server.url}/metrics`), 404, 'not_found');

      const res = await fetch(server.metricsUrl!);
      expect(res.status).to.equal(200);
      expect(res.headers.get('content-type')).to.match(/^text\/plain; version=0\.0\.4/);
      const admin = parsePrometheus(await res.text());
      const http = family(admin, 'authctl_http_request_duration_seconds', 'histogram');
      expect(count(http, { method: 'GET', route: '/healthz', status: '200' })).to.equal(1);
      expect(count(http, { method: 'GET', route: 'unmatched', status: '404' }), 'the refused /metrics on the main listener').to.equal(1);

      expect((await fetch(new URL('/other', server.metricsUrl))).status, 'the admin listener serves nothing else').to.equal(404);
    });
  });
});
