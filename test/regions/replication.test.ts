import { expect } from 'chai';
import { randomUUID } from 'node:crypto';
import { signRequest } from '../../src/core/replication/signature.js';
import { OutboxRepo } from '../../src/store/pg/outbox-repo.js';
import { startTestApp } from '../helpers/app.js';
import {
  expectProblem,
  expectTokenResponse,
  login,
  refresh,
  refreshCounter,
  register,
  uniquePassword,
  uniqueUsername,
  type TokenResponse,
} from '../helpers/http-assert.js';
import { eventually, pairSecret, snapshot, startRegions, verifyStatus, type RegionNode, postBatch } from './support.js';

async function loginWhenReplicated(node: RegionNode, username: string, password: string): Promise<TokenResponse> {
  return eventually(`${username} replicated to ${node.name}`, async () => {
    const res = await node.request('/v1/auth/login', { method: 'POST', json: { username, password } });
    if (res.status !== 200) {
      await res.arrayBuffer();
      return undefined;
    }
    return (await res.json()) as TokenResponse;
  });
}

async function sessionCounter(node: RegionNode, sessionId: string): Promise<{ counter: number; revoked: boolean } | undefined> {
  const [row] = await node.query<{ counter: string; revoked: boolean }>('select counter, revoked_at is not null as revoked from sessions where id = ?', [
    sessionId,
  ]);
  return row ? { counter: Number(row.counter), revoked: row.revoked } : undefined;
}

