import type { ChildProcessWithoutNullStreams } from 'node:child_process';
import { once } from 'node:events';
import { readdirSync, readFileSync } from 'node:fs';
import { request } from 'node:http';
import { expect } from 'chai';
import { buildContainer } from '../../src/container.js';
import { testConfig } from '../helpers/app.js';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';
import { connect, createServer } from 'node:net';
import { describeRun, runCli, spawnCli } from './run-cli.js';
import { shutdown } from '../../src/runtime.js';

/** Pids whose parent is `pid` (the cluster's workers). */
function childrenOf(pid: number): number[] {
  const out: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const ppid = Number(readFileSync(`/proc/${entry}/stat`, 'utf8').split(') ')[1]!.split(' ')[1]);
      if (ppid === pid) out.push(Number(entry));
    } catch {
      // exited meanwhile
    }
  }
  return out;
}

/** One request on a connection of its own, so the cluster's round-robin spreads them. */
function freshConnection(url: string, method = 'GET', body?: unknown): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const payload = body === undefined ? undefined : JSON.stringify(body);
    const req = request(url, { method, agent: false, headers: payload ? { 'content-type': 'application/json' } : {} }, (res) => {
      let text = '';
      res.setEncoding('utf8').on('data', (chunk: string) => (text += chunk));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: text }));
    });
    req.setTimeout(5_000, () => req.destroy(new Error(`${method} ${url}: no answer within 5 s`)));
    req.on('error', reject);
    req.end(payload);
  });
}

/**
 * A POST on a connection of its own, as a balancer sends one: `refused` (nothing was sent, a
 * balancer resends it elsewhere), `answered`, or `lost` (accepted, the request written, then
 * closed without an answer — a POST a balancer must not resend).
 */
function postOnce(port: number): Promise<'refused' | 'answered' | 'lost'> {
  const body = '{}';
  return new Promise((resolve) => {
    const socket = connect(port, '127.0.0.1');
    let connected = false;
    let received = '';
    socket.on('connect', () => {
      connected = true;
      socket.write(
        `POST /v1/auth/refresh HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: ${body.length}\r\nConnection: close\r\n\r\n${body}`,
      );
    });
    socket.setEncoding('utf8').on('data', (chunk: string) => (received += chunk));
    socket.on('error', () => undefined);
    socket.on('close', () => resolve(!connected ? 'refused' : /^HTTP\/1\.1 \d{3} /.test(received) ? 'answered' : 'lost'));
  });
}

