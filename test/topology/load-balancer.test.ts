import type { ChildProcessWithoutNullStreams } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { expect } from 'chai';
import { buildContainer } from '../../src/container.js';
import { shutdown } from '../../src/runtime.js';
import { PROXY_IDLE_GRACE_MS, startServer, type RunningServer } from '../../src/server.js';
import { migrateDatabase, testConfig } from '../helpers/app.js';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';
import { LogCapture } from '../helpers/log-capture.js';
import { rawRequest } from '../helpers/http-raw.js';
import { nginxBinary, NginxProcess, renderNginxConf } from '../helpers/nginx.js';
import { deleteKeys, freePort, REDIS_URL, uniquePrefix } from '../helpers/redis-server.js';
import { repoRoot, spawnCli } from '../cli/run-cli.js';

const PASSWORD = 'load balanced correct horse';
/** The load: loops of GET /v1/me, of refresh chains, and one of logins. */
const ME_LOOPS = 4;
const REFRESH_LOOPS = 3;

/**
 * A request straight to one server on a connection closed after the answer: the test must hold no
 * idle connection that would keep a stopping server waiting.
 */
async function direct(url: string, method: string, opts: { token?: string; body?: unknown } = {}): Promise<{ status: number; body: string }> {
  const payload = opts.body === undefined ? undefined : JSON.stringify(opts.body);
  const headers: Record<string, string> = { connection: 'close', ...(opts.token ? { authorization: `Bearer ${opts.token}` } : {}) };
  if (payload !== undefined) Object.assign(headers, { 'content-type': 'application/json', 'content-length': String(Buffer.byteLength(payload)) });
  const { status, body } = await rawRequest(url, { method, path: new URL(url).pathname, headers, chunks: payload === undefined ? [] : [payload] });
  return { status, body };
}

/** `authctl serve` as a user starts it, configured the way docker/compose.yml configures a server. */
class ServeProcess {
  /** Log lines (JSON on stdout) and the operator's lines (stderr). */
  stdout = '';
  stderr = '';
  exit: Promise<{ code: number | null; signal: NodeJS.Signals | null; at: number }>;

  private constructor(
    readonly port: number,
    readonly child: ChildProcessWithoutNullStreams,
  ) {
    child.stdin.end();
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => (this.stdout += chunk));
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => (this.stderr += chunk));
    this.exit = new Promise((resolve) => child.once('exit', (code, signal) => resolve({ code, signal, at: Date.now() })));
  }

  static async start(env: Record<string, string>, flags: string[] = []): Promise<ServeProcess> {
    const port = await freePort();
    const server = new ServeProcess(port, spawnCli(['serve', '--port', String(port), ...flags], { env }));
    const deadline = Date.now() + 20_000;
    while (
      (await direct(`${server.url}/readyz`, 'GET').then(
        (r) => r.status,
        () => 0,
      )) !== 200
    ) {
      if (server.child.exitCode !== null || Date.now() > deadline) throw new Error(`authctl serve did not become ready:\n${server.stderr}${server.stdout}`);
      await sleep(50);
    }
    return server;
  }

  get url(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  /** Its log lines of one event (one per process). */
  events(event: string): Array<Record<string, unknown>> {
    return this.stdout
      .split('\n')
      .filter((line) => line.startsWith('{'))
      .map((line) => JSON.parse(line) as Record<string, unknown>)
      .filter((entry) => entry.event === event);
  }

  get address(): string {
    return `127.0.0.1:${this.port}`;
  }

  get running(): boolean {
    return this.child.exitCode === null && this.child.signalCode === null;
  }
}

interface Outcome {
  method: string;
  path: string;
  start: number;
  end: number;
  /** 0: no HTTP answer at all. */
  status: number;
  body: string;
  contentType: string | null;
  retryAfter: string | null;
}

/**
 * A steady mixed load through the balancer: loops of `GET /v1/me`, of refresh chains (each a
 * session rotating its token; a failed refresh is retried with the same token, as a client
 * would), and a few logins.
 */
class Load {
  readonly outcomes: Outcome[] = [];
  private readonly inFlight = new Set<{ method: string; start: number }>();
  private running = true;
  private readonly loops: Array<Promise<void>>;

