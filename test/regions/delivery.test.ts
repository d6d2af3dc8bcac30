import { expect } from 'chai';
import { createServer, request, type Server } from 'node:http';
import { signRequest } from '../../src/core/replication/signature.js';
import { expectProblem, login, register, uniquePassword, uniqueUsername } from '../helpers/http-assert.js';
import { eventually, pairSecret, startRegions, type RegionNode } from './support.js';

async function userAt(node: RegionNode, username: string): Promise<true | undefined> {
  const rows = await node.query('select 1 from users where username = ?', [username]);
  return rows.length > 0 ? true : undefined;
}

async function sessionAt(node: RegionNode, sessionId: string): Promise<true | undefined> {
  const rows = await node.query('select 1 from sessions where id = ?', [sessionId]);
  return rows.length > 0 ? true : undefined;
}

/** A server on `port` that answers every request with `status` (a peer whose database is down). */
function answering(port: number, status: number): Promise<Server> {
  const server = createServer((req, res) => {
    req.resume();
    res.writeHead(status, { 'content-type': 'application/problem+json' }).end('{"code":"unavailable"}');
  });
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, '127.0.0.1', () => resolve(server));
  });
}

/** POSTs with a Content-Length header but only a few body bytes: what answers before reading? */
function postClaimingLength(url: string, headers: Record<string, string>, length: number): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request(
      `${url}/internal/replication`,
      { method: 'POST', headers: { ...headers, 'content-type': 'application/json', 'content-length': String(length) } },
      (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => (body += chunk));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
      },
    );
    req.on('error', reject);
    req.write('{"origin":');
    // Never finished: an answer can only come from checks made before the body.
  });
}

describe('regions: delivery to peers that are down, slow to learn, or not peers at all', function () {
  this.timeout(120_000);
  let a: RegionNode;
  let b: RegionNode;
  let c: RegionNode;

  before(async () => {
    [a, b, c] = (await startRegions(['da', 'db', 'dc'], () => ({ regions: { maxAttempts: 2 } }))) as [RegionNode, RegionNode, RegionNode];
  });
  after(async () => {
    await Promise.all([a, b, c].map((n) => n?.close()));
  });

  it('a peer answering 503 (its database down) is retried, never dead-lettered, and gets everything once it recovers', async () => {
    await b.stopHttp();
    const unavailable = await answering(b.port, 503);
    const username = uniqueUsername('d503');
    try {
      await register(a, username, uniquePassword());
      // Well past maxAttempts (2) refusals' worth of tries.
      const status = await eventually('several failed deliveries to B', async () => {
        const row = (await a.container.replication.status()).find((s) => s.peer === 'db');
        return row?.lastError?.includes('503') ? row : undefined;
      });
      await new Promise((resolve) => setTimeout(resolve, 1_500));
      const later = (await a.container.replication.status()).find((s) => s.peer === 'db')!;
      expect(status.lastError).to.contain('503');
      expect(later.deadLettered, 'nothing dead-lettered').to.equal(0);
      expect(later.backlog).to.be.greaterThan(0);
    } finally {
      await new Promise<void>((resolve) => unavailable.close(() => resolve()));
      unavailable.closeAllConnections();
      await b.startHttp();
    }
    await eventually('the user reaches B once it recovers', () => userAt(b, username));
  });

  it("a traveller's session reaches C from B even when the user's home region A died before telling C", async () => {
    const username = uniqueUsername('trv');
    const password = uniquePassword();
    await c.stopHttp();
    let sessionId: string;
    try {
      await register(a, username, password);
      await eventually('the user reaches B', () => userAt(b, username));
      // A dies before C ever heard of the user.
      await a.stopHttp();
      await a.container.replication.stopShipping();
      sessionId = (await login(b, username, password)).sessionId;
    } finally {
      await c.startHttp();
    }
    try {
      await eventually("B's session of A's user reaches C without A", () => sessionAt(c, sessionId));
      expect(await userAt(c, username)).to.equal(true);
      // And B's stream to C is not stuck behind it: a logout at B arrives too.
      await b.container.sessions.revoke(sessionId, 'logout');
      await eventually('the logout reaches C', async () => {
        const [row] = await c.query<{ revoked: boolean }>('select revoked_at is not null as revoked from sessions where id = ?', [sessionId]);
        return row?.revoked ? true : undefined;
      });
    } finally {
      await a.startHttp();
      await a.container.replication.startShipping();
    }
  });

  it('a password change in A revokes the session B opened while cut off from A, in every region, and keeps the session that made the change', async () => {
    const username = uniqueUsername('cut');
    const password = uniquePassword();
    await register(a, username, password);
    const changer = await login(a, username, password);
    await eventually('the user reaches B', () => userAt(b, username));
    await eventually('the changing session reaches B', () => sessionAt(b, changer.sessionId));
    // A partition (neither side ships): B opens a session A does not know; A changes the password.
    await a.container.replication.stopShipping();
    await b.container.replication.stopShipping();
    let stray: string;
    try {
      stray = (await login(b, username, password)).sessionId;
      const changed = await a.request('/v1/auth/password', {
        method: 'POST',
        token: changer.accessToken,
        json: { currentPassword: password, newPassword: uniquePassword() },
      });
      expect(changed.status).to.equal(204);
    } finally {
      await a.container.replication.startShipping();
      await b.container.replication.startShipping();
    }
    const revokedAt = async (node: RegionNode, id: string) => {
      const [row] = await node.query<{ revoked: boolean }>('select revoked_at is not null as revoked from sessions where id = ?', [id]);
      return row?.revoked;
    };
    await eventually('the stray session is revoked in A, B and C', async () => {
      for (const n of [a, b, c]) if ((await revokedAt(n, stray)) !== true) return undefined;
      return true;
    });
    for (const n of [a, b, c]) expect(await revokedAt(n, changer.sessionId), `${n.name} keeps the changing session`).to.equal(false);
  });

  it('answers a stranger before reading its body: unknown region 403, stale timestamp 401, oversized batch 413', async () => {
    const huge = 64 * 1_048_576;
    const stranger = await postClaimingLength(b.url, signRequest('whatever-secret-0123456789abcdef', 'nobody', '', Date.now()), huge);
    expect(stranger.status).to.equal(403);
    expect(JSON.parse(stranger.body)).to.include({ code: 'unknown_peer' });
    const stale = await postClaimingLength(b.url, signRequest(pairSecret('da', 'db'), 'da', '', Date.now() - 3_600_000), huge);
    expect(stale.status).to.equal(401);
    expect(JSON.parse(stale.body)).to.include({ code: 'invalid_signature' });
    // A peer's batch is bounded by its batch size, far below 64 MiB.
    const oversized = await postClaimingLength(b.url, signRequest(pairSecret('da', 'db'), 'da', '', Date.now()), huge);
    expect(oversized.status).to.equal(413);
    // The endpoint still works for a real, small batch.
    const res = await b.request('/internal/replication', { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{}' });
    await expectProblem(res, 401, 'invalid_signature');
  });
});