async function waitUntil(what: string, condition: () => boolean | Promise<boolean>, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

describe('authctl serve --processes (cluster)', function () {
  this.timeout(60_000);
  let db: TestDatabase;
  let server: ChildProcessWithoutNullStreams;
  let url: string;
  let stderr = '';

  before(async function () {
    db = await createTestDatabase('serve_cluster');
    const container = buildContainer(testConfig(db.url));
    try {
      await container.db.migrateLatest();
    } finally {
      await shutdown(container);
    }
    server = spawnCli(['serve', '--port', '0', '--processes', '2'], { databaseUrl: db.url });
    server.stdin.end();
    // Drain the log lines: a full pipe would block the processes writing to it.
    server.stdout.resume();
    server.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
    await waitUntil('the listening line', () => /authctl serving region \S+ on (http:\/\/\S+) \(2 processes\)/.test(stderr), 20_000);
    url = /on (http:\/\/\S+) /.exec(stderr)![1]!;
  });

  after(async function () {
    if (server && server.exitCode === null && server.signalCode === null) server.kill('SIGKILL');
    await db?.drop();
  });

  it('runs two worker processes behind one port', function () {
    expect(childrenOf(server.pid!)).to.have.length(2);
  });

  it('serves the whole flow whichever process answers, and /metrics counts every process', async function () {
    const username = `cluster-${process.pid}`;
    const password = 'cluster correct horse battery';
    expect((await freshConnection(`${url}/v1/auth/register`, 'POST', { username, password })).status).to.equal(201);
    const login = await freshConnection(`${url}/v1/auth/login`, 'POST', { username, password });
    expect(login.status).to.equal(200);
    let token = (JSON.parse(login.body) as { refreshToken: string }).refreshToken;
    // Each refresh on a new connection: consecutive ones land on different processes.
    for (let i = 0; i < 6; i++) {
      const refreshed = await freshConnection(`${url}/v1/auth/refresh`, 'POST', { refreshToken: token });
      expect(refreshed.status, refreshed.body).to.equal(200);
      token = (JSON.parse(refreshed.body) as { refreshToken: string }).refreshToken;
    }

    for (let i = 0; i < 10; i++) expect((await freshConnection(`${url}/healthz`)).status).to.equal(200);
    const metrics = await freshConnection(`${url}/metrics`);
    expect(metrics.status).to.equal(200);
    const healthz = /authctl_http_request_duration_seconds_count\{[^}]*route="\/healthz"[^}]*status="200"[^}]*\} (\d+)/.exec(metrics.body);
    const refreshes = /authctl_http_request_duration_seconds_count\{[^}]*route="\/v1\/auth\/refresh"[^}]*status="200"[^}]*\} (\d+)/.exec(metrics.body);
    // Round-robin put about half of these on each process: only the aggregate has them all.
    expect(Number(healthz?.[1])).to.equal(10);
    expect(Number(refreshes?.[1])).to.equal(6);
  });

  it('replaces a worker that dies, and keeps answering meanwhile', async function () {
    const [victim, survivor] = childrenOf(server.pid!);
    process.kill(victim!, 'SIGKILL');
    await waitUntil('the primary to notice', () => /a server process died/.test(stderr));
    // The survivor (and soon the replacement) answer every new connection.
    for (let i = 0; i < 4; i++) expect((await freshConnection(`${url}/healthz`)).status).to.equal(200);
    await waitUntil('a replacement worker', () => {
      const now = childrenOf(server.pid!);
      return now.length === 2 && now.includes(survivor!) && !now.includes(victim!);
    });
    await waitUntil('the replacement to answer', async () => {
      const statuses = await Promise.all([1, 2, 3, 4].map(() => freshConnection(`${url}/readyz`).then((r) => r.status)));
      return statuses.every((s) => s === 200);
    });
  });

  it('stops every process and exits 0 on SIGTERM; under a stream of new connections it answers every one it accepted', async function () {
    const workers = childrenOf(server.pid!);
    const port = Number(new URL(url).port);
    const exited = once(server, 'exit') as Promise<[number | null, NodeJS.Signals | null]>;
    let gone = false;
    void exited.then(() => (gone = true));
    const outcomes = { refused: 0, answered: 0, lost: 0 };
    // A balancer's connections to a draining server: each answer says `Connection: close`, so the
    // next request comes on a new connection, until the port refuses them.
    const loops = Array.from({ length: 16 }, async () => {
      while (!gone) outcomes[await postOnce(port)] += 1;
    });
    await waitUntil('the load to run', () => outcomes.answered >= 100);
    server.kill('SIGTERM');
    const [code, signal] = await exited;
    await Promise.all(loops);
    expect({ code, signal }).to.deep.equal({ code: 0, signal: null });
    for (const pid of workers) expect(() => process.kill(pid, 0), `worker ${pid} still runs`).to.throw();
    expect(outcomes.refused, 'connections refused once the port closed').to.be.greaterThan(0);
    expect(outcomes.lost, `accepted, then closed unanswered (of ${outcomes.answered} answered)`).to.equal(0);
  });

  it('exits 1, saying why, when the port is taken (having started the workers, before it listens)', async function () {
    const blocker = createServer();
    await new Promise<void>((resolve) => blocker.listen(0, '127.0.0.1', resolve));
    const { port } = blocker.address() as { port: number };
    try {
      const result = await runCli(['serve', '--port', String(port), '--processes', '2'], { databaseUrl: db.url, timeoutMs: 20_000 });
      expect(result.code, describeRun(result)).to.equal(1);
      expect(result.stderr).to.include(`authctl: listen EADDRINUSE: address already in use 127.0.0.1:${port}; stopping`);
      expect(result.stderr).not.to.match(/authctl serving region/);
    } finally {
      blocker.close();
    }
  });
});
