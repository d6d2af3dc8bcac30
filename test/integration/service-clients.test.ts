import { createHash } from 'node:crypto';
import { expect } from 'chai';
import { buildContainer, type Container } from '../../src/container.js';
import type { ClientScope } from '../../src/core/clients/client-service.js';
import { ServiceClients } from '../../src/core/clients/service-clients.js';
import { decodeBatch } from '../../src/core/replication/wire.js';
import { ManualClock } from '../../src/platform/clock.js';
import { shutdown } from '../../src/runtime.js';
import { testConfig } from '../helpers/app.js';
import { rejectsWith } from '../helpers/assert.js';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';

/** Polls `check` until it holds (no fixed sleeps); fails after `ms`. */
async function eventually(check: () => Promise<boolean>, ms = 5_000): Promise<void> {
  const deadline = Date.now() + ms;
  for (;;) {
    if (await check()) return;
    if (Date.now() > deadline) expect.fail('condition not met in time');
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

/** Counts the queries a container's writer pool runs while `work` runs. */
async function queriesDuring(c: Container, work: () => Promise<unknown>): Promise<number> {
  let count = 0;
  const onQuery = () => {
    count += 1;
  };
  c.db.writer.on('query', onQuery);
  try {
    await work();
  } finally {
    c.db.writer.off('query', onQuery);
  }
  return count;
}

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
};

describe('ServiceClients: service clients on PostgreSQL', function () {
  let db: TestDatabase;
  let c1: Container;
  let c2: Container;

  before(async function () {
    db = await createTestDatabase('service_clients');
    const clock = new ManualClock(Date.now());
    c1 = buildContainer(testConfig(db.url), { clock });
    c2 = buildContainer(testConfig(db.url), { clock });
    await c1.db.migrateLatest();
    await c1.clients.load();
  });

  after(async function () {
    await shutdown(c1);
    await shutdown(c2);
    await db?.drop();
  });

  it('creates a client: an svc_ id, a cs_ secret of 256 bits, the view without secret or hash', async function () {
    const { client, secret } = await c1.clients.create('  billing api ', ['revoke', 'introspect', 'revoke']);
    expect(client.id).to.match(/^svc_[0-9a-f]{32}$/);
    expect(secret).to.match(/^cs_[A-Za-z0-9_-]{43}$/);
    expect(Buffer.from(secret.slice(3), 'base64url')).to.have.length(32);
    expect(client).to.deep.equal({
      id: client.id,
      name: 'billing api',
      scopes: ['introspect', 'revoke'],
      homeRegion: 'local',
      createdAt: client.createdAt,
      secretRotatedAt: client.createdAt,
    });
    expect(JSON.stringify(client)).not.to.include(secret.slice(3));
    expect(await c1.clients.get(client.id)).to.deep.equal(client);
    expect((await c1.clients.list()).map((c) => c.id)).to.include(client.id);
  });

  it('stores a hash, never the secret: no column holds it', async function () {
    const { client, secret } = await c1.clients.create('hash check', ['introspect']);
    const row = await c1.db.writer('service_clients').where({ id: client.id }).first<Record<string, unknown>>();
    expect(row).to.not.equal(undefined);
    const stored = JSON.stringify(row);
    expect(stored).not.to.include(secret);
    expect(stored).not.to.include(secret.slice(3));
    expect(row.secret_hash).to.be.a('string').and.not.equal(secret);
    // Not even the bare SHA-256 of the secret (domain-separated).
    expect(row.secret_hash).not.to.equal(createHash('sha256').update(secret).digest('base64url'));
    expect(Buffer.from(String(row.secret_hash), 'base64url')).to.have.length(32);
  });

  it('authenticates the right secret only: wrong, empty, another client’s, unknown id, malformed id', async function () {
    const a = await c1.clients.create('a', ['introspect']);
    const b = await c1.clients.create('b', ['revoke']);
    expect(await c1.clients.authenticate(a.client.id, a.secret)).to.deep.equal(a.client);
    expect(await c1.clients.authenticate(b.client.id, b.secret)).to.deep.equal(b.client);
    expect(await c1.clients.authenticate(a.client.id, b.secret)).to.equal(undefined);
    expect(await c1.clients.authenticate(b.client.id, a.secret)).to.equal(undefined);
    expect(await c1.clients.authenticate(a.client.id, `${a.secret.slice(0, -1)}${a.secret.endsWith('A') ? 'B' : 'A'}`)).to.equal(undefined);
    expect(await c1.clients.authenticate(a.client.id, '')).to.equal(undefined);
    expect(await c1.clients.authenticate(a.client.id, `${a.secret} `)).to.equal(undefined);
    expect(await c1.clients.authenticate('svc_' + '0'.repeat(32), a.secret)).to.equal(undefined);
    expect(await c1.clients.authenticate('not-a-client', a.secret)).to.equal(undefined);
    expect(await c1.clients.authenticate(a.client.id.toUpperCase(), a.secret)).to.equal(undefined);
  });

  it('reads no database to authenticate a known client, right secret or wrong', async function () {
    const { client, secret } = await c1.clients.create('hot path', ['introspect']);
    const n = await queriesDuring(c1, async () => {
      for (let i = 0; i < 200; i++) {
        expect(await c1.clients.authenticate(client.id, secret)).to.not.equal(undefined);
        expect(await c1.clients.authenticate(client.id, 'cs_wrong')).to.equal(undefined);
      }
    });
    expect(n).to.equal(0);
  });

  it('lets a flood of unknown ids reload at most once a second', async function () {
    const server = new ServiceClients({ repo: c1.repos.serviceClients, clock: c1.clock, log: c1.log, region: 'local' });
    await server.load();
    const n = await queriesDuring(c1, async () => {
      for (let i = 0; i < 500; i++) await server.authenticate(`svc_${i.toString(16).padStart(32, '0')}`, 'cs_x');
    });
    expect(n).to.equal(1);
  });

  it('rotates a secret: the old one is refused at once, the new one works', async function () {
    const issued = await c1.clients.create('rotating', ['introspect', 'revoke']);
    const rotated = await c1.clients.rotateSecret(issued.client.id);
    expect(rotated.secret).to.not.equal(issued.secret);
    expect(rotated.client.id).to.equal(issued.client.id);
    expect(await c1.clients.authenticate(issued.client.id, issued.secret)).to.equal(undefined);
    expect(await c1.clients.authenticate(issued.client.id, rotated.secret)).to.deep.equal(rotated.client);
    const row = await c1.db.writer('service_clients').where({ id: issued.client.id }).first<{ version: string }>();
    expect(Number(row.version)).to.equal(2);
    await rejectsWith(c1.clients.rotateSecret('svc_' + 'f'.repeat(32)), 'not_found');
    await rejectsWith(c1.clients.rotateSecret('whatever'), 'not_found');
  });

  it('deletes a client: its secret is refused, get and a second delete are not_found', async function () {
    const { client, secret } = await c1.clients.create('doomed', ['introspect']);
    await c1.clients.delete(client.id);
    expect(await c1.clients.authenticate(client.id, secret)).to.equal(undefined);
    await rejectsWith(c1.clients.get(client.id), 'not_found');
    await rejectsWith(c1.clients.delete(client.id), 'not_found');
    expect((await c1.clients.list()).map((c) => c.id)).not.to.include(client.id);
  });

  it('refuses a bad scope, no scope and a bad name with invalid_request', async function () {
    const err = await rejectsWith(c1.clients.create('x', ['introspect', 'admin' as ClientScope]), 'invalid_request');
    expect(err.detail).to.include('"admin"').and.include('introspect, revoke');
    expect(err.exitCode).to.equal(2);
    await rejectsWith(c1.clients.create('x', []), 'invalid_request');
    await rejectsWith(c1.clients.create('   ', ['introspect']), 'invalid_request');
    await rejectsWith(c1.clients.create('a\u0000b', ['introspect']), 'invalid_request');
    await rejectsWith(c1.clients.create('x'.repeat(101), ['introspect']), 'invalid_request');
  });

  it('picks up a client another process created, rotated and deleted (one database)', async function () {
    // The first process as a server runs it: its own snapshot, reloaded every 100 ms.
    const server = new ServiceClients({ repo: c1.repos.serviceClients, clock: c1.clock, log: c1.log, region: 'local', reloadIntervalMs: 100 });
    await server.load();
    server.start();
    try {
      const issued = await c2.clients.create('from elsewhere', ['introspect']);
      // Unknown here: the first call reloads and finds it.
      expect(await server.authenticate(issued.client.id, issued.secret)).to.deep.equal(issued.client);
      const rotated = await c2.clients.rotateSecret(issued.client.id);
      // A known id never reloads on the hot path: the periodic reload brings the rotation.
      await eventually(async () => (await server.authenticate(issued.client.id, issued.secret)) === undefined);
      expect(await server.authenticate(issued.client.id, rotated.secret)).to.deep.equal(rotated.client);
      await c2.clients.delete(issued.client.id);
      await eventually(async () => (await server.authenticate(issued.client.id, rotated.secret)) === undefined);
    } finally {
      server.stop();
    }
  });

  it('a peer added later is sent every client in its first snapshot, in the form peers decode', async function () {
    const { client } = await c1.clients.create('for the new peer', ['revoke']);
    await c1.repos.outbox.syncPeers([{ name: 'late-peer', url: 'http://127.0.0.1:1' }], new Date());
    const rows = await c1.db
      .writer('replication_outbox')
      .where({ peer: 'late-peer', entity: 'service_clients' })
      .select<Array<{ entity: 'service_clients'; payload: Record<string, unknown> }>>('entity', 'payload');
    const ids = rows.map((r) => r.payload.id);
    expect(ids).to.include(client.id);
    expect(ids).to.have.length((await c1.clients.list()).length);
    const batch = decodeBatch(Buffer.from(JSON.stringify({ origin: 'local', batchId: 'snapshot', changes: rows })));
    const decoded = batch.changes.find((ch) => ch.entity === 'service_clients' && ch.payload.id === client.id);
    expect(decoded?.payload).to.deep.include({ name: 'for the new peer', scopes: ['revoke'], homeRegion: 'local', version: 1 });
    await c1.repos.outbox.syncPeers([], new Date());
  });

  it('takes as long for an unknown id, a wrong secret and the right secret (medians within 1.5×)', async function () {
    this.timeout(60_000);
    const { client, secret } = await c1.clients.create('timing', ['introspect']);
    const wrong = `cs_${'A'.repeat(43)}`; // the same length as a real secret: hashing time depends on length only
    const unknownId = `svc_${'a'.repeat(32)}`;
    // No reload for unknown ids during the measurement: what is compared is the per-call work.
    const measured = new ServiceClients({ repo: c1.repos.serviceClients, clock: c1.clock, log: c1.log, region: 'local', unknownIdReloadMs: 1e12 });
    await measured.load();
    // The control: the same unknown id with a reload on every call (a database read) — the
    // measurement must see that difference, or it could not see a leak either.
    const leaky = new ServiceClients({ repo: c1.repos.serviceClients, clock: c1.clock, log: c1.log, region: 'local', unknownIdReloadMs: 0 });
    await leaky.load();
    const cases = {
      right: () => measured.authenticate(client.id, secret),
      wrong: () => measured.authenticate(client.id, wrong),
      unknown: () => measured.authenticate(unknownId, wrong),
    };
    const batch = async (fn: () => Promise<unknown>, n: number) => {
      const start = process.hrtime.bigint();
      for (let i = 0; i < n; i++) await fn();
      return Number(process.hrtime.bigint() - start) / n;
    };
    for (const fn of Object.values(cases)) await batch(fn, 2_000); // warm-up (JIT)
    const samples: Record<keyof typeof cases, number[]> = { right: [], wrong: [], unknown: [] };
    // Interleaved, so a busy moment of the machine falls on every case alike.
    for (let round = 0; round < 60; round++) {
      for (const name of Object.keys(cases) as Array<keyof typeof cases>) samples[name].push(await batch(cases[name], 200));
    }
    const medians = { right: median(samples.right), wrong: median(samples.wrong), unknown: median(samples.unknown) };
    const ratio = Math.max(...Object.values(medians)) / Math.min(...Object.values(medians));
    expect(ratio, JSON.stringify(medians)).to.be.lessThan(1.5);
    expect(await measured.authenticate(client.id, secret)).to.not.equal(undefined);

    const leakySamples: number[] = [];
    for (let round = 0; round < 15; round++) leakySamples.push(await batch(() => leaky.authenticate(unknownId, wrong), 5));
    expect(median(leakySamples) / medians.unknown, `leaky ${median(leakySamples)} ns vs ${medians.unknown} ns`).to.be.greaterThan(1.5);
  });
});
