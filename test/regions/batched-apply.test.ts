import { randomUUID } from 'node:crypto';
import { expect } from 'chai';
import { clashName, emailClashName } from '../../src/core/replication/merge.js';
import { uniqueUsername } from '../helpers/http-assert.js';
import { postBatch, startRegions, type RegionNode } from './support.js';

const T0 = Date.parse('2025-01-01T00:00:00Z');
const at = (seconds: number) => new Date(T0 + seconds * 1000).toISOString();

type Payload = Record<string, unknown> & { id: string };

function user(fields: Record<string, unknown>): Payload {
  return {
    id: randomUUID(),
    username: uniqueUsername('bat'),
    email: null,
    email_verified_at: null,
    password_hash: '$2b$10$abcdefghijklmnopqrstuuv0123456789abcdefghijklmnopqrstu',
    status: 'active',
    home_region: 'pz',
    created_at: at(30),
    updated_at: at(30),
    password_changed_at: at(30),
    sessions_revoked_before: null,
    sessions_revoked_keep: null,
    version: 1,
    ...fields,
  };
}

function identity(userId: string, subject: string, fields: Record<string, unknown> = {}): Payload {
  return {
    id: randomUUID(),
    user_id: userId,
    provider: 'google',
    subject,
    email: null,
    email_verified: false,
    home_region: 'pz',
    created_at: at(30),
    last_used_at: at(30),
    removed_at: null,
    version: 1,
    ...fields,
  };
}

type Change = { entity: string; payload: Payload };
const users = (...payloads: Payload[]): Change[] => payloads.map((payload) => ({ entity: 'users', payload }));
const identities = (...payloads: Payload[]): Change[] => payloads.map((payload) => ({ entity: 'user_identities', payload }));

/** The statements of the transaction `work` sent the most in (the batch's), from its BEGIN to its COMMIT, savepoints included. */
async function queriesOf(node: RegionNode, work: () => Promise<void>): Promise<string[]> {
  // By connection: knex labels the statements after a savepoint with no transaction id.
  const open = new Map<string, string[]>();
  const transactions: string[][] = [];
  const listener = (q: { sql: string; __knexUid: string }) => {
    if (/^begin/i.test(q.sql)) {
      const statements: string[] = [];
      transactions.push(statements);
      open.set(q.__knexUid, statements);
    }
    open.get(q.__knexUid)?.push(q.sql);
    if (/^(commit|rollback;?$)/i.test(q.sql)) open.delete(q.__knexUid);
  };
  node.container.db.writer.on('query', listener);
  try {
    await work();
  } finally {
    node.container.db.writer.removeListener('query', listener);
  }
  return transactions.reduce((most, q) => (q.length > most.length ? q : most), []);
}

async function send(node: RegionNode, origin: string, changes: Change[]): Promise<{ applied: number; duplicate: boolean }> {
  const res = await postBatch(node, origin, { origin, batchId: randomUUID(), changes });
  expect(res.status, await res.clone().text()).to.equal(200);
  return (await res.json()) as { applied: number; duplicate: boolean };
}

/** What a region holds of these users and identities (an identity's removal as a yes or no: its time is the applying region's clock). */
async function state(node: RegionNode, userIds: string[], identityIds: string[]): Promise<unknown> {
  const u = await node.query(
    `select id, username, email, email_verified_at, password_hash, status, home_region, created_at, updated_at,
            sessions_revoked_before, version from users where id = any(?::uuid[]) order by id`,
    [userIds],
  );
  const i = await node.query(
    `select id, user_id, provider, subject, created_at, removed_at is not null as removed, version
       from user_identities where id = any(?::uuid[]) order by id`,
    [identityIds],
  );
  return { users: u, identities: i };
}

