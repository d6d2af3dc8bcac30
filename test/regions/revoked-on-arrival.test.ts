import { expect } from 'chai';
import { login, register, sleep, uniquePassword, uniqueUsername, type TokenResponse } from '../helpers/http-assert.js';
import { eventually, startRegions, verifyStatus, type RegionNode } from './support.js';

async function revokedAt(node: RegionNode, sessionId: string): Promise<boolean | undefined> {
  const [row] = await node.query<{ revoked: boolean }>('select revoked_at is not null as revoked from sessions where id = ?', [sessionId]);
  return row?.revoked;
}

/**
 * A session whose creation and revocation reach a peer in one batch (logged out right after
 * login, before the login shipped) is revoked there by that batch, so the peer must publish it
 * like any other revocation. B polls its database for revocations only once a minute here: what
 * refuses the token within the bound below is the batch, not the poll.
 */
describe('regions: a session that reaches a peer already revoked', function () {
  this.timeout(90_000);
  let a: RegionNode;
  let b: RegionNode;

  before(async () => {
    [a, b] = (await startRegions(['va', 'vb'], (name) => (name === 'vb' ? { revocation: { pollIntervalMs: 60_000 } } : {}))) as [RegionNode, RegionNode];
  });
  after(async () => {
    await Promise.all([a, b].map((n) => n?.close()));
  });

  it('is refused by the peer as soon as its batch is applied, not at the next revocation poll', async () => {
    const username = uniqueUsername('early');
    const password = uniquePassword();
    await register(a, username, password);
    await eventually('the user reaches B', async () => ((await b.query('select 1 from users where username = ?', [username])).length > 0 ? true : undefined));
    // A holds its changes back: both logins and the logout travel to B in one batch.
    await a.container.replication.shipping.stop();
    let kept: TokenResponse;
    let gone: TokenResponse;
    try {
      kept = await login(a, username, password);
      gone = await login(a, username, password);
      expect((await a.request('/v1/auth/logout', { method: 'POST', token: gone.accessToken, json: {} })).status).to.equal(204);
      expect(await revokedAt(b, gone.sessionId), 'nothing reached B yet').to.equal(undefined);
    } finally {
      await a.container.replication.shipping.start();
    }

    // The moment the row exists at B (its batch committed), then how long B still accepts the token.
    let landed = 0;
    for (const deadline = Date.now() + 20_000; landed === 0;) {
      const revoked = await revokedAt(b, gone.sessionId);
      if (revoked !== undefined) {
        expect(revoked, 'the session arrives revoked').to.equal(true);
        landed = Date.now();
      } else if (Date.now() > deadline) throw new Error('the batch never reached B');
      else await sleep(5);
    }
    let refusedAfterMs: number | undefined;
    while (refusedAfterMs === undefined && Date.now() - landed < 2_000) {
      if ((await verifyStatus(b, gone.accessToken)) === 401) refusedAfterMs = Date.now() - landed;
      else await sleep(5);
    }
    expect(refusedAfterMs, 'B refuses the logged-out session within 500 ms of its row landing (its DB poll is 60 s away)').to.be.a('number');
    expect(refusedAfterMs).to.be.at.most(500);
    // Not refused for want of A's key: the other session of the same batch verifies at B.
    expect(await verifyStatus(b, kept.accessToken)).to.equal(200);
  });
});