  constructor(
    private readonly url: string,
    sessions: { me: string[]; refresh: string[]; login: string },
  ) {
    this.loops = [
      ...sessions.me.map((token) => this.loop(() => this.call('GET', '/v1/me', { token }))),
      ...sessions.refresh.map((first) => {
        let refreshToken = first;
        return this.loop(async () => {
          const outcome = await this.call('POST', '/v1/auth/refresh', { body: { refreshToken } });
          if (outcome.status === 200) refreshToken = (JSON.parse(outcome.body) as { refreshToken: string }).refreshToken;
        });
      }),
      this.loop(async () => {
        await this.call('POST', '/v1/auth/login', { body: { username: sessions.login, password: PASSWORD } });
        await sleep(100); // a few logins: argon2 is the costliest request
      }),
    ];
  }

  private async loop(step: () => Promise<unknown>): Promise<void> {
    while (this.running) await step();
  }

  private async call(method: string, path: string, opts: { token?: string; body?: unknown }): Promise<Outcome> {
    const marker = { method, start: Date.now() };
    this.inFlight.add(marker);
    const headers: Record<string, string> = opts.token ? { authorization: `Bearer ${opts.token}` } : { 'content-type': 'application/json' };
    const outcome: Outcome = { method, path, start: marker.start, end: 0, status: 0, body: '', contentType: null, retryAfter: null };
    try {
      const res = await fetch(this.url + path, {
        method,
        headers,
        body: opts.body === undefined ? null : JSON.stringify(opts.body),
        signal: AbortSignal.timeout(10_000),
      });
      Object.assign(outcome, {
        status: res.status,
        body: await res.text(),
        contentType: res.headers.get('content-type'),
        retryAfter: res.headers.get('retry-after'),
      });
    } catch (err) {
      outcome.body = String(err);
    }
    outcome.end = Date.now();
    this.inFlight.delete(marker);
    this.outcomes.push(outcome);
    return outcome;
  }

  /** Requests sent and not answered yet, by method. */
  inFlightNow(): { GET: number; POST: number } {
    const counts = { GET: 0, POST: 0 };
    for (const { method } of this.inFlight) counts[method as 'GET' | 'POST'] += 1;
    return counts;
  }

  /** Resolves once `n` more requests have been answered. */
  async answered(n: number, timeoutMs = 10_000): Promise<void> {
    const target = this.outcomes.length + n;
    const deadline = Date.now() + timeoutMs;
    while (this.outcomes.length < target) {
      if (Date.now() > deadline) throw new Error(`the load stalled: ${this.outcomes.length} of ${target} answers`);
      await sleep(10);
    }
  }

  async stop(): Promise<Outcome[]> {
    this.running = false;
    await Promise.all(this.loops);
    return this.outcomes;
  }
}

const failed = (outcomes: Outcome[]) => outcomes.filter((o) => o.status !== 200);
const describeOutcomes = (outcomes: Outcome[]) => outcomes.map((o) => `${o.method} ${o.path} → ${o.status} ${o.body.slice(0, 200)}`).join('\n');

/** A request on a raw keep-alive connection: resolves with the head and whether the server closed it after. */
function rawExchange(socket: Socket, head: string, body = ''): Promise<{ head: string; closed: Promise<void> }> {
  const closed = new Promise<void>((resolve) => socket.once('end', () => resolve()));
  return new Promise((resolve, reject) => {
    let received = '';
    const onData = (chunk: Buffer) => {
      received += chunk.toString('utf8');
      const end = received.indexOf('\r\n\r\n');
      const length = /content-length: (\d+)/i.exec(received)?.[1];
      if (end !== -1 && length !== undefined && received.length >= end + 4 + Number(length)) {
        socket.off('data', onData);
        resolve({ head: received.slice(0, end), closed });
      }
    };
    socket.on('data', onData);
    socket.once('error', reject);
    socket.write(head + body);
  });
}

function openConnection(port: number): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, '127.0.0.1', () => resolve(socket));
    socket.once('error', reject);
  });
}