describe('regions: replication between three regions', function () {
  this.timeout(120_000);
  let a: RegionNode;
  let b: RegionNode;
  let c: RegionNode;

  before(async () => {
    [a, b, c] = (await startRegions(['ra', 'rb', 'rc'])) as [RegionNode, RegionNode, RegionNode];
  });
  after(async () => {
    await Promise.all([a, b, c].map((n) => n?.close()));
  });

  it("a user registered in A logs in at B and C once replicated; every JWKS has every region's keys", async () => {
    const username = uniqueUsername('trav');
    const password = uniquePassword();
    const user = await register(a, username, password);
    expect(user.homeRegion).to.equal('ra');
    const atB = await loginWhenReplicated(b, username, password);
    expect(atB.user.id).to.equal(user.id);
    expect(atB.user.homeRegion).to.equal('ra');
    expect(atB.refreshToken.startsWith('rt_rb_')).to.equal(true);
    await loginWhenReplicated(c, username, password);

    const kids = async (n: RegionNode) =>
      ((await (await n.request('/.well-known/jwks.json')).json()) as { keys: Array<{ kid: string }> }).keys.map((k) => k.kid);
    const all = [...(await kids(a)), ...(await kids(b)), ...(await kids(c))].filter((k, i, arr) => arr.indexOf(k) === i);
    expect(all.length).to.be.at.least(3);
    await eventually("every JWKS lists every region's keys", async () => {
      for (const n of [a, b, c]) {
        await n.container.keys.load();
        const have = await kids(n);
        if (!all.every((k) => have.includes(k))) return undefined;
      }
      return true;
    });
    // A token signed in B verifies in A with the replicated key alone.
    expect(await verifyStatus(a, atB.accessToken)).to.equal(200);
  });

  it('GET /v1/regions lists every region with its URL', async () => {
    const res = await b.request('/v1/regions');
    expect(res.status).to.equal(200);
    const body = (await res.json()) as { region: string; regions: Array<{ name: string; url: string; local: boolean }> };
    expect(body.region).to.equal('rb');
    expect(body.regions.map((r) => r.name).sort()).to.deep.equal(['ra', 'rb', 'rc']);
    expect(body.regions.find((r) => r.name === 'ra')!.url).to.equal(a.url);
    expect(body.regions.find((r) => r.local)!.name).to.equal('rb');
  });

  it("refreshes a token homed in A at B through A (proxy path), and from B's replica while A is down", async () => {
    const username = uniqueUsername('px');
    const password = uniquePassword();
    await register(a, username, password);
    const first = await login(a, username, password);
    await eventually('session replicated to B', () => sessionCounter(b, first.sessionId));

    // Proxy: A rotates (its counter moves at once), B only relays.
    const proxied = await expectTokenResponse(await refresh(b, first.refreshToken));
    expect(refreshCounter(proxied.refreshToken)).to.equal(2);
    expect((await sessionCounter(a, first.sessionId))!.counter).to.equal(2);
    await eventually('rotation replicated to B', async () => ((await sessionCounter(b, first.sessionId))?.counter === 2 ? true : undefined));

    // A goes away: B answers from its replica, and the rotation reaches A when it is back.
    await a.stopHttp();
    try {
      const replica = await expectTokenResponse(await refresh(b, proxied.refreshToken));
      expect(refreshCounter(replica.refreshToken)).to.equal(3);
      expect(replica.refreshToken.startsWith('rt_ra_')).to.equal(true);
      expect((await sessionCounter(b, first.sessionId))!.counter).to.equal(3);
      expect((await sessionCounter(a, first.sessionId))!.counter).to.equal(2);
      // The old token is reuse at B too: its replica decides like the home region would.
      await expectProblem(await refresh(b, first.refreshToken), 401, 'refresh_token_reused');
    } finally {
      await a.startHttp();
    }
    await eventually("B's replica rotation and revocation replicated back to A", async () => {
      const state = await sessionCounter(a, first.sessionId);
      return state?.counter === 3 && state.revoked ? true : undefined;
    });
  });

  it('a forged token naming A is refused by B itself: never proxied, nothing sent to A', async () => {
    const crossRegion = async () => {
      const text = await (await b.request('/metrics')).text();
      return [...text.matchAll(/^authctl_cross_region_refreshes_total\{[^}]*home="ra"[^}]*\} (\d+)$/gm)].reduce((sum, m) => sum + Number(m[1]), 0);
    };
    const before = await crossRegion();
    const forged = `rt_ra_${randomUUID()}_7_${'A'.repeat(22)}`;
    await expectProblem(await refresh(b, forged), 401, 'invalid_refresh_token');
    expect(await crossRegion()).to.equal(before);
    // Control: a genuine token of A is counted (proxied), so the counter above can move.
    const username = uniqueUsername('fg');
    const password = uniquePassword();
    await register(a, username, password);
    const genuine = await login(a, username, password);
    await expectTokenResponse(await refresh(b, genuine.refreshToken));
    expect(await crossRegion()).to.equal(before + 1);
  });

  it('a logout in A is refused by B and C within replication lag + 2 s', async () => {
    const username = uniqueUsername('lo');
    const password = uniquePassword();
    await register(a, username, password);
    const session = await login(a, username, password);
    await eventually('session at B and C', async () =>
      (await sessionCounter(b, session.sessionId)) && (await sessionCounter(c, session.sessionId)) ? true : undefined,
    );
    expect(await verifyStatus(b, session.accessToken)).to.equal(200);
    expect(await verifyStatus(c, session.accessToken)).to.equal(200);

    const res = await a.request('/v1/auth/logout', { method: 'POST', token: session.accessToken, json: {} });
    expect(res.status).to.equal(204);
    // Bounded by eventually's deadline, not by a timing assertion (other suites share the machine).
    await eventually('B and C refuse the logged-out token', async () =>
      (await verifyStatus(b, session.accessToken)) === 401 && (await verifyStatus(c, session.accessToken)) === 401 ? true : undefined,
    );
    await expectProblem(await refresh(c, session.refreshToken), 401, 'invalid_refresh_token');
  });

  it("a token B issued from its replica works at A before B's rotation arrives, and the regions converge without a false reuse", async () => {
    const username = uniqueUsername('ff');
    const password = uniquePassword();
    await register(a, username, password);
    const s = await login(a, username, password);
    await eventually('session at B', () => sessionCounter(b, s.sessionId));
    await a.stopHttp();
    await b.container.replication.shipping.stop();
    let fromB: TokenResponse;
    try {
      fromB = await expectTokenResponse(await refresh(b, s.refreshToken));
      expect(refreshCounter(fromB.refreshToken)).to.equal(2);
    } finally {
      await a.startHttp();
    }
    try {
      // A has counter 1 and has not heard of 2: the token is authentic, so A catches up past it.
      expect((await sessionCounter(a, s.sessionId))!.counter).to.equal(1);
      const atA = await expectTokenResponse(await refresh(a, fromB.refreshToken));
      expect(refreshCounter(atA.refreshToken)).to.equal(3);
    } finally {
      await b.container.replication.shipping.start();
    }
    await eventually('A, B and C agree on counter 3, not revoked', async () => {
      for (const n of [a, b, c]) {
        const state = await sessionCounter(n, s.sessionId);
        if (state?.counter !== 3) return undefined;
        expect(state.revoked).to.equal(false);
      }
      return true;
    });
    // Give B's stale rotation time to be applied everywhere, then check once more.
    await eventually('backlogs drained', async () => {
      for (const n of [a, b, c]) if ((await n.container.replication.backlog.status()).some((p) => p.backlog > 0)) return undefined;
      return true;
    });
    for (const n of [a, b, c]) expect(await sessionCounter(n, s.sessionId)).to.deep.equal({ counter: 3, revoked: false });
  });

  it('a partition where both sides rotate one session from the same token is reuse everywhere on heal', async () => {
    const username = uniqueUsername('part');
    const password = uniquePassword();
    await register(a, username, password);
    const s = await login(a, username, password);
    await eventually('session at B', () => sessionCounter(b, s.sessionId));
    // Partition: A's port is dead to its peers and A's changes cannot leave it.
    await a.stopHttp();
    await a.container.replication.shipping.stop();
    try {
      const inA = (await a.container.auth.refresh(s.refreshToken)) as TokenResponse;
      // B cannot reach A: it rotates the same token from its replica.
      const inB = await expectTokenResponse(await refresh(b, s.refreshToken));
      expect(refreshCounter(inA.refreshToken)).to.equal(2);
      expect(refreshCounter(inB.refreshToken)).to.equal(2);
    } finally {
      await a.startHttp();
      await a.container.replication.shipping.start();
    }
    await eventually('the fork is revoked in all three regions', async () => {
      for (const n of [a, b, c]) if (!(await sessionCounter(n, s.sessionId))?.revoked) return undefined;
      return true;
    });
  });

  it('a username both sides registered during a partition goes to the earlier one; the other is renamed alike everywhere', async () => {
    const name = uniqueUsername('clash');
    await a.stopHttp();
    await c.stopHttp();
    let first: string;
    let second: string;
    try {
      first = (await a.container.auth.register(name, uniquePassword())).id;
      second = (await c.container.auth.register(name, uniquePassword())).id;
    } finally {
      await a.startHttp();
      await c.startHttp();
    }
    await eventually('every region holds both users, the later one renamed', async () => {
      for (const n of [a, b, c]) {
        const rows = await n.query<{ id: string; username: string }>('select id, username from users where id in (?, ?) order by username', [first, second]);
        if (rows.length !== 2) return undefined;
        const winner = rows.find((r) => r.id === first);
        const loser = rows.find((r) => r.id === second);
        if (winner?.username !== name || loser?.username !== `${name}.rc`) return undefined;
      }
      return true;
    });
  });

  describe('POST /internal/replication', () => {
    it('refuses unsigned, forged, stale and unknown-peer requests, and applies nothing', async () => {
      const user = {
        id: randomUUID(),
        username: uniqueUsername('evil'),
        password_hash: 'x',
        status: 'active',
        home_region: 'ra',
        created_at: new Date().toISOString(),
        updated_at: new Date().toISOString(),
        password_changed_at: new Date().toISOString(),
        version: 1,
      };
      const batch = { origin: 'ra', batchId: randomUUID(), changes: [{ entity: 'users', payload: user }] };
      const body = JSON.stringify(batch);

      const unsigned = await b.request('/internal/replication', {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'x-authctl-region': 'ra' },
        body,
      });
      await expectProblem(unsigned, 401, 'invalid_signature');
      await expectProblem(await postBatch(b, 'ra', batch, 'not-the-secret-but-long-enough-0123456789'), 401, 'invalid_signature');
      await expectProblem(await postBatch(b, 'ra', batch, undefined, Date.now() - 6 * 60_000), 401, 'invalid_signature');
      // The signature covers the body: a signed batch with a swapped body is forged.
      const signed = signRequest(pairSecret('ra', 'rb'), 'ra', body, Date.now());
      const tampered = await b.request('/internal/replication', {
        method: 'POST',
        headers: { 'content-type': 'application/json', ...signed },
        body: body.replace('"active"', '"disabled"'),
      });
      await expectProblem(tampered, 401, 'invalid_signature');
      await expectProblem(await postBatch(b, 'zz', { ...batch, origin: 'zz' }, pairSecret('zz', 'rb')), 403, 'unknown_peer');
      // A secret of another pair (C's with B) does not sign for A.
      await expectProblem(await postBatch(b, 'ra', batch, pairSecret('rc', 'rb')), 401, 'invalid_signature');
      expect(await b.query('select 1 from users where id = ?', [user.id])).to.have.length(0);

      const ok = await postBatch(b, 'ra', batch);
      expect(ok.status).to.equal(200);
      expect(await b.query('select 1 from users where id = ?', [user.id])).to.have.length(1);
    });

    it('applies duplicate and out-of-order batches idempotently: higher counter wins, revoked stays revoked', async () => {
      const username = uniqueUsername('idem');
      const password = uniquePassword();
      const user = await register(b, username, password);
      const session = await login(b, username, password);
      const [row] = await b.query<Record<string, unknown>>('select * from sessions where id = ?', [session.sessionId]);
      const at = (n: number) => new Date(Date.now() + n * 1000).toISOString();
      const state = (counter: number, revoked: boolean, version: number) => ({
        ...row,
        counter,
        rotated_at: at(counter),
        last_used_at: at(counter),
        revoked_at: revoked ? at(counter) : null,
        revoke_reason: revoked ? 'logout' : null,
        version,
      });
      const batch = (changes: unknown[]) => ({ origin: 'ra', batchId: randomUUID(), changes: changes.map((payload) => ({ entity: 'sessions', payload })) });

      const five = batch([state(5, false, 5)]);
      expect(await (await postBatch(b, 'ra', five)).json()).to.deep.equal({ applied: 1, duplicate: false });
      expect(await (await postBatch(b, 'ra', five)).json()).to.deep.equal({ applied: 0, duplicate: true });
      // Older state arriving late changes nothing.
      expect((await postBatch(b, 'ra', batch([state(3, false, 3)]))).status).to.equal(200);
      expect(await sessionCounter(b, session.sessionId)).to.deep.equal({ counter: 5, revoked: false });
      // A revocation sticks, even against a later un-revoked state with a higher counter.
      expect((await postBatch(b, 'ra', batch([state(6, true, 7)]))).status).to.equal(200);
      expect(await sessionCounter(b, session.sessionId)).to.deep.equal({ counter: 6, revoked: true });
      expect((await postBatch(b, 'ra', batch([state(8, false, 9)]))).status).to.equal(200);
      expect(await sessionCounter(b, session.sessionId)).to.deep.equal({ counter: 8, revoked: true });
      // …and it is effective: B refuses the session's access token.
      expect(await verifyStatus(b, session.accessToken)).to.equal(401);
      // An older user row does not overwrite a newer one.
      const [u] = await b.query<Record<string, unknown>>('select * from users where id = ?', [user.id]);
      const stale = { ...u, status: 'disabled', version: 0 };
      expect((await postBatch(b, 'ra', { origin: 'ra', batchId: randomUUID(), changes: [{ entity: 'users', payload: stale }] })).status).to.equal(200);
      expect((await b.query<{ status: string }>('select status from users where id = ?', [user.id]))[0]!.status).to.equal('active');
      // Two regions each changed the user once, concurrently (equal versions): a disable wins
      // over a later change elsewhere; otherwise the later change wins — in both regions alike.
      const version = Number(u!.version) + 1;
      const later = new Date(Date.now() + 60_000).toISOString();
      await b.query(`update users set status = 'disabled', version = ? where id = ?`, [version, user.id]);
      const sendUser = (payload: object) => postBatch(b, 'ra', { origin: 'ra', batchId: randomUUID(), changes: [{ entity: 'users', payload }] });
      expect((await sendUser({ ...u, status: 'active', updated_at: later, version })).status).to.equal(200);
      expect((await b.query<{ status: string }>('select status from users where id = ?', [user.id]))[0]!.status).to.equal('disabled');
      expect((await sendUser({ ...u, status: 'disabled', password_hash: 'hash-from-a', updated_at: later, version })).status).to.equal(200);
      expect((await b.query<{ password_hash: string }>('select password_hash from users where id = ?', [user.id]))[0]!.password_hash).to.equal('hash-from-a');
    });
  });

  it('a user deleted in A is gone everywhere, and a late change from elsewhere does not bring it back', async () => {
    const username = uniqueUsername('del');
    const password = uniquePassword();
    const user = await register(a, username, password);
    const session = await login(a, username, password);
    await loginWhenReplicated(c, username, password);
    const [row] = await c.query<Record<string, unknown>>('select * from users where id = ?', [user.id]);
    const [sessionRow] = await a.query<Record<string, unknown>>('select * from sessions where id = ?', [session.sessionId]);
    await a.container.users.delete(user.id);
    await eventually('the delete replicated to B and C', async () => {
      for (const n of [b, c]) if ((await n.query('select 1 from users where id = ?', [user.id])).length > 0) return undefined;
      return true;
    });
    await expectProblem(await c.request('/v1/auth/login', { method: 'POST', json: { username, password } }), 401, 'invalid_credentials');
    // C changed the user before it learned of the delete; that change reaches B afterwards.
    const late = { origin: 'rc', batchId: randomUUID(), changes: [{ entity: 'users', payload: { ...row, version: Number(row!.version) + 5 } }] };
    expect((await postBatch(b, 'rc', late)).status).to.equal(200);
    expect(await b.query('select 1 from users where id = ?', [user.id])).to.have.length(0);
    // A session of the deleted user that B never saw is kept without an owner, not refused forever.
    const orphan = { ...sessionRow, id: randomUUID(), user_id: user.id };
    expect((await postBatch(b, 'rc', { origin: 'rc', batchId: randomUUID(), changes: [{ entity: 'sessions', payload: orphan }] })).status).to.equal(200);
    expect((await b.query<{ user_id: string | null }>('select user_id from sessions where id = ?', [orphan.id]))[0]!.user_id).to.equal(null);
    // It came from a made-up batch, not from C: keep B comparable with the other regions.
    await b.query('delete from sessions where id = ?', [orphan.id]);
  });

  it("keeps one batch per peer in flight across workers, so a peer sees a region's changes in order", async () => {
    await a.container.replication.shipping.stop();
    try {
      await register(a, uniqueUsername('order'), uniquePassword());
      const one = new OutboxRepo(a.container.db);
      const other = new OutboxRepo(a.container.db);
      const first = await one.claim('rb', 100, 60_000);
      expect(first.length).to.be.at.least(1);
      expect(await other.claim('rb', 100, 60_000)).to.deep.equal([]);
      // Another peer's stream is independent.
      expect((await other.claim('rc', 100, 60_000)).length).to.be.at.least(1);
      // Released after a failed delivery: the same changes go out again, oldest first.
      await one.fail(
        'rb',
        first.map((e) => e.id),
        'test',
        new Date(),
        { backoffMs: 0, deadAfter: undefined },
      );
      expect((await other.claim('rb', 100, 60_000)).map((e) => e.id)).to.deep.equal(first.map((e) => e.id));
      await a.query(`update replication_outbox set leased_until = null`);
    } finally {
      await a.container.replication.shipping.start();
    }
  });

  it('replication status reports each peer, and all three regions converge', async () => {
    await eventually('backlogs drained', async () => {
      for (const n of [a, b, c]) if ((await n.container.replication.backlog.status()).some((p) => p.backlog > 0)) return undefined;
      return true;
    });
    const [sa, sb, sc] = await Promise.all([snapshot(a), snapshot(b), snapshot(c)]);
    expect(sb).to.deep.equal(sa);
    expect(sc).to.deep.equal(sa);
    const status = await a.container.replication.backlog.status();
    expect(status.map((s) => s.peer)).to.deep.equal(['rb', 'rc']);
    for (const s of status) {
      expect(s.backlog).to.equal(0);
      expect(s.lastSuccessAt).to.be.a('string');
      expect(s.lagP50Ms).to.be.a('number');
    }
  });
});

