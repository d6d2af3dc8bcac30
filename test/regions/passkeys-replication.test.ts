import { randomBytes, randomUUID } from 'node:crypto';
import { expect } from 'chai';
import { v7 as uuidv7 } from 'uuid';
import { signRequest } from '../../src/core/replication/signature.js';
import type { PasskeyRecord } from '../../src/model/passkey.js';
import type { TokenResponse } from '../../src/core/auth/auth-service.js';
import { createAccount } from '../helpers/http-assert.js';
import { eventually, pairSecret, postBatch, startRegions, type RegionNode } from './support.js';

/** A passkey as a registration would store it (the key material is opaque here: nothing checks it). */
function passkeyOf(userId: string, homeRegion: string, fields: Partial<PasskeyRecord> = {}): PasskeyRecord {
  const now = new Date();
  return {
    id: uuidv7(),
    userId,
    credentialId: randomBytes(16).toString('base64url'),
    publicKey: randomBytes(77).toString('base64url'),
    counter: 0,
    transports: ['internal', 'hybrid'],
    aaguid: 'fbfc3007-154e-4ecc-8c0b-6e020557d7bd',
    backupEligible: true,
    backedUp: false,
    name: 'Laptop',
    homeRegion,
    createdAt: now,
    updatedAt: now,
    lastUsedAt: null,
    removedAt: null,
    version: 1,
    ...fields,
  };
}

/** The whole row as the capture trigger ships it (so two regions' copies compare field by field). */
async function rowOf(node: RegionNode, id: string): Promise<Record<string, unknown> | undefined> {
  const [row] = await node.query<{ row: Record<string, unknown> }>('select to_jsonb(p) as row from passkeys p where id = ?', [id]);
  return row?.row;
}

/** The row once it is the same in every region, and `ready` says it is the state awaited. */
function converged(nodes: RegionNode[], id: string, ready: (row: Record<string, unknown>) => boolean): Promise<Record<string, unknown>> {
  return eventually(`passkey ${id} alike in ${nodes.map((n) => n.name).join(', ')}`, async () => {
    const rows = await Promise.all(nodes.map((n) => rowOf(n, id)));
    const [first] = rows;
    if (!first || !ready(first) || rows.some((r) => JSON.stringify(r) !== JSON.stringify(first))) return undefined;
    return first;
  });
}

async function partitioned<T>(nodes: RegionNode[], work: () => Promise<T>): Promise<T> {
  for (const n of nodes) await n.stopHttp();
  try {
    return await work();
  } finally {
    for (const n of nodes) await n.startHttp();
  }
}

const at = (base: number, seconds: number) => new Date(base + seconds * 1000);

