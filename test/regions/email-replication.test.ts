import { expect } from 'chai';
import { randomUUID } from 'node:crypto';
import { emailClashName } from '../../src/core/replication/merge.js';
import type { EmailChallenge } from '../../src/model/user.js';
import { EmailChallengesRepo } from '../../src/store/pg/email-challenges-repo.js';
import { uniquePassword, uniqueUsername } from '../helpers/http-assert.js';
import { eventually, startRegions, type RegionNode, postBatch } from './support.js';

interface UserRow {
  id: string;
  username: string | null;
  email: string | null;
  email_verified_at: Date | null;
}

async function userRow(node: RegionNode, id: string): Promise<UserRow | undefined> {
  const [row] = await node.query<UserRow>('select id, username, email, email_verified_at from users where id = ?', [id]);
  return row;
}

interface ChallengeRow {
  attempts: number;
  ended_at: Date | null;
  end_reason: string | null;
}

async function challengeRow(node: RegionNode, id: string): Promise<ChallengeRow | undefined> {
  const [row] = await node.query<ChallengeRow>('select attempts, ended_at, end_reason from email_challenges where id = ?', [id]);
  return row;
}

const uniqueAddress = (prefix: string) => `${uniqueUsername(prefix)}@Example.com`;

describe('regions: e-mail identity replicates', function () {
  this.timeout(120_000);
  let a: RegionNode;
  let b: RegionNode;

  before(async () => {
    [a, b] = (await startRegions(['ea', 'eb'], () => ({
      identity: { email: 'optional', username: 'optional' },
      mail: { transport: 'log', from: 'authctl <no-reply@example.com>' },
    }))) as [RegionNode, RegionNode];
  });
  after(async () => {
    await Promise.all([a, b].map((n) => n?.close()));
  });

  it("a user's address and its verification registered in A arrive in B", async () => {
    const user = await a.container.users.register({ username: uniqueUsername('ad'), email: uniqueAddress('ad'), password: uniquePassword() });
    const email = user.email!;
    const atB = await eventually('the user at B', () => userRow(b, user.id));
    expect(atB).to.include({ email, email_verified_at: null });
    const verifiedAt = new Date(Date.now() - 1_000);
    await a.container.repos.users.setEmail(user.id, email, verifiedAt, new Date());
    const verified = await eventually('the verification at B', async () => {
      const row = await userRow(b, user.id);
      return row?.email_verified_at ? row : undefined;
    });
    expect(verified.email_verified_at!.getTime()).to.equal(verifiedAt.getTime());
  });

  it('a challenge sent in A arrives in B; its end replicates, and a live state arriving later does not revive it', async () => {
    const user = await a.container.users.register({ email: uniqueAddress('ch'), password: uniquePassword() });
    await eventually('the user at B', () => userRow(b, user.id));
    const repo = new EmailChallengesRepo(a.container.db);
    const now = new Date();
    const challenge: EmailChallenge = {
      id: randomUUID(),
      userId: user.id,
      purpose: 'reset',
      email: user.email!,
      homeRegion: 'ea',
      createdAt: now,
      expiresAt: new Date(now.getTime() + 30 * 60_000),
      attempts: 0,
      endedAt: null,
      endReason: null,
      version: 1,
    };
    await a.container.db.transaction((trx) => repo.insert(challenge, trx));
    expect(await eventually('the challenge at B', () => challengeRow(b, challenge.id))).to.deep.include({ ended_at: null, end_reason: null });

    // A wrong code in A, then the challenge is used there.
    await a.container.db.transaction((trx) => repo.recordWrongCode(challenge.id, 5, new Date(), trx));
    await a.container.db.transaction((trx) => repo.end(challenge.id, 'used', new Date(), trx));
    const ended = await eventually('the end at B', async () => {
      const row = await challengeRow(b, challenge.id);
      return row?.ended_at ? row : undefined;
    });
    expect(ended).to.include({ end_reason: 'used', attempts: 1 });

    // A region that had not heard of the end yet ships a live state with more tries: still ended.
    const [row] = await b.query<Record<string, unknown>>('select * from email_challenges where id = ?', [challenge.id]);
    const live = { ...row, ended_at: null, end_reason: null, attempts: 3, version: Number(row!.version) + 5 };
    const res = await postBatch(b, 'ea', { origin: 'ea', batchId: randomUUID(), changes: [{ entity: 'email_challenges', payload: live }] });
    expect(res.status).to.equal(200);
    const after = (await challengeRow(b, challenge.id))!;
    expect(after).to.include({ end_reason: 'used', attempts: 3 });
    expect(after.ended_at!.getTime()).to.equal(ended.ended_at!.getTime());
    // It came from a made-up batch: put B back as A has it.
    await b.query('update email_challenges set attempts = ? where id = ?', [1, challenge.id]);
  });

  it('a challenge of a user not here yet is refused for now (409); one of a deleted user is skipped', async () => {
    const now = Date.now();
    const payload = (userId: string) => ({
      id: randomUUID(),
      user_id: userId,
      purpose: 'verify',
      email: 'nobody@example.com',
      home_region: 'ea',
      created_at: new Date(now).toISOString(),
      expires_at: new Date(now + 60_000).toISOString(),
      attempts: 0,
      ended_at: null,
      end_reason: null,
      version: 1,
    });
    const unknown = payload(randomUUID());
    const res = await postBatch(b, 'ea', { origin: 'ea', batchId: randomUUID(), changes: [{ entity: 'email_challenges', payload: unknown }] });
    expect(res.status).to.equal(409);
    expect(await challengeRow(b, unknown.id)).to.equal(undefined);

    const user = await a.container.users.register({ email: uniqueAddress('gone'), password: uniquePassword() });
    await eventually('the user at B', () => userRow(b, user.id));
    await a.container.users.delete(user.id);
    await eventually('the delete at B', async () => ((await userRow(b, user.id)) ? undefined : true));
    const orphan = payload(user.id);
    const skipped = await postBatch(b, 'ea', { origin: 'ea', batchId: randomUUID(), changes: [{ entity: 'email_challenges', payload: orphan }] });
    expect(skipped.status).to.equal(200);
    expect(await challengeRow(b, orphan.id)).to.equal(undefined);
  });

  it('one address registered in A and in B while they are cut off goes to the earlier user, alike in both regions', async () => {
    const typed = uniqueAddress('Clash.Me');
    await a.container.replication.shipping.stop();
    await b.container.replication.shipping.stop();
    let first: string;
    let second: string;
    let email: string;
    try {
      const winner = await a.container.users.register({ email: typed, password: uniquePassword() });
      first = winner.id;
      email = winner.email!;
      // Verified in B: the verification goes with the address.
      second = (await b.container.users.register({ email: email.toLowerCase(), password: uniquePassword() })).id;
      await b.container.repos.users.setEmail(second, email.toLowerCase(), new Date(), new Date());
    } finally {
      await a.container.replication.shipping.start();
      await b.container.replication.shipping.start();
    }
    const expectedName = emailClashName(email, second, 'eb');
    const settled = await eventually('both regions hold both users, the later one without the address', async () => {
      const states = [];
      for (const n of [a, b]) {
        const winner = await userRow(n, first);
        const loser = await userRow(n, second);
        if (!winner || !loser || loser.email !== null) return undefined;
        states.push({ winner, loser });
      }
      return states;
    });
    for (const { winner, loser } of settled) {
      expect(winner).to.include({ username: null, email, email_verified_at: null });
      expect(loser).to.include({ username: expectedName, email: null, email_verified_at: null });
    }
    expect(expectedName.startsWith('clash.me')).to.equal(true);
    // One holder of the address in each region.
    for (const n of [a, b]) {
      expect(await n.query('select id from users where lower(email) = lower(?)', [email])).to.deep.equal([{ id: first }]);
    }
  });
});