describe('regions: routing', function () {
  this.timeout(120_000);
  let home: RegionNode;
  let strict: RegionNode;

  before(async () => {
    [home, strict] = (await startRegions(['ha', 'hb'], (name) => (name === 'hb' ? { regions: { loginPolicy: 'home' } } : {}))) as [RegionNode, RegionNode];
  });
  after(async () => {
    await Promise.all([home, strict].map((n) => n?.close()));
  });

  it('with loginPolicy home, a login for a user homed elsewhere says where to go (after the password check)', async () => {
    const username = uniqueUsername('rt');
    const password = uniquePassword();
    await register(home, username, password);
    const problem = await eventually('the user replicated to hb', async () => {
      const res = await strict.request('/v1/auth/login', { method: 'POST', json: { username, password } });
      if (res.status !== 421) {
        await res.arrayBuffer();
        return undefined;
      }
      expect(res.headers.get('location')).to.equal(`${home.url}/v1/auth/login`);
      expect(res.headers.get('content-type')).to.match(/^application\/problem\+json/);
      return (await res.json()) as Record<string, unknown>;
    });
    expect(problem).to.include({ status: 421, code: 'wrong_region', region: 'ha', location: `${home.url}/v1/auth/login` });
    // A wrong password learns nothing about where the account lives.
    const wrong = await strict.request('/v1/auth/login', { method: 'POST', json: { username, password: 'not the password at all' } });
    const body = await expectProblem(wrong, 401, 'invalid_credentials');
    expect(body).to.not.have.property('region');
    // Users of its own region log in there as usual; the permissive region lets travellers in.
    const local = { username: uniqueUsername('rt'), password: uniquePassword() };
    await register(strict, local.username, local.password);
    await login(strict, local.username, local.password);
    await loginWhenReplicated(home, local.username, local.password);
  });

  it('exposes replication backlog, lag and errors as Prometheus metrics', async () => {
    await eventually('a shipped change', async () => ((await home.container.replication.backlog.status())[0]?.lastSuccessAt ? true : undefined));
    const text = await (await home.request('/metrics')).text();
    expect(text).to.match(/^authctl_replication_backlog\{peer="hb",region="ha"\} \d+$/m);
    expect(text).to.match(/^authctl_replication_oldest_pending_seconds\{peer="hb",region="ha"\} [\d.]+$/m);
    expect(text).to.match(/^authctl_replication_lag_seconds_count\{[^}]*peer="hb"[^}]*\} [1-9]\d*$/m);
    expect(text).to.match(/^# TYPE authctl_replication_errors_total counter$/m);
  });
});