describe('regions: a batch of users and identities is applied a run at a time', function () {
  this.timeout(60_000);
  let a: RegionNode;
  let b: RegionNode;

  before(async () => {
    [a, b] = (await startRegions(['pa', 'pb'])) as [RegionNode, RegionNode];
  });
  after(async () => {
    await Promise.all([a, b].map((n) => n?.close()));
  });

  it('new users and their identities arrive whole, in a handful of statements whatever their number', async () => {
    const fresh = Array.from({ length: 300 }, (_, n) => user({ email: `bulk-${n}-${randomUUID()}@Example.com`, email_verified_at: n % 2 ? at(31) : null }));
    const linked = fresh.filter((_, n) => n % 10 === 0).map((u) => identity(u.id, `bulk-${randomUUID()}`));
    const changes = [...users(...fresh), ...identities(...linked)];

    const queries = await queriesOf(b, async () => {
      expect(await send(b, 'pa', changes)).to.deep.equal({ applied: 330, duplicate: false });
    });
    // One by one this is five statements a user and four an identity (some 1,600).
    expect(queries.length, queries.join('\n')).to.be.below(20);

    const held = await b.query<Record<string, unknown>>('select to_jsonb(u) as row from users u where id = any(?::uuid[])', [fresh.map((u) => u.id)]);
    const byId = new Map(held.map((r) => [(r.row as Payload).id, r.row as Payload]));
    for (const u of fresh) {
      const row = byId.get(u.id)!;
      expect(row, u.id).to.not.equal(undefined);
      for (const [column, value] of Object.entries(u)) {
        const got = row[column];
        if (typeof value === 'string' && column.endsWith('_at')) expect(Date.parse(String(got)), column).to.equal(Date.parse(value));
        else expect(got, column).to.deep.equal(value);
      }
    }
    const rows = await b.query<{ id: string; user_id: string; removed_at: Date | null }>(
      'select id, user_id, removed_at from user_identities where id = any(?::uuid[])',
      [linked.map((i) => i.id)],
    );
    expect(rows.map((r) => [r.id, r.user_id, r.removed_at]).sort()).to.deep.equal(linked.map((i) => [i.id, i.user_id, null]).sort());
  });

  it('a batch mixing new, held, deleted, repeated and clashing rows ends exactly as applying its rows one by one', async () => {
    const p = uniqueUsername('mix');
    // The same state in both regions, applied from a peer (so neither captures it).
    const holder = user({ username: `${p}-held`, email: `Held-${p}@example.com`, home_region: 'rz', created_at: at(10) });
    const existing = user({ username: `${p}-e` });
    const gone = user({ username: `${p}-gone` });
    const mailHolder = user({ username: `${p}-h2`, email: `mail-${p}@example.com`, home_region: 'rz', created_at: at(10) });
    const liveRival = identity(existing.id, `${p}-held-sub`, { created_at: at(10) });
    const removedRival = identity(existing.id, `${p}-removed-sub`, { created_at: at(0), removed_at: at(5) });
    const seed = [...users(holder, existing, gone, mailHolder), ...identities(liveRival, removedRival), { entity: 'users_deleted', payload: { id: gone.id } }];
    await send(a, 'pb', seed);
    await send(b, 'pa', seed);

    const f1 = user({});
    const f2 = user({ email: `F2-${p}@Example.com` });
    // Takes the holder's username (created first): the holder becomes `<name>.rz`…
    const earlier = user({ username: `${p}-held`, home_region: 'ra', created_at: at(0) });
    // …the name this new user has, free when the batch arrived: it loses it to the holder (created before it).
    const late = user({ username: clashName(`${p}-held`, 'rz'), home_region: 'rc', created_at: at(20) });
    const twice = user({ username: `${p}-twice` });
    const takesMail = user({ username: `${p}-m`, email: `MAIL-${p}@example.com`, created_at: at(0) });
    const q1 = user({ username: `${p}-q1`, email: `q-${p}@example.com`, created_at: at(1) });
    const q2 = user({ username: null, email: `Q-${p}@EXAMPLE.com`, created_at: at(2) });
    const cutOff = user({ sessions_revoked_before: at(40) });
    const f5 = user({});
    const batchUsers = [
      f1,
      { ...gone, version: 5 },
      f2,
      { ...existing, username: `${p}-e2`, version: 2, updated_at: at(50) },
      earlier,
      late,
      twice,
      { ...twice, username: `${p}-twice2`, status: 'disabled', version: 2 },
      takesMail,
      q1,
      q2,
      cutOff,
      f5,
    ];
    const i1 = identity(f1.id, `${p}-i1`);
    const ofGone = identity(gone.id, `${p}-gone-sub`);
    const takesSub = identity(f1.id, `${p}-held-sub`, { created_at: at(0) });
    const twin1 = identity(f2.id, `${p}-twin`, { created_at: at(1) });
    const twin2 = identity(f5.id, `${p}-twin`, { created_at: at(2) });
    const afterRemoved = identity(f2.id, `${p}-removed-sub`, { created_at: at(1) });
    const i7 = identity(f5.id, `${p}-i7`);
    const batchIdentities = [i1, ofGone, takesSub, twin1, twin2, afterRemoved, i7];
    const changes = [...users(...batchUsers), ...identities(...batchIdentities)];

    // A: the whole batch at once (the runs, and the row-by-row path between them). B: each row alone.
    const queries = await queriesOf(a, async () => {
      expect((await send(a, 'pb', changes)).applied).to.equal(changes.length);
    });
    expect(
      queries.some((q) => /rollback to savepoint/i.test(q)),
      'the run that met the renamed holder went row by row',
    ).to.equal(true);
    let applied = 0;
    for (const change of changes) applied += (await send(b, 'pa', [change])).applied;
    expect(applied).to.equal(changes.length);

    const userIds = [...new Set([...batchUsers, holder, mailHolder].map((u) => u.id))];
    const identityIds = [...batchIdentities, liveRival, removedRival].map((i) => i.id);
    const inA = await state(a, userIds, identityIds);
    expect(inA).to.deep.equal(await state(b, userIds, identityIds));

    // And it is what the merge rules say.
    const name = async (u: Payload) => (await a.query<{ username: string | null }>('select username from users where id = ?', [u.id]))[0]?.username;
    expect(await name(holder)).to.equal(clashName(`${p}-held`, 'rz'));
    expect(await name(earlier)).to.equal(`${p}-held`);
    expect(await name(late)).to.equal(clashName(clashName(`${p}-held`, 'rz'), 'rc'));
    expect(await name(gone)).to.equal(undefined);
    expect(await name(q2)).to.equal(emailClashName(String(q2.email), q2.id, 'pz'));
    const emailOf = async (u: Payload) => (await a.query<{ email: string | null }>('select email from users where id = ?', [u.id]))[0]?.email;
    expect(await emailOf(mailHolder)).to.equal(null);
    expect(await emailOf(takesMail)).to.equal(takesMail.email);
    expect(await emailOf(q2)).to.equal(null);
    const removed = async (i: Payload) =>
      (await a.query<{ removed: boolean }>('select removed_at is not null as removed from user_identities where id = ?', [i.id]))[0]?.removed;
    expect(await removed(liveRival)).to.equal(true);
    expect(await removed(takesSub)).to.equal(false);
    expect(await removed(twin1)).to.equal(false);
    expect(await removed(twin2)).to.equal(true);
    expect(await removed(ofGone)).to.equal(undefined);
    expect(await removed(i1)).to.equal(false);
    expect(await removed(i7)).to.equal(false);
  });
});
