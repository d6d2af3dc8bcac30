import { expect } from 'chai';
import { eventually, startRegions, type RegionNode, postBatch } from './support.js';

interface ClientRow {
  id: string;
  secret_hash: string;
  scopes: string[];
  home_region: string;
  version: string;
}

async function clientRow(node: RegionNode, id: string): Promise<ClientRow | undefined> {
  const [row] = await node.query<ClientRow>('select id, secret_hash, scopes, home_region, version from service_clients where id = ?', [id]);
  return row;
}

const OUTBOX_COUNT = 'select count(*) as n from replication_outbox';

/** Whether `node` accepts this id and secret (authentication only, through its in-memory snapshot). */
async function accepts(node: RegionNode, id: string, secret: string): Promise<boolean> {
  return (await node.container.clients.authenticate(id, secret)) !== undefined;
}

describe('regions: service clients replicate', function () {
  this.timeout(120_000);
  let a: RegionNode;
  let b: RegionNode;

  before(async () => {
    [a, b] = (await startRegions(['ca', 'cb'])) as [RegionNode, RegionNode];
  });
  after(async () => {
    await Promise.all([a, b].map((n) => n?.close()));
  });

  it('a client created in A authenticates in B; a rotation in A refuses the old secret in B; a delete in A removes it from B', async () => {
    const issued = await a.container.clients.create('billing', ['introspect', 'revoke']);
    await eventually('the client authenticates at B', async () => ((await accepts(b, issued.client.id, issued.secret)) ? true : undefined));
    expect(await b.container.clients.get(issued.client.id)).to.deep.equal(issued.client);
    expect((await clientRow(b, issued.client.id))?.home_region).to.equal('ca');

    const rotated = await a.container.clients.rotateSecret(issued.client.id);
    await eventually('the old secret refused at B', async () => ((await accepts(b, issued.client.id, issued.secret)) ? undefined : true));
    expect(await accepts(b, issued.client.id, rotated.secret)).to.equal(true);
    expect(await accepts(a, issued.client.id, issued.secret)).to.equal(false);

    await a.container.clients.delete(issued.client.id);
    await eventually('the client gone at B', async () => ((await clientRow(b, issued.client.id)) ? undefined : true));
    expect(await accepts(b, issued.client.id, rotated.secret)).to.equal(false);
    expect((await b.container.clients.list()).map((c) => c.id)).not.to.include(issued.client.id);
    const [tomb] = await b.query('select id from service_client_tombstones where id = ?', [issued.client.id]);
    expect(tomb, 'a tombstone at B').to.not.equal(undefined);
  });

  it('a change to a deleted client arriving late (made elsewhere before it learned of the delete) does not bring it back', async () => {
    const issued = await a.container.clients.create('late', ['introspect']);
    const row = await eventually('the client at B', () => clientRow(b, issued.client.id));
    await a.container.clients.delete(issued.client.id);
    await eventually('the delete at B', async () => ((await clientRow(b, issued.client.id)) ? undefined : true));
    const [tomb] = await a.query('select id from service_client_tombstones where id = ?', [issued.client.id]);
    expect(tomb, 'a tombstone at A').to.not.equal(undefined);
    // A rotation of the client (version 5) that a third region made before it learned of the delete.
    const now = new Date().toISOString();
    const res = await postBatch(b, 'ca', {
      origin: 'ca',
      batchId: `late-${issued.client.id}`,
      changes: [
        {
          entity: 'service_clients',
          payload: {
            id: issued.client.id,
            name: 'late',
            scopes: ['introspect'],
            secret_hash: row.secret_hash,
            home_region: 'ca',
            created_at: issued.client.createdAt,
            updated_at: now,
            secret_rotated_at: now,
            version: 5,
          },
        },
      ],
    });
    expect(res.status, await res.text()).to.equal(200);
    expect(await clientRow(b, issued.client.id)).to.equal(undefined);
    expect(await accepts(b, issued.client.id, issued.secret)).to.equal(false);
  });

  it('a scope a later version added is dropped on arrival; a malformed client is refused with 400', async () => {
    const id = `svc_${'b'.repeat(32)}`;
    const now = new Date().toISOString();
    const payload = {
      id,
      name: 'from the future',
      scopes: ['introspect', 'impersonate'],
      secret_hash: 'A'.repeat(43),
      home_region: 'ca',
      created_at: now,
      updated_at: now,
      secret_rotated_at: now,
      version: 1,
    };
    const ok = await postBatch(b, 'ca', { origin: 'ca', batchId: `future-${id}`, changes: [{ entity: 'service_clients', payload }] });
    expect(ok.status, await ok.text()).to.equal(200);
    expect((await clientRow(b, id))?.scopes).to.deep.equal(['introspect']);
    expect((await b.container.clients.get(id)).scopes).to.deep.equal(['introspect']);
    const bad = await postBatch(b, 'ca', {
      origin: 'ca',
      batchId: `bad-${id}`,
      changes: [{ entity: 'service_clients', payload: { ...payload, secret_hash: undefined } }],
    });
    expect(bad.status).to.equal(400);
    await bad.arrayBuffer();
  });

  it('two regions rotating one client while apart end with the same secret, and only that one works', async () => {
    const issued = await a.container.clients.create('split', ['introspect']);
    await eventually('the client at B', () => clientRow(b, issued.client.id));
    await Promise.all([a.stopHttp(), b.stopHttp()]);
    let fromA: string;
    let fromB: string;
    try {
      fromA = (await a.container.clients.rotateSecret(issued.client.id)).secret;
      fromB = (await b.container.clients.rotateSecret(issued.client.id)).secret;
    } finally {
      await Promise.all([a.startHttp(), b.startHttp()]);
    }
    const settled = await eventually('both regions hold the same client', async () => {
      const [ra, rb] = [await clientRow(a, issued.client.id), await clientRow(b, issued.client.id)];
      // Converged only once neither region has anything left to ship.
      const pending = [...(await a.query<{ n: string }>(OUTBOX_COUNT)), ...(await b.query<{ n: string }>(OUTBOX_COUNT))].reduce((n, r) => n + Number(r.n), 0);
      return ra && rb && ra.secret_hash === rb.secret_hash && pending === 0 ? ra : undefined;
    });
    expect(Number(settled.version)).to.equal(2);
    // Every process of each region: the same one secret works, the other rotation's does not.
    await Promise.all([a, b].map((n) => n.container.clients.load()));
    const winner = (await accepts(a, issued.client.id, fromA)) ? fromA : fromB;
    const loser = winner === fromA ? fromB : fromA;
    for (const node of [a, b]) {
      expect(await accepts(node, issued.client.id, winner), `${node.name} accepts the winner`).to.equal(true);
      expect(await accepts(node, issued.client.id, loser), `${node.name} refuses the loser`).to.equal(false);
      expect(await accepts(node, issued.client.id, issued.secret)).to.equal(false);
    }
  });
});