describe('a stopping server behind a proxy (src/server.ts)', function () {
  let db: TestDatabase;
  let server: RunningServer;
  let container: ReturnType<typeof buildContainer>;

  before(async function () {
    db = await createTestDatabase('lb_drain');
    await migrateDatabase(db.url);
    container = buildContainer(testConfig(db.url, { http: { trustProxy: true } }));
    server = await startServer(container, { host: '127.0.0.1', port: 0 });
  });

  after(async function () {
    await shutdown(container);
    await db?.drop();
  });

  it('refuses new connections at once, ends busy ones after their response, and leaves idle ones to the proxy', async function () {
    const port = Number(new URL(server.url).port);
    const idle = await openConnection(port);
    const warm = await rawExchange(idle, 'GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n');
    expect(warm.head)
      .to.match(/^HTTP\/1\.1 200/)
      .and.match(/connection: keep-alive/i);
    // A request in flight when the stop begins: its body has not arrived yet.
    const busy = await openConnection(port);
    const body = JSON.stringify({ username: 'nobody', password: 'not the password' });
    busy.write(`POST /v1/auth/login HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n`);
    await sleep(50);

    const closing = server.close();
    const refused = await openConnection(port).then(
      (socket) => (socket.destroy(), 'accepted'),
      (err: NodeJS.ErrnoException) => err.code,
    );
    expect(refused).to.equal('ECONNREFUSED');

    const answer = await rawExchange(busy, '', body);
    expect(answer.head)
      .to.match(/^HTTP\/1\.1 401/)
      .and.match(/connection: close/i);
    await answer.closed;

    // Behind a proxy the idle connection stays open: the proxy may be sending on it right now.
    await sleep(500);
    expect(idle.readyState).to.equal('open');
    const last = await rawExchange(idle, 'GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n');
    expect(last.head)
      .to.match(/^HTTP\/1\.1 200/)
      .and.match(/connection: close/i);
    await last.closed;
    const result = await closing;
    expect(result).to.include({ closedIdle: 0, cut: 0 });
    expect(result.durationMs).to.be.below(PROXY_IDLE_GRACE_MS);
  });
});

describe('a stopping server whose client hung up mid-request (src/server.ts)', function () {
  let db: TestDatabase;

  before(async function () {
    db = await createTestDatabase('lb_hangup');
    await migrateDatabase(db.url);
  });
  after(async function () {
    await db?.drop();
  });

  it('close waits for the request still running before the container is shut down: no error, the login completes', async function () {
    const logs = new LogCapture();
    // A costly hash keeps the login in argon2id well after its client has gone.
    const container = buildContainer(testConfig(db.url, { hash: { memoryCost: 262_144, timeCost: 3 }, log: { level: 'info' } }), { logSink: logs });
    const server = await startServer(container, { host: '127.0.0.1', port: 0 });
    try {
      const username = `hangup${Date.now()}`;
      const password = 'a passphrase nobody guesses';
      await container.users.register({ username, password });
      const socket = await openConnection(Number(new URL(server.url).port));
      const body = JSON.stringify({ username, password });
      socket.write(`POST /v1/auth/login HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`);
      await sleep(50);
      socket.destroy();
      await server.close();
    } finally {
      await shutdown(container);
    }
    expect(logs.events('http.error'), 'no request failed because the container closed under it').to.deep.equal([]);
    expect(logs.events('login.succeeded'), 'the login ran to its end').to.have.length(1);
  });
});