describe('regions: passkeys replicate with the user', function () {
  this.timeout(120_000);
  let a: RegionNode;
  let b: RegionNode;

  before(async () => {
    [a, b] = (await startRegions(['pa', 'pb'])) as [RegionNode, RegionNode];
  });
  after(async () => {
    await Promise.all([a, b].map((n) => n?.close()));
  });

  /** Two accounts created in A, once both have arrived at B. */
  async function twoAccountsAtB(prefix: string) {
    const [first, second] = [await createAccount(a, `${prefix}1`), await createAccount(a, `${prefix}2`)];
    await eventually('both users at B', async () =>
      (await b.query('select id from users where id in (?, ?)', [first.user.id, second.user.id])).length === 2 ? true : undefined,
    );
    return [first, second] as const;
  }

  it('a passkey registered in A signs in at B; a use anywhere moves the counter forwards everywhere (an older counter is refused in both); a rename in A and a use in B made apart both hold; a removal in B stays', async () => {
    const account = await createAccount(a, 'pkrep');
    const userId = account.user.id;
    const passkey = passkeyOf(userId, a.name);
    await a.container.repos.passkeys.insert(passkey);

    await converged([a, b], passkey.id, () => true);
    expect((await b.container.repos.passkeys.findByCredentialId(passkey.credentialId))?.userId, "B finds the credential's user").to.equal(userId);
    expect(await b.container.repos.passkeys.listLive(userId)).to.deep.equal(await a.container.repos.passkeys.listLive(userId));

    // A use in A: B refuses what the authenticator signed before it (a replay, or a clone), once it arrives.
    const base = Date.now();
    expect(await a.container.repos.passkeys.recordUse(passkey.id, 5, true, at(base, 1))).to.equal(true);
    await converged([a, b], passkey.id, (r) => r.counter === 5);
    expect(await b.container.repos.passkeys.recordUse(passkey.id, 3, true, at(base, 2)), 'an older counter at B').to.equal(false);
    expect(await b.container.repos.passkeys.recordUse(passkey.id, 9, true, at(base, 3))).to.equal(true);
    await converged([a, b], passkey.id, (r) => r.counter === 9);
    expect(await a.container.repos.passkeys.recordUse(passkey.id, 9, true, at(base, 4)), "B's counter replayed at A").to.equal(false);

    // Cut off from each other: A renames and sees a use up to 20; B, later, sees a use up to 15
    // (the same authenticator, or a clone of it) that reports the credential no longer backed up.
    await partitioned([a, b], async () => {
      await a.container.repos.passkeys.rename(userId, passkey.id, 'Work laptop', at(base, 10));
      expect(await a.container.repos.passkeys.recordUse(passkey.id, 20, true, at(base, 11))).to.equal(true);
      expect(await b.container.repos.passkeys.recordUse(passkey.id, 15, false, at(base, 12))).to.equal(true);
    });
    const healed = await converged([a, b], passkey.id, (r) => r.counter === 20 && r.backed_up === false);
    // The rename holds though B's use came later; the later use brings its time and backup state.
    expect(healed).to.deep.include({ name: 'Work laptop', counter: 20, backed_up: false, version: 5 });
    expect(new Date(healed.last_used_at as string)).to.deep.equal(at(base, 12));
    expect(new Date(healed.updated_at as string)).to.deep.equal(at(base, 10));
    for (const n of [a, b])
      expect(await n.container.repos.passkeys.recordUse(passkey.id, 18, true, at(base, 13)), `${n.name}: below the merged counter`).to.equal(false);

    // Removed in B: gone in A; a late live state (from a region that had not heard of the removal) does not bring it back.
    const live = (await rowOf(a, passkey.id))!;
    await b.container.repos.passkeys.remove(userId, [passkey.id], at(base, 20), b.container.db.writer);
    const removed = await converged([a, b], passkey.id, (r) => r.removed_at !== null);
    const late = { ...live, counter: 30, last_used_at: at(base, 25).toISOString(), updated_at: at(base, 25).toISOString(), name: 'Revived', version: 9 };
    const res = await postBatch(a, b.name, { origin: b.name, batchId: randomUUID(), changes: [{ entity: 'passkeys', payload: late }] });
    expect(res.status, await res.clone().text()).to.equal(200);
    const after = (await rowOf(a, passkey.id))!;
    expect(after.removed_at, 'still removed, at the first removal').to.equal(removed.removed_at);
    expect(after).to.deep.include({ counter: 30, version: 9 });
    for (const n of [a, b]) {
      expect(await n.container.repos.passkeys.findByCredentialId(passkey.credentialId), n.name).to.equal(undefined);
      expect(await n.container.repos.passkeys.listLive(userId), n.name).to.deep.equal([]);
    }
  });

  it('removed in A while B, cut off, signs a session in with it: once healed the session ends in both regions (passkey_removed)', async () => {
    const account = await createAccount(a, 'pksess');
    const userId = account.user.id;
    const passkey = passkeyOf(userId, a.name);
    await a.container.repos.passkeys.insert(passkey);
    await converged([a, b], passkey.id, () => true);
    const user = (await b.container.repos.users.findById(userId))!;

    const atB = await partitioned([a, b], async () => {
      // Where a passkey sign-in ends once its assertion is checked (the ceremony is the browser tests' business).
      const tokens = (await b.container.auth.signIn(user, 'swk', {}, { userVerified: true, passkeyId: passkey.id })) as TokenResponse;
      // A cannot revoke a session it has not heard of.
      expect((await a.container.passkeys.removeByAdmin(userId, passkey.id, 'test')).sessionsRevoked).to.equal(0);
      return tokens;
    });
    const sessionAt = (n: RegionNode) => async () =>
      (await n.query<{ revoke_reason: string | null }>('select revoke_reason from sessions where id = ?', [atB.sessionId]))[0]?.revoke_reason ===
      'passkey_removed'
        ? true
        : undefined;
    await eventually('the session revoked at B', sessionAt(b));
    await eventually('the session revoked at A', sessionAt(a));
    expect((await b.request('/v1/me', { token: atB.accessToken })).status).to.equal(401);
  });

  it('a deleted user takes its passkeys in every region; a passkey of a user not here yet is refused for now (409), of a deleted user skipped', async () => {
    const account = await createAccount(a, 'pkdel');
    const passkey = passkeyOf(account.user.id, a.name);
    await a.container.repos.passkeys.insert(passkey);
    const shipped = await converged([a, b], passkey.id, () => true);

    await a.container.users.delete(account.user.id);
    await eventually('the passkey gone at B', async () => ((await rowOf(b, passkey.id)) ? undefined : true));
    expect(await rowOf(a, passkey.id)).to.equal(undefined);

    const send = (payload: Record<string, unknown>) =>
      postBatch(b, a.name, { origin: a.name, batchId: randomUUID(), changes: [{ entity: 'passkeys', payload }] });
    // A late copy of the deleted user's passkey: skipped.
    const ofDeleted = await send(shipped);
    expect(ofDeleted.status, await ofDeleted.clone().text()).to.equal(200);
    expect(await rowOf(b, passkey.id)).to.equal(undefined);
    // Of a user B has never heard of: refused, so the sender retries once the user is there.
    const orphan = { ...shipped, id: uuidv7(), user_id: randomUUID(), credential_id: randomBytes(16).toString('base64url') };
    expect((await send(orphan)).status).to.equal(409);
    expect(await rowOf(b, orphan.id)).to.equal(undefined);
  });

  it('one credential registered to two accounts in two regions during a partition: the earlier passkey stays live everywhere, the later is removed everywhere', async () => {
    const [first, second] = await twoAccountsAtB('pkc');
    const credentialId = randomBytes(16).toString('base64url');
    const base = Date.now();
    const [kept, lost] = await partitioned([a, b], async () => {
      const one = passkeyOf(first.user.id, a.name, { credentialId, createdAt: at(base, 0), updatedAt: at(base, 0) });
      const other = passkeyOf(second.user.id, b.name, { credentialId, createdAt: at(base, 1), updatedAt: at(base, 1) });
      await a.container.repos.passkeys.insert(one);
      await b.container.repos.passkeys.insert(other);
      return [one, other];
    });
    await converged([a, b], kept.id, (r) => r.removed_at === null);
    // Each region marks the later one removed when it decides (so at its own time): compared removed or not.
    await eventually('the later passkey removed in both regions', async () => {
      const rows = await Promise.all([a, b].map((n) => rowOf(n, lost.id)));
      return rows.every((r) => r && r.removed_at !== null) ? true : undefined;
    });
    for (const n of [a, b]) {
      expect((await n.container.repos.passkeys.findByCredentialId(credentialId))?.id, n.name).to.equal(kept.id);
      expect(await n.container.repos.passkeys.listLive(second.user.id), `${n.name}: the other account keeps no passkey`).to.deep.equal([]);
    }

    // What B reports (and logs as replication.passkey_conflict) for a third copy, created after the clash was settled.
    const third = { ...(await rowOf(b, lost.id))!, id: uuidv7(), removed_at: null, created_at: at(base, 60).toISOString() };
    const body = JSON.stringify({ origin: a.name, batchId: randomUUID(), changes: [{ entity: 'passkeys', payload: third }] });
    const result = await b.container.replication.inbound.receive(signRequest(pairSecret(a.name, b.name), a.name, body, Date.now()), Buffer.from(body));
    expect(result.passkeyClashes).to.deep.equal([{ keptId: kept.id, removedId: third.id }]);
    expect((await rowOf(b, third.id))?.removed_at).to.not.equal(null);
    expect((await b.container.repos.passkeys.findByCredentialId(credentialId))?.id).to.equal(kept.id);
  });

  it('a clash settled while a flow of the losing account holds its user (a removal in progress): the batch waits for the flow, neither deadlocks', async () => {
    const [first, second] = await twoAccountsAtB('pkl');
    const credentialId = randomBytes(16).toString('base64url');
    const base = Date.now();
    const rival = passkeyOf(second.user.id, b.name, { credentialId, createdAt: at(base, 1), updatedAt: at(base, 1) });
    const other = passkeyOf(second.user.id, b.name, { createdAt: at(base, 1), updatedAt: at(base, 1) });
    await b.container.repos.passkeys.insert(rival);
    await b.container.repos.passkeys.insert(other);
    const shipped = (await rowOf(b, rival.id))!;
    // From A: the same credential registered earlier to the first account, then a rename of the second account's other passkey.
    const earlier = {
      ...shipped,
      id: uuidv7(),
      user_id: first.user.id,
      home_region: a.name,
      created_at: at(base, 0).toISOString(),
      updated_at: at(base, 0).toISOString(),
    };
    const renamed = { ...(await rowOf(b, other.id))!, name: 'Phone', updated_at: at(base, 2).toISOString(), version: 2 };
    const body = JSON.stringify({
      origin: a.name,
      batchId: randomUUID(),
      changes: [
        { entity: 'passkeys', payload: earlier },
        { entity: 'passkeys', payload: renamed },
      ],
    });

    // A flow of the second account, as a removal runs: its user locked first, then its passkey updated.
    const flow = await b.container.db.writer.transaction();
    try {
      await flow('users').where({ id: second.user.id }).forUpdate().first();
      const applying = b.container.replication.inbound.receive(signRequest(pairSecret(a.name, b.name), a.name, body, Date.now()), Buffer.from(body));
      const outcome = applying.then(
        (result) => ({ result }),
        (error: unknown) => ({ error }),
      );
      await eventually('the batch waiting for a lock', async () =>
        (await b.query("select 1 from pg_stat_activity where datname = current_database() and wait_event_type = 'Lock'")).length > 0 ? true : undefined,
      );
      await flow('passkeys').where({ id: rival.id }).update({ removed_at: new Date(), updated_at: new Date() });
      await flow.commit();
      const settled = await outcome;
      expect('error' in settled ? String(settled.error) : undefined).to.equal(undefined);
    } finally {
      if (!flow.isCompleted()) await flow.rollback();
    }
    expect((await b.container.repos.passkeys.findByCredentialId(credentialId))?.id).to.equal(earlier.id);
    expect((await rowOf(b, rival.id))?.removed_at).to.not.equal(null);
    expect((await rowOf(b, other.id))?.name).to.equal('Phone');
  });
});