describe('regions: a region without peers', function () {
  this.timeout(60_000);

  it('captures nothing (the triggers are free), and refuses replication requests from anyone', async () => {
    const app = await startTestApp('regions_alone');
    try {
      const user = await register(app, uniqueUsername('alone'), uniquePassword());
      const rows = await app.container.db.writer.raw<{ rows: Array<{ n: string }> }>('select count(*) as n from replication_outbox');
      expect(Number(rows.rows[0]!.n)).to.equal(0);
      const body = JSON.stringify({ origin: 'ra', batchId: 'x', changes: [] });
      const res = await app.request('/internal/replication', {
        method: 'POST',
        headers: { 'content-type': 'application/json', ...signRequest(pairSecret('ra', 'local'), 'ra', body, Date.now()) },
        body,
      });
      await expectProblem(res, 403, 'unknown_peer');
      expect(await app.container.replication.backlog.status()).to.deep.equal([]);

      // A peer added later gets a snapshot of what exists — the user's second factor, identity and
      // passkey too, after the user — and removing it drops its queue.
      const ex = app.container.db.writer;
      const now = new Date();
      await ex('mfa_factors').insert({
        id: randomUUID(),
        user_id: user.id,
        type: 'totp',
        secret_sealed: 'sealed',
        status: 'active',
        home_region: 'local',
        created_at: now,
      });
      await ex('user_identities').insert({
        id: randomUUID(),
        user_id: user.id,
        provider: 'google',
        subject: 's-1',
        home_region: 'local',
        created_at: now,
        last_used_at: now,
      });
      await ex('passkeys').insert({
        id: randomUUID(),
        user_id: user.id,
        credential_id: 'cred-1',
        public_key: 'key',
        aaguid: '00000000-0000-0000-0000-000000000000',
        backup_eligible: false,
        backed_up: false,
        name: 'Passkey',
        home_region: 'local',
        created_at: now,
        updated_at: now,
      });
      const repo = new OutboxRepo(app.container.db);
      const peer = { name: 'later', url: 'http://127.0.0.1:9' };
      expect(await repo.syncPeers([peer], new Date())).to.deep.equal(['later']);
      const queued = async () =>
        (await app.container.db.writer.raw<{ rows: Array<{ entity: string }> }>('select entity from replication_outbox order by id')).rows.map((r) => r.entity);
      const snapshotEntities = await queued();
      expect(snapshotEntities).to.include.members(['users', 'signing_keys', 'mfa_factors', 'user_identities', 'passkeys']);
      for (const owned of ['mfa_factors', 'user_identities', 'passkeys'])
        expect(snapshotEntities.indexOf(owned)).to.be.above(snapshotEntities.indexOf('users'));
      expect(await repo.syncPeers([peer], new Date())).to.deep.equal([]);
      expect(await queued()).to.deep.equal(snapshotEntities);
      await repo.syncPeers([], new Date());
      expect(await queued()).to.deep.equal([]);
    } finally {
      await app.close();
    }
  });
});
