import { randomUUID } from 'node:crypto';
import { expect } from 'chai';
import type { AppError } from '../../src/platform/errors.js';
import { createAccount, login } from '../helpers/http-assert.js';
import { enrol, oathtool } from '../mfa/support.js';
import { eventually, startRegions, type RegionNode, postBatch } from './support.js';

interface FactorRow {
  id: string;
  status: string;
  last_used_step: string | null;
  removed_at: Date | null;
  version: string;
}

async function factorRow(node: RegionNode, id: string): Promise<FactorRow | undefined> {
  const [row] = await node.query<FactorRow>('select id, status, last_used_step, removed_at, version from mfa_factors where id = ?', [id]);
  return row;
}

const codeOf = (err: unknown) => (err as AppError).code;

describe('regions: TOTP factors and recovery codes replicate with the user', function () {
  this.timeout(120_000);
  let a: RegionNode;
  let b: RegionNode;

  before(async () => {
    [a, b] = (await startRegions(['ma', 'mb'])) as [RegionNode, RegionNode];
  });
  after(async () => {
    await Promise.all([a, b].map((n) => n?.close()));
  });

  it('a factor enrolled in A is asked for and checked in B; the step A spent is spent in B; a recovery code used in A is refused in B; a removal in A reaches B', async () => {
    const account = await createAccount(a, 'trav');
    const tokens = await login(a, account.username, account.password);
    const enrolled = await enrol(a, tokens.accessToken, new Date());
    const userId = account.user.id;

    const atB = await eventually('the active factor at B', async () => {
      const row = await factorRow(b, enrolled.factorId);
      return row?.status === 'active' ? row : undefined;
    });
    expect(atB.last_used_step).to.not.equal(null);
    await eventually('the recovery codes at B', async () => {
      const [row] = await b.query<{ n: string }>('select count(*) as n from mfa_recovery_codes where user_id = ? and ended_at is null', [userId]);
      return Number(row!.n) === 10 ? true : undefined;
    });
    expect(await b.container.mfa.activeTypes(userId)).to.deep.equal(['totp', 'recovery_code']);

    // The code that confirmed the factor in A is refused in B (its step arrived as used).
    const spent = await b.container.mfa.verify(userId, { code: oathtool(enrolled.secret, new Date(Number(atB.last_used_step) * 30_000)) }).catch(codeOf);
    expect(spent).to.equal('invalid_code');
    // A newer step is accepted in B: the sealed secret opens there (every region shares the server secret).
    expect(await b.container.mfa.verify(userId, { code: oathtool(enrolled.secret, new Date(), 1) })).to.equal('totp');

    // A recovery code used in A: refused in B once the use arrives.
    const used = enrolled.recoveryCodes[0]!;
    expect(await a.container.mfa.verify(userId, { recoveryCode: used })).to.equal('recovery_code');
    await eventually('the used code ended at B', async () => {
      const [row] = await b.query<{ n: string }>("select count(*) as n from mfa_recovery_codes where user_id = ? and end_reason = 'used'", [userId]);
      return Number(row!.n) === 1 ? true : undefined;
    });
    expect(await b.container.mfa.verify(userId, { recoveryCode: used }).catch(codeOf)).to.equal('invalid_code');
    expect(await b.container.mfa.verify(userId, { recoveryCode: enrolled.recoveryCodes[1]! })).to.equal('recovery_code');

    // Removal in A (a recent authentication: the login above) reaches B.
    const removed = await a.request(`/v1/me/mfa/totp/${enrolled.factorId}`, { method: 'DELETE', token: tokens.accessToken });
    expect(removed.status).to.equal(204);
    await eventually('the removal at B', async () => ((await factorRow(b, enrolled.factorId))?.removed_at ? true : undefined));
    expect(await b.container.mfa.activeTypes(userId)).to.deep.equal([]);
    expect(await b.container.mfa.verify(userId, { recoveryCode: enrolled.recoveryCodes[2]! }).catch(codeOf)).to.equal('invalid_code');
  });

  it('merge: a removed factor stays removed and the newest used step stays, whatever arrives later; a factor of a user not here yet is refused for now (409), of a deleted user skipped', async () => {
    const account = await createAccount(a, 'mrg');
    const tokens = await login(a, account.username, account.password);
    const enrolled = await enrol(a, tokens.accessToken, new Date());
    await eventually('the factor at B', async () => ((await factorRow(b, enrolled.factorId))?.status === 'active' ? true : undefined));
    await b.query('update mfa_factors set removed_at = now(), last_used_step = last_used_step + 5 where id = ?', [enrolled.factorId]);
    const local = (await factorRow(b, enrolled.factorId))!;

    // A region that had not heard of the removal ships a live, older-step state with a higher version.
    const [row] = await a.query<Record<string, unknown>>('select * from mfa_factors where id = ?', [enrolled.factorId]);
    const late = { ...row, removed_at: null, status: 'active', last_used_step: Number(row!.last_used_step), version: Number(row!.version) + 7 };
    const res = await postBatch(b, 'ma', { origin: 'ma', batchId: randomUUID(), changes: [{ entity: 'mfa_factors', payload: late }] });
    expect(res.status).to.equal(200);
    const after = (await factorRow(b, enrolled.factorId))!;
    expect(after.removed_at!.getTime()).to.equal(local.removed_at!.getTime());
    expect(after.last_used_step).to.equal(local.last_used_step);
    expect(Number(after.version)).to.equal(late.version);

    // An ended recovery code stays ended against a live state arriving later.
    const [code] = await a.query<Record<string, unknown>>('select * from mfa_recovery_codes where user_id = ? limit 1', [account.user.id]);
    await b.query("update mfa_recovery_codes set ended_at = now(), end_reason = 'used' where id = ?", [code!.id]);
    const liveCode = { ...code, ended_at: null, end_reason: null, version: Number(code!.version) + 3 };
    expect((await postBatch(b, 'ma', { origin: 'ma', batchId: randomUUID(), changes: [{ entity: 'mfa_recovery_codes', payload: liveCode }] })).status).to.equal(
      200,
    );
    const [codeAtB] = await b.query<{ end_reason: string | null }>('select end_reason from mfa_recovery_codes where id = ?', [code!.id]);
    expect(codeAtB!.end_reason).to.equal('used');

    // Of a user B has never heard of: refused for now (the sender retries).
    const orphan = { ...row, id: randomUUID(), user_id: randomUUID(), version: 1 };
    expect((await postBatch(b, 'ma', { origin: 'ma', batchId: randomUUID(), changes: [{ entity: 'mfa_factors', payload: orphan }] })).status).to.equal(409);
    expect(await factorRow(b, orphan.id)).to.equal(undefined);

    // Of a deleted user: skipped.
    const gone = await a.container.users.register(`gone-${randomUUID().slice(0, 8)}`, 'a long enough passphrase 42');
    await eventually('the user at B', async () => ((await b.query('select id from users where id = ?', [gone.id])).length ? true : undefined));
    await a.container.users.delete(gone.id);
    await eventually('the delete at B', async () => ((await b.query('select id from users where id = ?', [gone.id])).length ? undefined : true));
    const ofDeleted = { ...row, id: randomUUID(), user_id: gone.id, version: 1 };
    expect((await postBatch(b, 'ma', { origin: 'ma', batchId: randomUUID(), changes: [{ entity: 'mfa_factors', payload: ofDeleted }] })).status).to.equal(200);
    expect(await factorRow(b, ofDeleted.id)).to.equal(undefined);

    // A used mfaToken arrives once; a second copy changes nothing.
    const use = {
      id: randomUUID(),
      user_id: account.user.id,
      home_region: 'ma',
      used_at: new Date().toISOString(),
      expires_at: new Date(Date.now() + 300_000).toISOString(),
    };
    for (let i = 0; i < 2; i++) {
      expect((await postBatch(b, 'ma', { origin: 'ma', batchId: randomUUID(), changes: [{ entity: 'mfa_token_uses', payload: use }] })).status).to.equal(200);
    }
    expect(await b.query('select id from mfa_token_uses where id = ?', [use.id])).to.deep.equal([{ id: use.id }]);
  });
});
