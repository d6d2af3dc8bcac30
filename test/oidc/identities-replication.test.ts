import { randomBytes } from 'node:crypto';
import { expect } from 'chai';
import type { ProviderIdentity } from '../../src/model/identity.js';
import { createAccount } from '../helpers/http-assert.js';
import { eventually, postBatch, startRegions, type RegionNode } from '../regions/support.js';

interface IdentityRow {
  id: string;
  user_id: string;
  removed_at: Date | null;
  version: string;
}

const identityOf = (tag: string): ProviderIdentity => ({
  provider: 'google',
  subject: `sub-${tag}-${randomBytes(6).toString('hex')}`,
  email: null,
  emailVerified: false,
  name: null,
  preferredUsername: `${tag}${randomBytes(3).toString('hex')}`,
});

async function rowsOf(node: RegionNode, subject: string): Promise<IdentityRow[]> {
  return node.query<IdentityRow>("select id, user_id, removed_at, version from user_identities where provider = 'google' and subject = ? order by id", [
    subject,
  ]);
}

describe('regions: provider identities replicate with the user', function () {
  this.timeout(120_000);
  let a: RegionNode;
  let b: RegionNode;
  let c: RegionNode;

  before(async () => {
    [a, b, c] = (await startRegions(['ia', 'ib', 'ic'])) as [RegionNode, RegionNode, RegionNode];
  });
  after(async () => {
    await Promise.all([a, b, c].map((n) => n?.close()));
  });

  it('an identity linked in A signs in as the same user in B; an unlink in A reaches B, and an older live state arriving later does not bring it back', async () => {
    const account = await createAccount(a, 'idrep');
    const identity = identityOf('rep');
    const linked = await a.container.identities.link(account.user.id, identity);
    const [captured] = await a.query<{ row: Record<string, unknown> }>('select to_jsonb(i) as row from user_identities i where id = ?', [linked.id]);

    await eventually('the identity at B', async () => ((await rowsOf(b, identity.subject)).length === 1 ? true : undefined));
    const atB = await b.container.identities.signInWith(identity, 'off');
    expect(atB.id, 'the same user in B').to.equal(account.user.id);
    expect((await b.container.identities.list(account.user.id)).map((i) => i.id)).to.deep.equal([linked.id]);

    // B's recorded use comes back to A (the row's latest use, the higher version).
    await eventually('the use recorded in B reaches A', async () => (Number((await rowsOf(a, identity.subject))[0]?.version) >= 2 ? true : undefined));

    await a.container.identities.unlink(account.user.id, linked.id);
    await eventually('the removal at B', async () => ((await rowsOf(b, identity.subject))[0]?.removed_at ? true : undefined));
    expect(await b.container.identities.list(account.user.id)).to.deep.equal([]);

    // A late delivery of the row as it was before the removal (live, version 1): it stays removed.
    const late = await postBatch(b, 'ia', {
      origin: 'ia',
      batchId: `late-${randomBytes(4).toString('hex')}`,
      changes: [{ entity: 'user_identities', payload: captured!.row }],
    });
    expect(late.status, await late.clone().text()).to.equal(200);
    const [after] = await rowsOf(b, identity.subject);
    expect(after!.removed_at, 'still removed').to.be.instanceOf(Date);
    // And the provider account signs in as a new user in B now.
    expect((await b.container.identities.signInWith(identity, 'off')).id).to.not.equal(account.user.id);
  });

  it('a provider account first signed in with in two regions during a partition converges: the earlier identity stays live everywhere, the other is removed everywhere', async () => {
    const identity = identityOf('split');
    await a.stopHttp();
    await c.stopHttp();
    let first: string;
    let second: string;
    try {
      first = (await a.container.identities.signInWith(identity, 'off')).id;
      await new Promise((r) => setTimeout(r, 5)); // two distinct creation times (the earlier one wins)
      second = (await c.container.identities.signInWith({ ...identity, preferredUsername: `${identity.preferredUsername!}c` }, 'off')).id;
    } finally {
      await a.startHttp();
      await c.startHttp();
    }
    expect(first).to.not.equal(second);
    const converged = await eventually('every region holds both identities, only the one of A live', async () => {
      const states: string[] = [];
      for (const n of [a, b, c]) {
        const rows = await rowsOf(n, identity.subject);
        if (rows.length !== 2) return undefined;
        const live = rows.filter((r) => r.removed_at === null);
        if (live.length !== 1 || live[0]!.user_id !== first) return undefined;
        states.push(rows.map((r) => `${r.id}:${r.removed_at === null ? 'live' : 'removed'}`).join(','));
      }
      return states;
    });
    expect(new Set(converged).size, 'the same outcome in every region').to.equal(1);
    for (const n of [a, b, c]) expect((await n.container.identities.signInWith(identity, 'off')).id, n.name).to.equal(first);
    // The user the other region created stays, without the identity.
    expect(await c.container.identities.list(second)).to.deep.equal([]);
  });
});