describe('several `authctl serve` behind nginx (docker/nginx.conf)', function () {
  this.timeout(60_000);
  const binary = nginxBinary();
  const prefix = uniquePrefix('lb');
  let db: TestDatabase;
  let servers: ServeProcess[] = [];
  let nginx: NginxProcess;
  let readers: string[];
  /** Fresh refresh chains for each load: one that ran before has rotated its tokens. */
  const sessions = async () => ({
    me: readers,
    refresh: await Promise.all(Array.from({ length: REFRESH_LOOPS }, async () => (await login('lb-rotator')).refreshToken)),
    login: 'lb-login',
  });

  const login = async (username: string) => {
    const res = await direct(`${nginx.url}/v1/auth/login`, 'POST', { body: { username, password: PASSWORD } });
    expect(res.status, res.body).to.equal(200);
    return JSON.parse(res.body) as { accessToken: string; refreshToken: string };
  };

  before(async function () {
    if (!binary) {
      console.log('    nginx is not installed (apt-get install nginx-light): skipping the load-balancer tests');
      this.skip();
    }
    db = await createTestDatabase('load_balancer');
    await migrateDatabase(db.url);
    const env = {
      AUTHCTL_DATABASE_URL: db.url,
      AUTHCTL_REDIS_URL: REDIS_URL,
      AUTHCTL_CACHE_PREFIX: prefix,
      AUTHCTL_TRUST_PROXY: 'true',
      AUTHCTL_PROXY_HOPS: '1',
      AUTHCTL_KEY_ACTIVATION_DELAY: '0',
      // For the `server.stopped` lines (one line per request too: cheap at this load).
      AUTHCTL_LOG_LEVEL: 'info',
    };
    // The first one is `serve --processes 2`: a deploy stops the whole of it, both processes drain.
    servers = await Promise.all([['--processes', '2'], [], []].map((flags) => ServeProcess.start(env, flags)));
    const port = await freePort();
    const conf = renderNginxConf(readFileSync(join(repoRoot, 'docker/nginx.conf'), 'utf8'), {
      servers: servers.map((s) => s.address),
      listen: `127.0.0.1:${port}`,
    });
    nginx = await NginxProcess.start(binary, conf, port);

    for (const username of ['lb-reader', 'lb-rotator', 'lb-login'])
      expect((await direct(`${nginx.url}/v1/auth/register`, 'POST', { body: { username, password: PASSWORD } })).status).to.equal(201);
    readers = await Promise.all(Array.from({ length: ME_LOOPS }, async () => (await login('lb-reader')).accessToken));
  });

  after(async function () {
    for (const server of servers) if (server.running) server.child.kill('SIGKILL');
    await Promise.all(servers.map((s) => s.exit));
    await nginx?.stop();
    await deleteKeys(REDIS_URL, prefix);
    await db?.drop();
  });

  it('spreads requests over every server', async function () {
    for (let i = 0; i < 12; i++) expect((await direct(`${nginx.url}/healthz`, 'GET')).status).to.equal(200);
    const used = new Set(nginx.accessLog().flatMap((entry) => entry.upstreams));
    expect([...used]).to.include.members(servers.map((s) => s.address));
  });

  it('a logout on one server is refused by every other server (each of its processes) within 2 s', async function () {
    const { accessToken } = await login('lb-reader');
    const [cluster, origin, other] = servers;
    const me = (server: ServeProcess) => direct(`${server.url}/v1/me`, 'GET', { token: accessToken }).then((r) => r.status);
    // Each verifies (and remembers) the token first: the revocation must reach warm caches.
    for (const server of servers) for (let i = 0; i < 4; i++) expect(await me(server)).to.equal(200);

    const revokedAt = Date.now();
    expect((await direct(`${origin!.url}/v1/auth/logout`, 'POST', { token: accessToken, body: {} })).status).to.equal(204);
    // Refused 4 times in a row on fresh connections: both processes of `--processes 2` refuse it.
    const delays = await Promise.all(
      [cluster!, other!].map(async (server) => {
        let since: number | undefined;
        for (let streak = 0; streak < 4;) {
          const status = await me(server);
          streak = status === 401 ? streak + 1 : 0;
          if (streak === 1) since = Date.now();
          if (streak === 0 && Date.now() - revokedAt > 2_000) throw new Error(`${server.address} still accepts the revoked token after 2 s`);
        }
        return since! - revokedAt;
      }),
    );
    for (const delay of delays) expect(delay).to.be.below(2_000);
    console.log(`      revocation reached the other servers in ${delays.join(' ms, ')} ms`);
  });

  it('a server stopped with SIGTERM under load (a rolling deploy) fails no request', async function () {
    const victim = servers[0]!;
    const load = new Load(nginx.url, await sessions());
    await load.answered(200);
    const signalled = Date.now();
    victim.child.kill('SIGTERM');
    const exit = await victim.exit;
    await load.answered(200);
    const outcomes = await load.stop();

    expect(failed(outcomes), describeOutcomes(failed(outcomes))).to.deep.equal([]);
    expect({ code: exit.code, signal: exit.signal }, victim.stderr).to.deep.equal({ code: 0, signal: null });
    // Both processes drained: nothing was closed from their side, nothing cut.
    const stopped = victim.events('server.stopped');
    expect(stopped.map(({ level, closedIdle, cut }) => ({ level, closedIdle, cut }))).to.deep.equal([
      { level: 'info', closedIdle: 0, cut: 0 },
      { level: 'info', closedIdle: 0, cut: 0 },
    ]);
    const after = nginx.accessLog().filter((entry) => entry.at >= signalled);
    const retried = after.filter((entry) => entry.upstreams.length > 1 && entry.upstreams[0] === victim.address);
    const drained = after.filter((entry) => entry.upstreams.length === 1 && entry.upstreams[0] === victim.address);
    console.log(
      `      ${outcomes.length} requests, 0 failed; its processes stopped serving in ${stopped.map((e) => String(e.durationMs)).join(' and ')} ms, ` +
        `the server exited ${exit.at - signalled} ms after SIGTERM; ` +
        `${drained.length} answered by it while draining, ${retried.length} retried elsewhere after a refused connection`,
    );
  });

  it('a server killed under load fails only POSTs in flight on it; every GET succeeds', async function () {
    const victim = servers[1]!;
    const load = new Load(nginx.url, await sessions());
    await load.answered(200);
    const inFlight = load.inFlightNow();
    const killed = Date.now();
    victim.child.kill('SIGKILL');
    const exit = await victim.exit;
    await load.answered(200);
    const outcomes = await load.stop();

    const failures = failed(outcomes);
    expect(exit.signal).to.equal('SIGKILL');
    // Only requests on it when it died (after the kill, before the process was gone): POSTs, which
    // nginx must not retry.
    for (const failure of failures) {
      const seen = describeOutcomes([failure]);
      expect(failure.method, seen).to.equal('POST');
      expect(failure.start, seen).to.be.at.most(exit.at);
      expect(failure.end, seen).to.be.at.least(killed);
      // nginx's own answer: a problem like authctl's 503s, with Retry-After.
      expect({ status: failure.status, type: failure.contentType, retryAfter: failure.retryAfter }, seen).to.deep.equal({
        status: 503,
        type: 'application/problem+json',
        retryAfter: '1',
      });
      expect(JSON.parse(failure.body), seen).to.include({ status: 503, code: 'unavailable' });
    }
    // No more failures than POSTs that were on the way while it died (a loaded machine widens
    // that window, so a POST loop may lose two; never one that started after the process was gone).
    const exposed = outcomes.filter((o) => o.method === 'POST' && o.start <= exit.at && o.end >= killed);
    expect(failures.length).to.be.at.most(exposed.length);
    const log = nginx.accessLog().filter((entry) => entry.at >= killed);
    const unavailable = log.filter((entry) => entry.status === 503);
    expect(unavailable.length).to.equal(failures.length);
    for (const entry of unavailable) expect(entry.upstreams, JSON.stringify(entry)).to.deep.equal([victim.address]);
    const rescued = log.filter((entry) => entry.method === 'GET' && entry.upstreams.includes(victim.address) && entry.status === 200);
    console.log(
      `      ${outcomes.length} requests; ${failures.length} failed, all POSTs (in flight at the kill: ${inFlight.POST} POSTs, ${inFlight.GET} GETs; ` +
        `the process was gone ${exit.at - killed} ms later); ` +
        `${rescued.length} GETs retried on another server`,
    );

    // The refresh chains whose request was lost carry on: a retry with the same token is the grace retry.
    const refreshes = outcomes.filter((o) => o.path === '/v1/auth/refresh' && o.start > exit.at);
    expect(refreshes.length).to.be.greaterThan(0);
    expect(failed(refreshes), describeOutcomes(failed(refreshes))).to.deep.equal([]);
  });

  it('a server stopped while nginx holds idle connections to it waits for nginx to close them (keepalive_timeout < the grace)', async function () {
    const upstream = /upstream authctl \{[^}]*keepalive_timeout (\d+)s;/.exec(readFileSync(join(repoRoot, 'docker/nginx.conf'), 'utf8'));
    expect(Number(upstream?.[1]) * 1000, 'the upstream keepalive_timeout').to.be.below(PROXY_IDLE_GRACE_MS);
    const last = servers[2]!;
    // The loads left nginx's pooled connections to it idle; one more request uses one of them.
    expect((await fetch(`${nginx.url}/healthz`)).status).to.equal(200);
    last.child.kill('SIGTERM');
    const exit = await last.exit;
    expect({ code: exit.code, signal: exit.signal }, last.stderr).to.deep.equal({ code: 0, signal: null });
    // It waited for nginx (a server closing them itself stops at once) and closed none itself.
    const [stopped] = last.events('server.stopped');
    expect(stopped).to.include({ level: 'info', closedIdle: 0, cut: 0 });
    expect(stopped!.durationMs).to.be.within(1_000, PROXY_IDLE_GRACE_MS);
    console.log(`      stopped serving ${String(stopped!.durationMs)} ms after SIGTERM, once nginx had closed its idle connections`);
  });
});
